"""``ingest``: rows from the source, every file read, patient ids filled in; DICOM folders labelled by UID."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from proctovision.core.tables import read_table
from proctovision.core.tasks import Task
from proctovision.data.ingest.files import DicomOptions, inspect_rows, sop_instance_uids
from proctovision.data.ingest.sources import (
    Exclusion,
    IngestError,
    IngestResult,
    Progress,
    rows_from_class_folders,
    rows_from_csv,
    walk_files,
)
from proctovision.data.journal import Journal
from proctovision.imaging import images


def rows_from_labelled_folder(
    root: Path, labels_csv: Path, task: Task, result: IngestResult, journal: Journal | None = None, workers: int = 0,
) -> list[dict]:
    """Any folder of files (DICOM archives: nested, any names) labelled by a CSV keyed by SOPInstanceUID or path."""
    labels = read_table(labels_csv, (), IngestError)
    labels.columns = [column.strip().lower() for column in labels.columns]
    key = next((column for column in ("sop_instance_uid", "sopinstanceuid", "path") if column in labels.columns), None)
    if key is None or "label" not in labels.columns:
        raise IngestError(f"{labels_csv}: needs a label column and sop_instance_uid or path; found {list(labels.columns)}")
    by_lower = {name.lower(): name for name in task.classes}
    lookup = dict(zip(labels[key].str.strip(), labels["label"].str.strip()))
    rows = []
    files = [path for path in walk_files(root) if not images.is_hidden(path)]
    uids = sop_instance_uids(files, journal, workers) if key != "path" else {}
    for path in files:
        if key == "path":
            wanted = lookup.get(str(path.relative_to(root)))
        else:
            uid, reason = uids[path]
            if reason:
                result.excluded.append(Exclusion(str(path), reason))
                continue
            wanted = lookup.get(uid)
        if wanted is None:
            result.excluded.append(Exclusion(str(path), f"no label in {labels_csv.name}"))
            continue
        label = by_lower.get(wanted.lower())
        if label is None:
            result.excluded.append(Exclusion(str(path), f"unknown label {wanted!r} ({labels_csv.name})"))
            continue
        rows.append({"path": str(path.absolute()), "label": label, "patient_id": ""})
    return rows


def fill_patient_ids(rows: list[dict], result: IngestResult, patient_regex: str | None) -> None:
    """Rows without a patient id get one: from the file name by regex, else one per file."""
    pattern = re.compile(patient_regex) if patient_regex else None
    for row in rows:
        if row["patient_id"]:
            continue
        match = pattern.search(Path(row["path"]).name) if pattern else None
        if match:
            row["patient_id"] = match.group(1) if match.groups() else match.group(0)
        else:
            row["patient_id"] = "file-" + hashlib.sha256(row["path"].encode()).hexdigest()[:12]
            result.generated_patient_ids += 1
    if result.generated_patient_ids:
        result.notes.append(
            f"{result.generated_patient_ids} image(s) had no patient id and got one per file: a split can then "
            "only keep files apart, not patients; give a patient_id column (or --patient-regex) to group them"
        )


def ingest(
    source: str | Path,
    task: Task,
    patient_regex: str | None = None,
    progress: Progress | None = None,
    labels: Path | None = None,
    dicom_options: DicomOptions | None = None,
    workers: int = 0,
    journal: str | Path | None = None,
    fresh: bool = False,
    frames_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Build a manifest from class folders, a CSV manifest, or a folder labelled by ``labels`` (DICOM archives).

    ``workers`` processes read the files (0: this process). With a ``journal`` file, files already judged by an
    earlier (or interrupted) ingest with the same settings and unchanged since are not read again; ``fresh``
    starts the journal anew.
    """
    if journal is None:
        return _ingest(source, task, patient_regex, progress, labels, dicom_options, workers, None, frames_progress)
    with Journal(journal, fresh=fresh) as opened:
        result = _ingest(source, task, patient_regex, progress, labels, dicom_options, workers, opened,
                         frames_progress)
        opened.compact()
    return result


def _ingest(
    source: str | Path, task: Task, patient_regex: str | None, progress: Progress | None, labels: Path | None,
    dicom_options: DicomOptions | None, workers: int, journal: Journal | None,
    frames_progress: Callable[[int], None] | None,
) -> IngestResult:
    source = Path(source)
    result = IngestResult(manifest=pd.DataFrame())
    if not source.exists():
        raise IngestError(f"{source}: does not exist")
    if source.is_file() and source.suffix.lower() == ".csv":
        result.source_kind = "csv"
        rows = rows_from_csv(source, task, result)
    elif source.is_dir() and labels is not None:
        result.source_kind = "labelled-folder"
        rows = rows_from_labelled_folder(source, Path(labels), task, result, journal, workers)
    elif source.is_dir():
        result.source_kind = "class-folders"
        rows = rows_from_class_folders(source, task, result)
    else:
        raise IngestError(f"{source}: expected a folder with one sub-folder per class, or a .csv manifest")
    options = dicom_options or DicomOptions()
    if options.export_png is not None and options.export_root is None:
        options.export_root = source if source.is_dir() else source.parent
    rows = inspect_rows(rows, result, progress, options, workers=workers, journal=journal,
                        frames_progress=frames_progress)
    fill_patient_ids(rows, result, patient_regex)
    columns = ["path", "label", "patient_id"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    extra = [column for column in frame.columns if column not in columns]
    result.manifest = frame[columns + extra].reset_index(drop=True)
    return result
