"""The layout of a run folder, and loading a trained model back from it."""
from __future__ import annotations

import json
import os
import time
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from proctovision.core import fileio
from proctovision.core.config import RunConfig
from proctovision.data.manifest import read_manifest
from proctovision.core.errors import UserError
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.core.tasks import Task, load_task


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


def split_rows(run: RunInfo, split: str) -> pd.DataFrame:
    """Rows of one split of the run's split file. A k-fold file has no test split: refused, never improvised."""
    frame = read_manifest(run.config.data.split)
    if run.config.data.fold is not None or "split" not in frame.columns:
        raise RunError(
            f"{run.config.data.split}: a k-fold split file has no test split, and its validation fold is not one; "
            "run `proctovision crossval` (each fold tested once) or split with --test for a hold-out test set")
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise RunError(f"{run.config.data.split}: no rows in split {split!r}")
    return rows


DONE = "DONE"


def mark_done(run_dir: Path) -> None:
    """The marker a grid run or a fold leaves when finished, so a rerun skips it."""
    fileio.write_text(Path(run_dir) / DONE, time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")


def is_done(run_dir: Path) -> bool:
    """Finished: the marker beside the test metrics (a grid run) or the cross-validated metrics (a fold set)."""
    paths = RunPaths(run_dir)
    if (run_dir / DONE).is_file() and (run_dir / "cv_metrics.json").is_file():
        return True
    if not (run_dir / DONE).is_file() or not paths.metrics.is_file():
        return False
    return "test" in json.loads(paths.metrics.read_text())
