"""``compare``: models and readers on one split, written as comparison.csv/.md/.json, tests.csv and figures/; with
per-case reading times in readers.csv (``case_time_s``), reading_times.csv and figures/reading_time_per_case.png."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.core import fileio
from proctovision.core.tasks import Task
from proctovision.evaluation import reader_study
from proctovision.evaluation.compare import Participant, compare_participants, markdown, test_row
from proctovision.reporting.comparison import comparison_figures


def compare(
    runs: list[Path], out: Path, readers: Path | None = None, split: str = "test", n_resamples: int = 1000,
    seed: int = 0, truth: Path | None = None, mrmc_covariance: str = "jackknife", simulated_readers: bool = False,
    task: Task | None = None,
) -> dict:
    """Write comparison.csv/.md/.json, tests.csv and figures/ to ``out``; returns the JSON payload.

    ``runs`` are run folders or predictions CSV files; ``truth`` a manifest with the reference labels, needed
    when no model participant carries them (readers only, or predictions without labels). With two or more
    readers, an OR-H MRMC analysis (``mrmc_covariance``: jackknife or bootstrap) goes under "mrmc".
    """
    payload, participants, y_true, task = compare_participants(
        runs, readers, split, n_resamples, seed, truth, mrmc_covariance, simulated_readers, task)
    out.mkdir(parents=True, exist_ok=True)
    payload["files"] = write_outputs(out, payload["table"], payload["tests"], participants, y_true, task, split,
                                     payload["n_images"], payload["missing"], payload["mrmc"],
                                     payload.get("reading_times"), payload.get("matched_by"))
    return payload


def write_outputs(
    out: Path, table: list[dict], tests: list[dict], participants: list[Participant], y_true: np.ndarray,
    task: object, split: str, n_images: int, missing: dict[str, int] | None = None, mrmc: dict | None = None,
    reading_times: dict | None = None, matched_by: str | None = None,
) -> dict[str, str]:
    """Every file of the comparison; returns {name: path} of each one written (figures included)."""
    frame = pd.DataFrame(table)
    curves = reader_study.curve_points(table, participants, y_true, task.is_binary)
    files = {"comparison_csv": fileio.write_csv(out / "comparison.csv", frame)}
    test_rows = [test_row(test) for test in tests]
    files["tests_csv"] = fileio.write_csv(out / "tests.csv", pd.DataFrame(test_rows))
    files["comparison_json"] = fileio.write_json(out / "comparison.json", {
        "split": split, "n_images": n_images, "table": table, "tests": tests, "missing_images": missing or {},
        "mrmc": mrmc, "reading_times": reading_times, "curves": curves, "matched_by": matched_by})
    if reading_times:
        files["reading_times_csv"] = fileio.write_csv(out / "reading_times.csv", reading_time_table(reading_times))
    note = f"\n_{matched_by[0].upper() + matched_by[1:]}._\n" if matched_by else ""
    files["comparison_md"] = fileio.write_text(out / "comparison.md", markdown(
        table, test_rows, split, n_images, missing or {}) + note + reader_study.markdown(mrmc))
    files = {name: str(path) for name, path in files.items()}
    return {**files, **comparison_figures(table, curves, split, out / "figures", reading_times)}


def reading_time_table(reading_times: dict) -> pd.DataFrame:
    """reading_times.csv: seconds to the millisecond, counts as integers (blank where there is none)."""
    frame = pd.DataFrame(reading_times["rows"])
    for column in ("median_s", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").round(3)
    for column in ("n_cases", "n_readers"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    return frame
