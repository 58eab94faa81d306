"""Reading every file once: pictures and DICOM (headers, frames, window, pseudonyms), on worker processes, with
the journal that lets an interrupted or repeated ingest skip what it has already judged."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import imagehash

from proctovision.core import fileio
from proctovision.data import pool
from proctovision.data.ingest.sources import Exclusion, IngestResult, Progress, file_sha256
from proctovision.data.journal import Journal, entry_key, file_stamp
from proctovision.imaging import images


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
    dicom.declared_values(dicom.open_dicom(path, pixels=False))  # the pixel budget, before the pixel data is read
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
