"""Reading time per case (numbers only): medians with 95% bootstrap CIs per reader and arm, per arm, and the model.

The input is the per-case time of a readers.csv (``case_time_s``, as ``reading export`` writes it; the reading
room's server measures it). Each reader's median in each arm (``condition``) gets a percentile CI from a
bootstrap over cases; each arm pools its readers, resampling whole cases (all readers' times of a drawn case
go together). A model has no per-case times: its time per image is its evaluation's ``reading_time_s`` over
``n_images`` (metrics.json), shown without a CI.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.evaluation.readers import ReadersError, participant_name

UNIT = "seconds per case"


def case_times(path: str | Path) -> pd.DataFrame | None:
    """``reader, condition, case, seconds`` from a readers.csv with ``case_time_s``; None without that column.

    Cases are keyed by ``case`` where given (the reading room's opaque id), else by path and frame.
    """
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [column.strip() for column in frame.columns]
    if "case_time_s" not in frame.columns:
        return None
    if "case" in frame.columns and frame["case"].str.strip().ne("").all():
        case = frame["case"].str.strip()
    else:
        case = frame["path"].str.strip() + "|" + (frame["frame"].str.strip() if "frame" in frame.columns else "")
    seconds = pd.to_numeric(frame["case_time_s"].str.strip(), errors="coerce")
    bad = seconds.isna() & frame["case_time_s"].str.strip().ne("") | (seconds < 0)
    if bad.any():
        raise ReadersError(f"{path}: row {int(np.flatnonzero(bad.to_numpy())[0]) + 1}: case_time_s "
                           f"{frame['case_time_s'].iloc[int(np.flatnonzero(bad.to_numpy())[0])]!r} is not a "
                           "number of seconds")
    condition = frame["condition"].str.strip() if "condition" in frame.columns else ""
    times = pd.DataFrame({"reader": frame["reader"].str.strip(), "condition": condition, "case": case,
                          "seconds": seconds})
    return times.dropna(subset=["seconds"]).reset_index(drop=True)


def median_ci(groups: list[np.ndarray], n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median of all times and its 95% percentile CI, resampling the cases (each array: one case's times)."""
    values = np.concatenate(groups)
    rng = np.random.default_rng(seed)
    if all(len(group) == 1 for group in groups):  # one time per case: vectorised
        draws = rng.integers(0, len(values), size=(n_resamples, len(values)))
        samples = np.median(values[draws], axis=1)
    else:
        draws = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
        samples = np.array([np.median(np.concatenate([groups[index] for index in row])) for row in draws])
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(np.median(values)), float(low), float(high)


def summarise(times: pd.DataFrame, models: list[tuple[str, float | None]] = (), n_resamples: int = 2000,
              seed: int = 0) -> dict:
    """Rows per reader and arm (kind ``reader``), per arm over its readers (kind ``arm``) and per model (kind
    ``model``, no CI), each with ``median_s``, ``ci_low``, ``ci_high`` and ``n_cases``."""
    rows = []
    for (reader, condition), group in times.groupby(["reader", "condition"], sort=True):
        per_case = [np.asarray(values, float) for _, values in group.groupby("case")["seconds"]]
        median, low, high = median_ci(per_case, n_resamples, seed)
        rows.append({"participant": participant_name(reader, condition), "kind": "reader", "reader": reader,
                     "condition": condition, "n_cases": len(per_case), "n_readers": 1,
                     "median_s": median, "ci_low": low, "ci_high": high})
    for condition, group in times.groupby("condition", sort=True):
        if group["reader"].nunique() < 2:
            continue
        per_case = [np.asarray(values, float) for _, values in group.groupby("case")["seconds"]]
        median, low, high = median_ci(per_case, n_resamples, seed)
        rows.append({"participant": participant_name("all readers", condition), "kind": "arm", "reader": "",
                     "condition": condition, "n_cases": len(per_case), "n_readers": int(group["reader"].nunique()),
                     "median_s": median, "ci_low": low, "ci_high": high})
    for name, per_image in models:
        if per_image:
            rows.append({"participant": name, "kind": "model", "reader": "", "condition": "", "n_cases": None,
                         "n_readers": 0, "median_s": float(per_image), "ci_low": None, "ci_high": None})
    return {"unit": UNIT, "statistic": "median",
            "interval": "95% percentile bootstrap over cases (an arm resamples whole cases with all its readers' "
                        "times); models: evaluation reading_time_s / n_images, no interval",
            "resamples": n_resamples, "seed": seed, "rows": rows}
