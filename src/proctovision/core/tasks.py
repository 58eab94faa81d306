"""Task definitions: a task names its classes and their order.

The order matters: it fixes the output units of every model trained on the task
and the probability columns of every predictions file.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from proctovision.core.errors import UserError


class Task(BaseModel):
    """A classification task: an ordered list of class names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    classes: tuple[str, ...]
    ordinal: bool = False
    description: str = ""

    @field_validator("classes")
    @classmethod
    def _at_least_two_distinct(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        if len(classes) < 2:
            raise ValueError("a task needs at least two classes")
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must be distinct, got {list(classes)}")
        return classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return self.num_classes == 2

    def index_of(self, label: str) -> int:
        return self.classes.index(label)


BUILTIN_TASKS: dict[str, Task] = {
    "hemorrhoid": Task(
        name="hemorrhoid",
        classes=("normal", "hemorrhoid"),
        description="Endoscopic retroflexed view above the dentate line: normal vs internal hemorrhoid.",
    ),
    "ldrf": Task(
        name="ldrf",
        classes=("Rf0", "Rf1", "Rf2"),
        ordinal=True,
        description="LDRf risk grade of internal hemorrhoids (ordinal).",
    ),
    "fistula": Task(
        name="fistula",
        classes=("normal", "internal_orifice"),
        description="Axial MRI T1 contrast-enhanced slice: internal orifice of anal fistula present or not.",
    ),
}


class TaskError(UserError, ValueError):
    """A task name or task file that cannot be used."""


def load_task(name_or_path: str | Path) -> Task:
    """Resolve a built-in task name or a YAML file declaring a new task."""
    key = str(name_or_path)
    if key in BUILTIN_TASKS:
        return BUILTIN_TASKS[key]
    path = Path(key)
    if path.suffix.lower() in {".yaml", ".yml"}:
        if not path.is_file():
            raise TaskError(f"task file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            return Task.model_validate(data)
        except (yaml.YAMLError, ValueError) as error:
            raise TaskError(f"task file {path} is not a valid task: {error}") from error
    known = ", ".join(sorted(BUILTIN_TASKS))
    raise TaskError(f"unknown task {key!r}: use one of {known} or a YAML file with name and classes")
