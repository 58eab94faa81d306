"""The layout of a run folder, and loading a trained model back from it."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from proctovision.config import RunConfig
from proctovision.errors import UserError
from proctovision.preprocessing import Preprocessing
from proctovision.tasks import Task, load_task


class RunError(UserError, ValueError):
    """A run folder that is missing something; the message says what."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def figures(self) -> Path:
        return self.root / "figures"


def ensure_writable(folder: Path) -> None:
    """Fail before any work starts when the output folder cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise RunError(f"{folder}: output folder is not writable ({error.strerror or error})") from error
    if hasattr(os, "statvfs"):
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < 50 * 1024 * 1024:
            raise RunError(f"{folder}: less than 50 MB free on the output disk")


@dataclass(frozen=True)
class RunInfo:
    """What a finished run says about itself, read from its config.yaml."""

    paths: RunPaths
    config: RunConfig
    task: Task
    preprocessing: Preprocessing
    resolved: dict

    def checkpoint(self) -> Path:
        for candidate in (self.paths.best, self.paths.last):
            if candidate.is_file():
                return candidate
        raise RunError(f"{self.paths.root}: no checkpoint (checkpoints/best.ckpt or last.ckpt); was it trained?")


def read_run(root: str | Path) -> RunInfo:
    paths = RunPaths(Path(root))
    if not paths.config.is_file():
        raise RunError(f"{paths.root}: not a run folder (no config.yaml)")
    data = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    resolved = data.pop("resolved", {})
    config = RunConfig.model_validate(data)
    recorded = (resolved.get("lineage") or {}).get("split")
    if recorded and (paths.root / recorded).is_file():
        config = config.model_copy(update={"data": config.data.model_copy(
            update={"split": (paths.root / recorded).resolve()})})
    task = Task.model_validate(resolved["task"]) if "task" in resolved else load_task(config.task)
    pre = resolved["preprocessing"]
    preprocessing = Preprocessing.from_dict(pre, resolved.get("window"))
    return RunInfo(paths, config, task, preprocessing, resolved)


def load_module(run: RunInfo) -> "ClassifierModule":  # noqa: F821 - torch is imported only when a model is loaded
    """The run's best checkpoint (else the last), in eval mode on the CPU."""
    from proctovision.models.module import ClassifierModule

    module = ClassifierModule.load_from_checkpoint(run.checkpoint(), map_location="cpu", weights_only=False)
    return module.eval()
