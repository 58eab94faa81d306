"""Ingest: turn a user's folder or CSV into a clean manifest and a quality report.

Bad rows never stop the batch: each is left out and listed, by file and reason, in
``qc.json`` and a readable ``qc.md`` beside the manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.imaging import images
from proctovision.data import pool
from proctovision.data.journal import Journal, entry_key, file_stamp
from proctovision.data.manifest import ManifestError, class_counts, patient_counts, write_manifest
from proctovision.core.errors import UserError
from proctovision.core.tables import read_table
from proctovision.core.tasks import Task

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


@dataclass
class DicomOptions:
    """How DICOM files are read at ingest: the window (recorded per row) and the salt for pseudonyms."""

    window: str = "file"
    salt: str = ""
    export_png: Path | None = None
    export_root: Path | None = None


def dicom_base_row(row: dict, info: object, options: DicomOptions) -> dict:
    """A DICOM row's columns: pseudonymised patient/study/series and no identifying tag."""
    base = {key: value for key, value in row.items() if key != "sop_instance_uid"}
    base.update(
        patient_id=row.get("patient_id") or info.patient, study_id=info.study, series_id=info.series,
        modality=info.modality, window=options.window,
    )
    return base


def export_png(picture: object, row: dict, options: DicomOptions) -> None:
    """The windowed image as PNG, for review: the manual JPEG export step of the fistula study, reproducible."""
    source = Path(row["path"])
    try:
        relative = source.relative_to(options.export_root) if options.export_root else Path(source.name)
    except ValueError:
        relative = Path(source.name)
    suffix = f"_frame{int(row['frame']):03d}" if str(row.get("frame", "")).strip() else ""
    target = options.export_png / relative.parent / f"{relative.stem}{suffix}.png"
    fileio.write_with(target, lambda path: picture.save(path, format="PNG"))


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


@dataclass
class FileOutcome:
    """What reading one file gave: its manifest rows (one per frame), or the reason it is left out."""

    rows: list[dict] = field(default_factory=list)
    reason: str = ""
    note: str = ""

    @property
    def frames(self) -> int:
        return len(self.rows)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "reason": self.reason, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> FileOutcome:
        return cls(rows=list(data.get("rows", [])), reason=str(data.get("reason", "")), note=str(data.get("note", "")))


HEADERLESS_NOTE = "no 128-byte preamble (an old-style DICOM file): read anyway"


def inspect_file(row: dict, options: DicomOptions) -> FileOutcome:
    """Read one file once and judge it; any failure becomes its reason, never an exception."""
    path = Path(row["path"])
    try:
        if path.is_file() and path.stat().st_size > 0 and images.looks_like_dicom(path):
            return inspect_dicom(row, path, options)
        return inspect_picture(row, path, options)
    except images.ImageReadError as error:
        return FileOutcome(reason=error.reason)
    except OSError as error:
        return FileOutcome(reason=f"cannot read file: {error.strerror or error}")
    except Exception as error:  # noqa: BLE001 - one bad file must never cost the rest
        return FileOutcome(reason=f"unexpected error while reading ({type(error).__name__}: {error})")


def inspect_picture(row: dict, path: Path, options: DicomOptions) -> FileOutcome:
    picture = images.read_image(path)
    item = dict(row)
    describe_frame(item, picture, file_sha256(path), None, options)
    return FileOutcome(rows=[item])


def inspect_dicom(row: dict, path: Path, options: DicomOptions) -> FileOutcome:
    """Header and every frame from one parse of the file; each frame decoded exactly once."""
    from proctovision.imaging import dicom

    digest = file_sha256(path)  # streamed: one copy of the file in memory (pydicom's), not two
    opened = dicom.open_dicom(path)
    info = dicom.info_of(opened, options.salt)
    base = dicom_base_row(row, info, options)
    rows = []
    for index, picture in enumerate(dicom.iter_dicom_rgb(opened, options.window)):
        frame = index if info.frames > 1 else None
        item = {**base, "frame": "" if frame is None else str(frame)}
        describe_frame(item, picture, digest, frame, options)
        rows.append(item)
    if len(rows) != info.frames:
        raise images.ImageReadError(path, f"pixel data holds {len(rows)} frame(s) where NumberOfFrames says "
                                          f"{info.frames}")
    return FileOutcome(rows=rows, note=HEADERLESS_NOTE if opened.headerless else "")


def describe_frame(item: dict, picture: object, digest: str, frame: int | None, options: DicomOptions) -> None:
    item["width"], item["height"] = picture.width, picture.height
    item["sha256"] = digest if frame is None else f"{digest}:{frame}"
    item["phash"] = str(imagehash.phash(picture))
    if options.export_png is not None:
        export_png(picture, item, options)


def reading_settings(options: DicomOptions) -> str:
    """What changes a file's rows besides the file: a journal entry counts only under the same settings."""
    salt = hashlib.sha256(options.salt.encode()).hexdigest()
    return json.dumps({"window": options.window, "salt": salt, "png": str(options.export_png or "")})


def header_uid(path: Path) -> tuple[str, str]:
    """``(SOPInstanceUID, "")`` from the header alone, or ``("", reason)``."""
    from proctovision.imaging import dicom

    if not images.looks_like_dicom(path):
        return "", "not a DICOM file (labels are keyed by SOPInstanceUID)"
    try:
        return dicom.read_info(path, "").sop_instance_uid, ""
    except images.ImageReadError as error:
        return "", error.reason
    except Exception as error:  # noqa: BLE001 - one bad header must never cost the rest
        return "", f"unreadable DICOM header ({type(error).__name__}: {error})"


def sop_instance_uids(paths: list[Path], journal: Journal | None, workers: int) -> dict[Path, tuple[str, str]]:
    """Every file's SOPInstanceUID (or why not), headers read on ``workers`` processes and remembered in the
    journal, so that a re-run opens only new or changed files."""
    found: dict[Path, tuple[str, str]] = {}
    keys = {path: entry_key({"path": str(path), "read": "sop_instance_uid"}, "") for path in paths}
    stamps = {path: file_stamp(path) for path in paths} if journal else {}
    todo = []
    for path in paths:
        cached = journal.lookup(keys[path], stamps[path]) if journal else None
        if cached is None:
            todo.append(path)
        else:
            found[path] = (str(cached.get("uid", "")), str(cached.get("reason", "")))
    for index, outcome in pool.run_each(header_uid, todo, workers):
        path = todo[index]
        if isinstance(outcome, pool.ItemFailed):
            outcome = ("", f"reading this file's header failed ({outcome})")
        found[path] = outcome
        if journal:
            journal.record(keys[path], stamps[path], {"uid": outcome[0], "reason": outcome[1]})
    return found


def inspect_rows(
    rows: list[dict], result: IngestResult, progress: Progress | None = None, options: DicomOptions | None = None,
    workers: int = 0, journal: Journal | None = None, frames_progress: Callable[[int], None] | None = None,
    inspect: Callable[[dict, DicomOptions], FileOutcome] | None = None,
) -> list[dict]:
    """Read every file once (on ``workers`` processes; 0 = here): keep its rows, or list it with the reason.

    Outcomes stream in as files finish and go to the journal at once; the manifest keeps the input order.
    """
    options = options or DicomOptions()
    settings = reading_settings(options)
    outcomes: list[FileOutcome | None] = [None] * len(rows)
    keys = [entry_key(row, settings) for row in rows]
    stamps = [file_stamp(row["path"]) for row in rows] if journal else [""] * len(rows)
    todo = []
    for position, row in enumerate(rows):
        cached = journal.lookup(keys[position], stamps[position]) if journal else None
        if cached is None:
            todo.append(position)
        else:
            outcomes[position] = FileOutcome.from_dict(cached)
    done, frames = len(rows) - len(todo), sum(outcome.frames for outcome in outcomes if outcome)
    if done:
        result.notes.append(f"{done} file(s) unchanged since the last ingest were taken from its journal "
                            f"({journal.path.name}), not read again")
    report_progress(progress, frames_progress, done, len(rows), frames)
    reader = inspect or inspect_file
    for index, outcome in pool.run_each(reader, [rows[position] for position in todo], workers, options):
        position = todo[index]
        if isinstance(outcome, pool.WorkerCrash):
            outcome = FileOutcome(reason=f"reading this file crashed ({outcome}): a damaged file or a decoder fault")
        elif isinstance(outcome, pool.ItemFailed):
            outcome = FileOutcome(reason=f"reading this file failed ({outcome})")
        outcomes[position] = outcome
        if journal:
            journal.record(keys[position], stamps[position], outcome.as_dict())
        done, frames = done + 1, frames + outcome.frames
        report_progress(progress, frames_progress, done, len(rows), frames)
    return collect(rows, outcomes, result)


def report_progress(progress: Progress | None, frames_progress: Callable[[int], None] | None, done: int, total: int,
                    frames: int) -> None:
    if frames_progress:
        frames_progress(frames)
    if progress:
        progress(done, total)


def collect(rows: list[dict], outcomes: list[FileOutcome | None], result: IngestResult) -> list[dict]:
    """Kept rows in input order; exclusions and notes, by file."""
    kept: list[dict] = []
    headerless = []
    for row, outcome in zip(rows, outcomes):
        if outcome is None or outcome.reason:
            result.excluded.append(Exclusion(row["path"], outcome.reason if outcome else "not read"))
            continue
        kept.extend(outcome.rows)
        if outcome.note == HEADERLESS_NOTE:
            headerless.append(Path(row["path"]).name)
    if headerless:
        shown = ", ".join(headerless[:5]) + (f" and {len(headerless) - 5} more" if len(headerless) > 5 else "")
        result.notes.append(f"{len(headerless)} DICOM file(s) without the 128-byte preamble (old-style files) were "
                            f"read anyway: {shown}")
    return kept


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


def duplicate_groups(frame: pd.DataFrame) -> list[list[str]]:
    """Files with identical bytes: the same picture counted twice."""
    if frame.empty or "sha256" not in frame.columns:
        return []
    groups = frame.groupby("sha256")["path"].apply(list)
    return [sorted(paths) for paths in groups if len(set(paths)) > 1]


def near_duplicate_pairs(frame: pd.DataFrame, max_distance: int = 4) -> list[tuple[int, int, int]]:
    """Row pairs whose perceptual hashes differ by at most ``max_distance`` bits (exact copies excluded).

    Pigeonhole banding: two 64-bit hashes within 4 bits agree on at least one of 5 bands, so
    only rows sharing a band value are compared, which keeps this near-linear in rows.
    """
    if frame.empty or "phash" not in frame.columns:
        return []
    bits = np.array([[int(bit) for bit in f"{int(value, 16):064b}"] for value in frame["phash"]], dtype=np.uint8)
    sha = frame["sha256"].to_numpy() if "sha256" in frame.columns else np.arange(len(frame)).astype(str)
    bands = np.array_split(np.arange(64), max_distance + 1)
    found: dict[tuple[int, int], int] = {}
    for band in bands:
        buckets: dict[bytes, list[int]] = {}
        for row, key in enumerate(np.packbits(bits[:, band], axis=1)):
            buckets.setdefault(key.tobytes(), []).append(row)
        for members in buckets.values():
            for position, first in enumerate(members):
                for second in members[position + 1 :]:
                    if (first, second) in found or sha[first] == sha[second]:
                        continue
                    distance = int(np.count_nonzero(bits[first] != bits[second]))
                    if distance <= max_distance:
                        found[(first, second)] = distance
    return sorted((first, second, distance) for (first, second), distance in found.items())


def quality_report(result: IngestResult, task: Task, source: Path) -> dict:
    frame = result.manifest
    sizes = frame[["width", "height"]].astype(int) if not frame.empty else pd.DataFrame(columns=["width", "height"])
    per_patient = frame.groupby("patient_id").size() if not frame.empty else pd.Series(dtype=int)
    reasons: dict[str, int] = {}
    for item in result.excluded:
        kind = item.reason.split(" (")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    return {
        "source": str(source),
        "source_kind": result.source_kind,
        "task": task.name,
        "classes": list(task.classes),
        "n_images": int(len(frame)),
        "n_patients": int(frame["patient_id"].nunique()) if not frame.empty else 0,
        "images_per_class": class_counts(frame, task.classes) if not frame.empty else dict.fromkeys(task.classes, 0),
        "patients_per_class": patient_counts(frame, task.classes) if not frame.empty else dict.fromkeys(task.classes, 0),
        "images_per_patient": {
            "min": int(per_patient.min()) if len(per_patient) else 0,
            "median": float(per_patient.median()) if len(per_patient) else 0.0,
            "max": int(per_patient.max()) if len(per_patient) else 0,
        },
        "patients_with_several_labels": sorted(
            str(patient) for patient, count in frame.groupby("patient_id")["label"].nunique().items() if count > 1
        )
        if not frame.empty
        else [],
        "generated_patient_ids": result.generated_patient_ids,
        "image_sizes": {
            "distinct": int(len(sizes.drop_duplicates())) if len(sizes) else 0,
            "min_width": int(sizes["width"].min()) if len(sizes) else 0,
            "max_width": int(sizes["width"].max()) if len(sizes) else 0,
            "min_height": int(sizes["height"].min()) if len(sizes) else 0,
            "max_height": int(sizes["height"].max()) if len(sizes) else 0,
        },
        "exact_duplicates": duplicate_groups(frame),
        "near_duplicates": [
            {"paths": [frame["path"].iloc[first], frame["path"].iloc[second]], "hash_distance": distance}
            for first, second, distance in near_duplicate_pairs(frame)
        ],
        "excluded": [{"path": item.path, "reason": item.reason} for item in result.excluded],
        "excluded_by_reason": reasons,
        "notes": list(result.notes),
    }


def render_quality_markdown(report: dict) -> str:
    lines = [
        f"# Quality report: {report['source']}",
        "",
        f"Task `{report['task']}`; {report['n_images']} image(s) from {report['n_patients']} patient(s) kept; "
        f"{len(report['excluded'])} file(s) left out.",
        "",
        "| class | images | patients |",
        "|---|---|---|",
    ]
    for name in report["classes"]:
        lines.append(f"| {name} | {report['images_per_class'][name]} | {report['patients_per_class'][name]} |")
    sizes = report["image_sizes"]
    lines += [
        "",
        f"Image sizes: {sizes['distinct']} distinct, width {sizes['min_width']}-{sizes['max_width']}, "
        f"height {sizes['min_height']}-{sizes['max_height']}.",
        f"Images per patient: min {report['images_per_patient']['min']}, median "
        f"{report['images_per_patient']['median']}, max {report['images_per_patient']['max']}.",
    ]
    if report["patients_with_several_labels"]:
        lines.append(f"Patients with images of several labels: {len(report['patients_with_several_labels'])}.")
    if report["exact_duplicates"]:
        lines += ["", f"## Exact duplicates ({len(report['exact_duplicates'])} group(s))"]
        lines += [f"- {' = '.join(group)}" for group in report["exact_duplicates"]]
    if report["near_duplicates"]:
        lines += ["", f"## Near duplicates ({len(report['near_duplicates'])} pair(s), perceptual hash)"]
        lines += [f"- {' ~ '.join(item['paths'])} (distance {item['hash_distance']})" for item in report["near_duplicates"]]
    if report["notes"]:
        lines += ["", "## Notes"] + [f"- {note}" for note in report["notes"]]
    if report["excluded"]:
        lines += ["", "## Files left out", "", "| file | reason |", "|---|---|"]
        lines += [f"| {item['path']} | {item['reason']} |" for item in report["excluded"]]
    return "\n".join(lines) + "\n"


def write_outputs(result: IngestResult, task: Task, source: Path, out: Path) -> dict:
    """Write manifest, qc.json and qc.md beside it (all atomic)."""
    if source.resolve() == out.resolve():
        raise ManifestError(f"{out}: refusing to overwrite the source CSV; choose another --out")
    report = quality_report(result, task, source)
    write_manifest(result.manifest, out)
    fileio.write_json(out.parent / "qc.json", report)
    fileio.write_text(out.parent / "qc.md", render_quality_markdown(report))
    return report
