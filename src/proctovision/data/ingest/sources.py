"""Where the rows come from: class folders or a CSV manifest, each file hashed; what ingest keeps and leaves out."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from proctovision.core.errors import UserError
from proctovision.core.tables import read_table
from proctovision.core.tasks import Task
from proctovision.imaging import images

Progress = Callable[[int, int], None]


class IngestError(UserError, ValueError):
    """The source as a whole cannot be ingested (not a single bad file)."""


@dataclass
class Exclusion:
    path: str
    reason: str


@dataclass
class IngestResult:
    manifest: pd.DataFrame
    excluded: list[Exclusion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_patient_ids: int = 0
    source_kind: str = ""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _match_class(folder_name: str, task: Task) -> str | None:
    by_lower = {name.lower(): name for name in task.classes}
    return by_lower.get(folder_name.strip().lower())


def walk_files(root: Path) -> Iterable[Path]:
    """All regular files under root, sorted, without following symlinked folders in loops."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir():
                    stack.append(entry)
                else:
                    yield entry
            except OSError:
                yield entry


def rows_from_class_folders(root: Path, task: Task, result: IngestResult) -> list[dict]:
    """One sub-folder per class; folders whose name is no class of the task are reported."""
    rows: list[dict] = []
    subfolders = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not subfolders:
        raise IngestError(f"{root}: no class sub-folders found (expected one of: {', '.join(task.classes)})")
    for folder in subfolders:
        label = _match_class(folder.name, task)
        files = []
        for path in walk_files(folder):
            if images.is_candidate_file(path):
                files.append(path)
            elif not images.is_hidden(path):
                result.excluded.append(Exclusion(str(path), f"unsupported file type ({path.suffix or 'no suffix'})"))
        if label is None:
            for path in files:
                result.excluded.append(Exclusion(str(path), f"unknown label {folder.name!r} (folder name)"))
            continue
        rows.extend({"path": str(path.absolute()), "label": label, "patient_id": ""} for path in files)
    return rows


def rows_from_csv(csv_path: Path, task: Task, result: IngestResult) -> list[dict]:
    """A CSV with path,label,patient_id (paths relative to the CSV) and any extra columns."""
    frame = read_table(csv_path, ("path", "label"), IngestError)
    if "patient_id" not in frame.columns:
        frame["patient_id"] = ""
        result.notes.append("the CSV has no patient_id column: each image is treated as its own patient")
    root = csv_path.resolve().parent
    by_lower = {name.lower(): name for name in task.classes}
    rows: list[dict] = []
    seen_paths: set[str] = set()
    for number, record in enumerate(frame.to_dict("records"), start=2):
        raw_path = str(record["path"]).strip()
        if not raw_path:
            result.excluded.append(Exclusion(f"{csv_path}:{number}", "empty path"))
            continue
        path = Path(os.path.abspath(root / raw_path))
        label = by_lower.get(str(record["label"]).strip().lower())
        if label is None:
            result.excluded.append(Exclusion(str(path), f"unknown label {record['label']!r} (line {number})"))
            continue
        key = f"{path}#{record.get('frame', '')}"
        if key in seen_paths:
            result.excluded.append(Exclusion(str(path), f"duplicate row (line {number})"))
            continue
        seen_paths.add(key)
        row = {key_: str(value).strip() for key_, value in record.items()}
        row.update(path=str(path), label=label, patient_id=str(record["patient_id"]).strip())
        rows.append(row)
    return rows
