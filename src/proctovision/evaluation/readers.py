"""Human readers: their labels per image (readers.csv), and simulated readers for the demo."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core.errors import UserError
from proctovision.core.tables import frame_keys, read_table


class ReadersError(UserError, ValueError):
    """A readers file that cannot be used; the message names the file and the reason."""


def read_readers(path: str | Path, classes: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rows (path, frame, reader, label, score, condition, simulated) with paths made absolute, and each reader's
    total reading time. ``frame`` keys multi-frame DICOM rows ("" otherwise); ``score`` (a confidence or rating,
    higher = more likely the positive or higher class) is NaN where not given; ``condition`` (e.g. unaided/aided)
    is "" where not given; ``simulated`` marks made-up readers. Reading times are per reader (and condition).
    """
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
    frame["frame"] = frame_keys(frame)
    frame["score"] = _scores(frame, path)
    frame["condition"] = [value.strip() for value in frame["condition"]] if "condition" in frame.columns else ""
    frame = _without_repeats(frame, path)
    times: dict[str, float] = {}
    if "reading_time_s" in frame.columns:
        for (reader, condition), values in frame.groupby(["reader", "condition"])["reading_time_s"]:
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            if len(numbers):
                times[participant_name(str(reader), str(condition))] = float(numbers.iloc[0])
    frame["simulated"] = frame["simulated"].str.strip().str.lower().isin(("yes", "true", "1")) \
        if "simulated" in frame.columns else False
    return frame[["path", "frame", "reader", "label", "score", "condition", "simulated"]], times


def participant_name(reader: str, condition: str) -> str:
    """How a reader under one condition is named in tables: ``reader`` or ``reader (condition)``."""
    return f"{reader} ({condition})" if condition else reader


def _scores(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "score" not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    text = frame["score"].str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = sorted(set(text[numbers.isna() & (text != "")]))
    if bad:
        raise ReadersError(f"{path}: scores {bad[:5]} are not numbers")
    return numbers


def _without_repeats(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop rows repeated verbatim; a reader giving one image two different readings is an error."""
    keys = ["path", "frame", "reader", "condition"]
    frame = frame.drop_duplicates(keys + ["label", "score"])
    repeated = frame.duplicated(keys)
    if repeated.any():
        first = frame[repeated].iloc[0]
        raise ReadersError(f"{path}: reader {first['reader']!r} gives {first['path']} two different readings"
                           + (f" under condition {first['condition']!r}" if first["condition"] else ""))
    return frame


def reader_labels(path: Path) -> set[str]:
    """The labels a readers file uses, when no task gives the class order."""
    path = Path(path)
    if not path.is_file():
        raise ReadersError(f"{path}: file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [column.strip() for column in frame.columns]
    if "label" not in frame.columns:
        raise ReadersError(f"{path}: missing column(s) label")
    return {label.strip() for label in frame["label"] if label.strip()}


def written_bare(paths: "pd.Series | list[str]") -> bool:
    """Whether a sheet names every case without a folder (``case0001.png``), as sheets kept by hand often do."""
    return all("/" not in str(path) and "\\" not in str(path) for path in paths)


def _by_name(keys: list[str]) -> list[str] | None:
    """``PATH|FRAME`` keys → ``NAME|FRAME``; None when two cases of one sheet share a file name."""
    named = [f"{Path(path).name}|{frame}" for path, frame in (key.rsplit("|", 1) for key in keys)]
    return named if len(set(named)) == len(set(keys)) else None


def match_cases(sheets: dict[str, tuple[list[str], bool]]) -> tuple[dict[str, list[str]], str | None]:
    """The keys by which the cases of several sheets (name → ``PATH|FRAME`` keys, each path resolved against its own
    CSV's folder, and whether the sheet wrote its ids bare) meet: the resolved paths when they share any case;
    otherwise, when a sheet names cases by bare file name, the file names themselves (unique within each sheet), with
    a note that says so. ``compare`` and a reader-study pilot read their sheets through this one rule."""
    keys = {name: list(values) for name, (values, _) in sheets.items()}
    if _shared(keys) or not any(bare for _, bare in sheets.values()):
        return keys, None
    named = {name: _by_name(values) for name, values in keys.items()}
    if any(values is None for values in named.values()) or not _shared(named):
        return keys, None
    bare = [name for name, (_, is_bare) in sheets.items() if is_bare]
    return named, (f"cases matched by file name: {', '.join(bare)} name{'s' if len(bare) == 1 else ''} cases without "
                   "a folder, and each sheet's paths are read relative to its own folder, so they were matched by the "
                   "file name itself")


def no_match_example(sheets: dict[str, list[str]]) -> str:
    """One key from each sheet, so a user sees why nothing matched."""
    def shown(key: str) -> str:
        path, frame = key.rsplit("|", 1)
        return f"{path!r}" + (f" frame {frame}" if frame else "")

    return "; ".join(f"{name} has {shown(values[0])}" for name, values in sheets.items() if values)


def _shared(keys: dict[str, list[str]]) -> bool:
    sets = [set(values) for values in keys.values()]
    return bool(sets) and bool(set.intersection(*sets))
