"""The four figures of one scored split (ROC, precision-recall, confusion matrix, reliability) and its decision
curve, drawn by one function for every caller and every language: evaluate, score and crossval draw them in
English beside the metrics, and the report redraws them in its own language from the files a run left.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from proctovision.evaluation.score import PROBABILITY_PREFIX
from proctovision.evaluation.subgroups import safe_name
from proctovision.reporting import figures


def decision_curve_figure(result: dict, path: Path) -> Path:
    """The decision-curve figure of :func:`proctovision.evaluation.net_benefit.decision_curve`'s result."""
    thresholds = np.asarray(result["thresholds"])
    curves = {name: (thresholds, np.asarray(values)) for name, values in result["models"].items()}
    return figures.decision_curve(curves, (thresholds, np.asarray(result["treat_all"])), path)


def write_split_figures(
    entry: dict, scored: pd.DataFrame | None, classes: tuple[str, ...], folder: Path, split: str,
    language: str | None = "en",
) -> dict[str, Path]:
    """ROC (one-vs-rest for several classes), PR (binary), confusion matrix and reliability diagram, named
    ``<kind>_<split>.png``; the decision curve too when ``entry`` carries one. Without ``scored`` rows only the
    figures that metrics.json alone supports are drawn."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    written: dict[str, Path] = {}
    with figures.figure_language(language) as _:
        where = _(split)
        if entry.get("decision_curve"):
            written["decision_curve"] = decision_curve_figure(entry["decision_curve"],
                                                              folder / f"decision_curve_{split}.png")
        if scored is not None and len(scored) and "label" in scored:
            y_true = np.array([classes.index(label) if label in classes else -1
                               for label in scored["label"].astype(str).str.strip()])
            probabilities = scored[[PROBABILITY_PREFIX + name for name in classes]].to_numpy(float)
            binary = len(classes) == 2
            curves = {}
            for index, name in enumerate(classes):
                positive = y_true == index
                if (binary and index == 0) or not 0 < positive.sum() < len(positive):
                    continue
                fpr, tpr, _thresholds = roc_curve(positive, probabilities[:, index])
                key = "roc_auc" if binary else f"roc_auc_{name}"
                curves[_(name)] = (fpr, tpr, (entry["metrics"].get(key) or {}).get("value") or float("nan"))
            if curves:
                written["roc"] = figures.roc_curves(curves, folder / f"roc_{split}.png",
                                                    _("ROC curve ({split})").format(split=where), _)
            positive = y_true == 1
            if binary and 0 < positive.sum() < len(positive):
                precision, recall, _thresholds = precision_recall_curve(positive, probabilities[:, 1])
                average = (entry["metrics"].get("average_precision") or {}).get("value") or float("nan")
                written["pr"] = figures.pr_curves({_(classes[1]): (recall, precision, average)},
                                                  folder / f"pr_{split}.png", float(positive.mean()),
                                                  _("Precision-recall ({split})").format(split=where), _)
        if entry.get("confusion_matrix"):
            written["confusion"] = figures.confusion_matrix_figure(entry["confusion_matrix"], list(classes),
                                                                   folder / f"confusion_{split}.png", _)
        reliability = (entry.get("calibration") or {}).get("reliability")
        if reliability:
            written["reliability"] = figures.reliability_diagram(
                reliability, folder / f"reliability_{split}.png",
                _("Calibration ({split})").format(split=where), _)
    return written


def forest_plots(result: dict, out: Path, metrics: tuple[str, ...] = ("accuracy", "roc_auc"),
                 overall: dict | None = None, _=str) -> dict[str, str]:
    """One forest plot per grouping column and metric; ``overall`` maps a metric to the whole-set value;
    ``_`` translates the labels (the report's language)."""
    files = {}
    for column, block in result.items():
        for metric in metrics:
            rows = [{"label": level["level"], "n": level["n_images"], "value": level["metrics"][metric]["value"],
                     "ci95": level["metrics"][metric]["ci95"]} for level in block["levels"]
                    if metric in level["metrics"]]
            if not any(row["value"] is not None for row in rows):
                continue
            test = block["heterogeneity"].get(metric)
            title = _("{metric} by {column}").format(metric=_(metric), column=column) + (
                (" (" + _("heterogeneity p = {p}").format(p=f"{test['p_value']:.3f}") + ")") if test else "")
            path = out / f"forest_{safe_name(column)}_{metric}.png"
            files[f"{column}:{metric}"] = str(figures.forest_plot(rows, path, metric, (overall or {}).get(metric),
                                                                  title, _))
    return files


def fold_roc_figure(oof: pd.DataFrame, classes: tuple[str, ...], path: Path, title: str, _=str) -> Path | None:
    """Each fold's ROC, the mean ROC (vertical averaging of TPR on a common FPR grid) and its ±1 SD band, from
    crossval's oof_predictions.csv; ``_`` translates the labels."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(classes) != 2:
        return None
    grid = np.linspace(0, 1, 101)
    figure, axis = figures.plt.subplots(figsize=(4.8, 4.6))
    curves, aucs = [], []
    for fold, rows in oof.groupby("fold", sort=True):
        truth = (rows["label"].astype(str) == classes[1]).to_numpy()
        if not 0 < truth.sum() < len(truth):
            continue
        scores = rows[f"prob_{classes[1]}"].astype(float).to_numpy()
        fpr, tpr, _thresholds = roc_curve(truth, scores)
        auc = roc_auc_score(truth, scores)
        axis.plot(fpr, tpr, alpha=0.35, linewidth=1, label=_("fold") + f" {fold} (AUC {auc:.3f})")
        curve = np.interp(grid, fpr, tpr)
        curve[0] = 0.0
        curves.append(curve)
        aucs.append(auc)
    if not curves:
        figures.plt.close(figure)
        return None
    mean, sd = np.mean(curves, axis=0), np.std(curves, axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(grid)
    mean[-1] = 1.0
    sd_auc = f" ± {np.std(aucs, ddof=1):.3f}" if len(aucs) > 1 else ""
    axis.plot(grid, mean, color="#1f3f77", linewidth=2, label=_("mean ROC") + f" (AUC {np.mean(aucs):.3f}{sd_auc})")
    axis.fill_between(grid, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), color="#1f3f77", alpha=0.18,
                      label=_("± 1 SD"))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel(_("1 - specificity"))
    axis.set_ylabel(_("sensitivity"))
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    return figures.save(figure, path)
