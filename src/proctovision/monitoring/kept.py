"""Kept images (opt-in, ``serve --keep-images --retention-days N``): the content area the model saw, as a PNG named
by the prediction id, with no header and no file name, so confirmed cases can train the next version. A retention
limit deletes older ones; ``monitor forget`` deletes on request and says how many."""
from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from proctovision.core import fileio
from proctovision.core.errors import UserError

FOLDER = "kept"
NAME = re.compile(r"^[0-9a-f]{24}\.png$")


class KeptError(UserError, ValueError):
    """Keeping images asked for in a way that cannot be honoured."""


def kept_folder(monitor_folder: str | Path) -> Path:
    return Path(monitor_folder) / FOLDER


def check_retention(keep: bool, retention_days: int | None) -> None:
    if keep and not retention_days:
        raise KeptError("--keep-images needs --retention-days N (how long kept images may stay)")
    if retention_days is not None and retention_days < 1:
        raise KeptError(f"--retention-days {retention_days}: give a whole number of days, at least 1")


def keep_image(monitor_folder: str | Path, prediction_id: str, image: Image.Image) -> Path:
    """Write the pixels alone (a fresh RGB image: no EXIF, no text chunks, no DICOM header), atomically."""
    if not re.fullmatch(r"[0-9a-f]{24}", prediction_id):
        raise KeptError("a kept image is named by its prediction id only")
    pixels = Image.fromarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    target = kept_folder(monitor_folder) / f"{prediction_id}.png"
    return fileio.write_with(target, lambda path: pixels.save(path, format="PNG"))


def kept_images(monitor_folder: str | Path) -> list[Path]:
    folder = kept_folder(monitor_folder)
    return sorted(path for path in folder.glob("*.png") if NAME.match(path.name)) if folder.is_dir() else []


def forget(monitor_folder: str | Path, before: dt.datetime) -> int:
    """Delete the kept images written before ``before`` (UTC); returns how many."""
    cut = before.replace(tzinfo=dt.timezone.utc).timestamp() if before.tzinfo is None else before.timestamp()
    removed = 0
    for path in kept_images(monitor_folder):
        if path.stat().st_mtime < cut:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def enforce_retention(monitor_folder: str | Path, days: int, now: float | None = None) -> int:
    """Delete kept images older than the retention limit."""
    moment = dt.datetime.fromtimestamp((now or time.time()) - days * 86400, tz=dt.timezone.utc)
    return forget(monitor_folder, moment)


def kept_rows(monitor: object, confirmed: pd.DataFrame) -> pd.DataFrame:
    """Confirmed cases whose image was kept, as manifest rows (the prediction id stands in for the patient)."""
    present = {path.stem: path for path in kept_images(monitor.folder)}
    rows = [(str(present[ident]), label, f"kept-{ident}") for ident, label in
            zip(confirmed.get("prediction_id", []), confirmed.get("label", [])) if ident in present]
    return pd.DataFrame(rows, columns=["path", "label", "patient_id"])
