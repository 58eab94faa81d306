"""The manifest: one row per image (per frame for multi-frame DICOM).

On disk paths are relative to the manifest file so a data folder can move; in memory
they are absolute so every stage can open files without knowing where the CSV lay.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from proctovision.core import fileio
from proctovision.core.errors import UserError
from proctovision.core.tables import read_table

REQUIRED_COLUMNS = ("path", "label", "patient_id")


class ManifestError(UserError, ValueError):
    """A manifest or split file that cannot be used; the message names the file."""


def read_manifest(path: str | Path, required: tuple[str, ...] = REQUIRED_COLUMNS) -> pd.DataFrame:
    """Read a manifest or split CSV, resolving paths against the file's folder."""
    path = Path(path)
    frame = read_table(path, required, ManifestError)
    root = path.resolve().parent
    frame["path"] = [os.path.abspath(root / entry) if entry else "" for entry in frame["path"]]
    for column in ("frame", "width", "height"):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def write_manifest(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically with paths made relative to the target file's folder."""
    path = Path(path)
    root = path.resolve().parent
    out = frame.copy()
    out["path"] = [os.path.relpath(entry, root) for entry in out["path"]]
    return fileio.write_csv(path, out)


def class_counts(frame: pd.DataFrame, classes: tuple[str, ...]) -> dict[str, int]:
    counts = frame["label"].value_counts()
    return {name: int(counts.get(name, 0)) for name in classes}


def patient_counts(frame: pd.DataFrame, classes: tuple[str, ...]) -> dict[str, int]:
    counts = frame.groupby("label")["patient_id"].nunique()
    return {name: int(counts.get(name, 0)) for name in classes}
