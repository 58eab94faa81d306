"""A candidate's training data against the locked test set: one shared patient (or, where patient ids are missing,
one shared image) is a leak, and the candidate is refused before anything is measured. The overlap is named by the
locked test file's row numbers, never by a patient identifier."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from proctovision.artefacts.runs import read_run
from proctovision.core import fileio
from proctovision.core.errors import UserError
from proctovision.data.manifest import read_manifest
from proctovision.monitoring.versions import is_export, model_card

TRAINING_SPLITS = ("train", "val")  # validation chose the checkpoint and the threshold: it trained the model too


class LeakError(UserError, ValueError):
    """A candidate trained on the locked test set, or one whose training data cannot be checked."""


def locked_rows(path: Path) -> pd.DataFrame:
    """The locked test set: a manifest, or the test rows of a split CSV; ``row`` is the file's line number."""
    frame = read_manifest(path)
    frame["row"] = frame.index + 2
    if "split" in frame.columns:
        frame = frame[frame["split"] == "test"]
        if frame.empty:
            raise LeakError(f"{path}: a split file without test rows cannot be a locked test set")
    return frame.reset_index(drop=True)


def training_rows(candidate: Path) -> pd.DataFrame:
    """The rows that trained ``candidate``: its split file's train and validation rows."""
    candidate = Path(candidate)
    if is_export(candidate):
        split = (model_card(candidate).get("training_data") or {}).get("split")
        if not split or not Path(split).is_file():
            raise LeakError(f"{candidate}: an export that does not say where its training split lies cannot be "
                            "checked against the locked test set; give its run folder")
    else:
        split = read_run(candidate).config.data.split
    frame = read_manifest(split)
    if "split" not in frame.columns:
        raise LeakError(f"{split}: no split column; cannot tell the candidate's training rows")
    return frame[frame["split"].isin(TRAINING_SPLITS)].reset_index(drop=True)


def image_digests(frame: pd.DataFrame) -> list[str]:
    """Each row's image sha256: the manifest's own column where filled, else read from the file."""
    given = frame["sha256"].astype(str) if "sha256" in frame.columns else pd.Series([""] * len(frame))
    return [digest if digest else (fileio.sha256(path) if Path(path).is_file() else "")
            for digest, path in zip(given, frame["path"])]


def has_patients(frame: pd.DataFrame) -> bool:
    return "patient_id" in frame.columns and frame["patient_id"].astype(str).str.strip().ne("").all()


def overlap(training: pd.DataFrame, locked: pd.DataFrame) -> dict:
    """Locked test rows that share a patient (where both sides carry patient ids) or an image with training."""
    shared_patients: list[int] = []
    if has_patients(locked) and has_patients(training):
        known = set(training["patient_id"].astype(str))
        shared_patients = locked.loc[locked["patient_id"].astype(str).isin(known), "row"].astype(int).tolist()
    train_digests = set(image_digests(training)) - {""}
    shared_images = [int(row) for row, digest in zip(locked["row"], image_digests(locked)) if digest in train_digests]
    return {"patient_rows": shared_patients, "image_rows": shared_images,
            "by": "patient id and image sha256" if has_patients(locked) else "image sha256"}


def refuse_leak(candidate: Path, locked_path: Path) -> dict:
    """Raise, naming the overlap, when the candidate's training data touch the locked test set."""
    locked = locked_rows(locked_path)
    found = overlap(training_rows(candidate), locked)
    if found["patient_rows"] or found["image_rows"]:
        patients = len(set(locked.loc[locked["row"].isin(found["patient_rows"]), "patient_id"]))
        parts = []
        if found["patient_rows"]:
            parts.append(f"{patients} patient(s) (rows {_rows(found['patient_rows'])} of {locked_path.name})")
        if found["image_rows"]:
            parts.append(f"{len(found['image_rows'])} image(s) (rows {_rows(found['image_rows'])})")
        raise LeakError(f"{candidate}: refused: its training data share {' and '.join(parts)} with the locked test "
                        f"set {locked_path}")
    return {**found, "checked": True, "n_locked": int(len(locked))}


def _rows(rows: list[int], shown: int = 10) -> str:
    text = ", ".join(str(row) for row in sorted(rows)[:shown])
    return text + (f" and {len(rows) - shown} more" if len(rows) > shown else "")
