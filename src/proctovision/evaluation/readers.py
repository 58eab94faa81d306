"""Human readers: their labels per image (readers.csv), and simulated readers for the demo."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision import fileio
from proctovision.errors import UserError
from proctovision.tables import frame_keys, read_table


class ReadersError(UserError, ValueError):
    """A readers file that cannot be used; the message names the file and the reason."""


def read_readers(path: str | Path, classes: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rows (path, frame, reader, label, simulated) with paths made absolute, and each reader's total reading
    time if given. ``frame`` keys multi-frame DICOM rows ("" otherwise); ``simulated`` marks made-up readers."""
    path = Path(path)
    frame = read_table(path, ("path", "reader", "label"), ReadersError)
    for column in ("path", "reader", "label"):
        empty = np.flatnonzero(frame[column].str.strip().eq("").to_numpy())
        if len(empty):
            raise ReadersError(f"{path}: row {empty[0] + 1} has no {column}")
    by_lower = {name.lower(): name for name in classes}
    unknown = [(row + 1, label) for row, label in enumerate(frame["label"]) if label.strip().lower() not in by_lower]
    if unknown:
        row, label = unknown[0]
        raise ReadersError(f"{path}: row {row}: label {label!r} is not a class ({', '.join(classes)})"
                           + (f"; {len(unknown) - 1} more row(s) like it" if len(unknown) > 1 else ""))
    frame["label"] = [by_lower[label.strip().lower()] for label in frame["label"]]
    frame["path"] = [os.path.abspath(path.parent / entry) for entry in frame["path"]]
    times: dict[str, float] = {}
    if "reading_time_s" in frame.columns:
        for reader, values in frame.groupby("reader")["reading_time_s"]:
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            if len(numbers):
                times[str(reader)] = float(numbers.iloc[0])
    frame["frame"] = frame_keys(frame)
    frame["simulated"] = frame["simulated"].str.strip().str.lower().isin(("yes", "true", "1")) \
        if "simulated" in frame.columns else False
    return frame[["path", "frame", "reader", "label", "simulated"]], times


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
            rows.append({"path": os.path.relpath(entry, out.parent), "reader": f"{name} (simulated)",
                         "label": classes[index], "reading_time_s": total, "simulated": "yes"})
    fileio.write_csv(out, pd.DataFrame(rows))
    return out
