"""Figures drawn again in the report's language from the files a run or a comparison left (no model needed).

Evaluation and `compare` draw their figures in English; a report in another language redraws those it can
from metrics.json, predictions.csv and comparison.json, and embeds the rest as they are.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.reporting import figures


def split_figures(run: "RunInfo", split: str, entry: dict, target: Path, language: str) -> dict[str, Path]:  # noqa: F821
    """``roc_<split>.png``, ``pr_<split>.png`` (binary tasks), ``confusion_<split>.png``, ``reliability_<split>.png``."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    drawn: dict[str, Path] = {}
    classes = list(run.task.classes)
    with figures.figure_language(language) as _:
        where = _(split)
        if entry.get("confusion_matrix"):
            drawn[f"confusion_{split}.png"] = figures.confusion_matrix_figure(
                entry["confusion_matrix"], classes, target / f"confusion_{split}.png", _)
        reliability = (entry.get("calibration") or {}).get("reliability")
        if reliability:
            drawn[f"reliability_{split}.png"] = figures.reliability_diagram(
                reliability, target / f"reliability_{split}.png", _("Calibration ({split})").format(split=where), _)
        rows = split_predictions(run, split)
        if run.task.is_binary and rows is not None and f"prob_{classes[1]}" in rows:
            positive = rows["label"].astype(str).eq(classes[1]).to_numpy()
            scores = rows[f"prob_{classes[1]}"].to_numpy(float)
            if 0 < positive.sum() < len(positive):
                fpr, tpr, _thresholds = roc_curve(positive, scores)
                auc = (entry["metrics"].get("roc_auc") or {}).get("value") or float("nan")
                drawn[f"roc_{split}.png"] = figures.roc_curves(
                    {_(classes[1]): (fpr, tpr, auc)}, target / f"roc_{split}.png",
                    _("ROC curve ({split})").format(split=where), _)
                precision, recall, _thresholds = precision_recall_curve(positive, scores)
                average = (entry["metrics"].get("average_precision") or {}).get("value") or float("nan")
                drawn[f"pr_{split}.png"] = figures.pr_curves(
                    {_(classes[1]): (recall, precision, average)}, target / f"pr_{split}.png",
                    float(np.mean(positive)), _("Precision-recall ({split})").format(split=where), _)
    return drawn


def split_predictions(run: "RunInfo", split: str) -> pd.DataFrame | None:  # noqa: F821
    if not run.paths.predictions.is_file():
        return None
    rows = pd.read_csv(run.paths.predictions, dtype={"label": str, "split": str})
    if "split" in rows:
        rows = rows[rows["split"] == split]
    return rows if "label" in rows and len(rows) else None


def comparison_bars(folder: Path, target: Path, language: str) -> dict[str, Path]:
    """The metric and reading-time bars of a `compare` folder, labelled in ``language``."""
    from proctovision.evaluation.compare import STUDY_METRICS

    payload = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    table = payload.get("table", [])
    drawn = {}
    with figures.figure_language(language) as _:
        split = _(str(payload.get("split", "")))
        drawn["metrics"] = figures.metric_bars(table, STUDY_METRICS, target / "metrics.png", split, _)
        if any(row.get("reading_time_s") for row in table):
            drawn["reading_time"] = figures.reading_time_bars(table, target / "reading_time.png", _)
    return drawn
