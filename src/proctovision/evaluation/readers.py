"""Human readers: their labels per image (readers.csv), and simulated readers for the demo."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision import fileio
from proctovision.errors import UserError


class ReadersError(UserError, ValueError):
    """A readers file that cannot be used; the message names the file and the reason."""


def read_readers(path: str | Path, classes: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rows (path, reader, label) with paths made absolute, and each reader's total reading time if given."""
    path = Path(path)
    if not path.is_file():
        raise ReadersError(f"{path}: file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [column.strip() for column in frame.columns]
    missing = [column for column in ("path", "reader", "label") if column not in frame.columns]
    if missing:
        raise ReadersError(f"{path}: missing column(s) {', '.join(missing)}")
    by_lower = {name.lower(): name for name in classes}
    unknown = sorted({label for label in frame["label"] if label.strip().lower() not in by_lower})
    if unknown:
        raise ReadersError(f"{path}: labels {unknown} are not classes ({', '.join(classes)})")
    frame["label"] = [by_lower[label.strip().lower()] for label in frame["label"]]
    frame["path"] = [os.path.abspath(path.parent / entry) for entry in frame["path"]]
    times: dict[str, float] = {}
    if "reading_time_s" in frame.columns:
        for reader, values in frame.groupby("reader")["reading_time_s"]:
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            if len(numbers):
                times[str(reader)] = float(numbers.iloc[0])
    return frame[["path", "reader", "label"]], times


def simulate_readers(
    truth: pd.DataFrame, classes: tuple[str, ...], out: str | Path, seed: int = 0,
    readers: tuple[tuple[str, float, float], ...] = (("senior", 0.95, 12.0), ("junior", 0.9, 16.0)),
) -> Path:
    """Write a readers.csv for the demo: each reader errs on a share of images (to a neighbouring grade).

    ``readers`` holds (name, accuracy, seconds per image); the total reading time is recorded per reader.
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    rows = []
    for name, accuracy, seconds in readers:
        total = round(seconds * len(truth) * float(rng.uniform(0.9, 1.1)), 1)
        for entry, label in zip(truth["path"], truth["label"]):
            index = classes.index(label)
            if rng.random() > accuracy:
                index = index + 1 if index + 1 < len(classes) and (index == 0 or rng.random() < 0.5) else index - 1
            rows.append({"path": os.path.relpath(entry, out.parent), "reader": name, "label": classes[index],
                         "reading_time_s": total})
    fileio.write_csv(out, pd.DataFrame(rows))
    return out
