"""What a report in another language redraws from the files a run or a comparison left (no model needed).

Evaluation and `compare` draw their figures in English; a report in another language redraws those it can
from metrics.json, predictions.csv (through ``split_figures.write_split_figures``) and comparison.json, and
embeds the rest as they are.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from proctovision.core.i18n import N_
from proctovision.reporting import figures


def split_predictions(run: "RunInfo", split: str) -> pd.DataFrame | None:  # noqa: F821
    if not run.paths.predictions.is_file():
        return None
    rows = pd.read_csv(run.paths.predictions, dtype={"label": str, "split": str})
    if "split" in rows:
        rows = rows[rows["split"] == split]
    return rows if "label" in rows and len(rows) else None


def comparison_bars(folder: Path, target: Path, language: str) -> dict[str, Path]:
    """The metric and reading-time figures of a `compare` folder, labelled in ``language``."""
    from proctovision.evaluation.compare import STUDY_METRICS

    payload = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    table = payload.get("table", [])
    drawn = {}
    with figures.figure_language(language) as _:
        split = _(str(payload.get("split", "")))
        drawn["metrics"] = figures.metric_bars(table, STUDY_METRICS, target / "metrics.png", split, _)
        if any(row.get("reading_time_s") for row in table):
            drawn["reading_time"] = figures.reading_time_bars(table, target / "reading_time.png", _)
        if (payload.get("reading_times") or {}).get("rows"):
            drawn["reading_time_per_case"] = figures.reading_time_per_case(
                payload["reading_times"]["rows"], target / "reading_time_per_case.png", _)
    return drawn


def history_figure(run: "RunInfo", path: Path, language: str = "en") -> Path | None:  # noqa: F821
    """Loss and accuracy per epoch, training and validation, from the run's history.csv."""
    plt = figures.plt
    if not run.paths.history.is_file():
        return None
    history = pd.read_csv(run.paths.history)
    with figures.figure_language(language) as _:
        figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(8, 3.2))
        for column, axis in ((N_("loss"), loss), (N_("accuracy"), accuracy)):
            for stage in ("train", "val"):
                if f"{stage}_{column}" in history:
                    axis.plot(history["epoch"], history[f"{stage}_{column}"], marker=".", label=_(stage))
            axis.set_xlabel(_("epoch"))
            axis.set_title(_(column))
            axis.legend()
        return figures.save(figure, path)
