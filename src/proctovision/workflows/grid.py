"""A grid: tasks × runs, each run a partial RunConfig merged over a shared base (and over `quick`)."""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proctovision.core.config import RunConfig, format_validation_error
from proctovision.core.errors import UserError


class GridError(UserError, ValueError):
    """A grid config that cannot be used; the message names the file and the key."""


class GridTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    source: str = Field(description="class folders or CSV manifest, relative to --data")


class GridRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    label: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields for this run")


class SplitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    folds: int | None = Field(None, ge=2, description="k: run every grid run as a k-fold cross-validation (val is "
                              "then the share of the other folds' patients that validates each fold)")


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    study: str = ""
    tasks: list[GridTask]
    split: SplitSettings = SplitSettings()
    base: dict[str, Any] = Field(default_factory=dict)
    runs: list[GridRun]
    quick: dict[str, Any] = Field(default_factory=dict, description="merged over every run with --quick")
    table_metrics: list[str] = Field(default_factory=lambda: ["accuracy", "recall", "precision", "f1"])
    published: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="task → participant → metric → the paper's figure"
    )

    def run_config(self, run: GridRun, task: str, split: Path, out: Path, quick: bool) -> RunConfig:
        merged = deep_merge(deep_merge(copy.deepcopy(self.base), run.overrides), self.quick if quick else {})
        merged = deep_merge(merged, {"task": task, "data": {"split": str(split)}, "out": str(out)})
        try:
            return RunConfig.model_validate(merged)
        except ValidationError as error:
            raise GridError(f"grid {self.name}, run {run.name}: {format_validation_error(error)}") from error


def deep_merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def builtin_grid_path(name: str) -> Path:
    return Path(str(resources.files("proctovision.workflows").joinpath(f"configs/{name}.yaml")))


def load_grid(name_or_path: str | Path) -> GridConfig:
    """A built-in grid (``hemorrhoid``, ``fistula``) or a YAML file copied from configs/ and edited."""
    path = Path(name_or_path)
    if not path.suffix:
        path = builtin_grid_path(str(name_or_path))
    if not path.is_file():
        raise GridError(f"{name_or_path}: no such grid (built-in: hemorrhoid, fistula; or a YAML file)")
    try:
        return GridConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as error:
        detail = format_validation_error(error) if isinstance(error, ValidationError) else str(error)
        raise GridError(f"{path}: {detail}") from error
