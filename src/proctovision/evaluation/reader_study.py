"""The MRMC part of a comparison: which analyses a readers table allows, run on the images every participant read.

With scores (binary task) the figure of merit is the AUC; with labels only it is accuracy, and for a binary task
sensitivity and specificity too. Each model is compared with the panel of each reading condition (1T-RRRC), and
two or more conditions read by the same readers are compared with each other (OR-H, fully crossed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from proctovision.evaluation import mrmc


def reader_arrays(
    reader_frame: pd.DataFrame, paths: list[str], classes: tuple[str, ...], condition: str,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Readers of one condition who read every path: names, predicted class indices, and scores if all gave one."""
    rows = reader_frame[reader_frame["condition"] == condition]
    names, labels, scores = [], [], []
    for reader, own in rows.groupby("reader", sort=True):
        own = own.set_index("path")
        if not set(paths) <= set(own.index):
            continue
        own = own.loc[paths]
        names.append(str(reader))
        labels.append([classes.index(label) for label in own["label"]])
        scores.append(own["score"].to_numpy(float))
    scores_array = np.array(scores, float) if scores else np.empty((0, len(paths)))
    has_scores = len(scores) > 0 and np.isfinite(scores_array).all()
    return names, np.array(labels, float).reshape(len(names), len(paths)), scores_array if has_scores else None


def figures_of_merit(binary: bool, scored: bool) -> list[str]:
    if binary and scored:
        return ["auc", "sensitivity", "specificity"]
    return ["accuracy", "sensitivity", "specificity"] if binary else ["accuracy"]


def analyse(
    reader_frame: pd.DataFrame, paths: list[str], y_true: np.ndarray, patients: np.ndarray,
    models: dict[str, tuple[np.ndarray, np.ndarray | None]], classes: tuple[str, ...], method: str = "jackknife",
    n_resamples: int = 2000, seed: int = 0, simulated: bool = False,
) -> dict | None:
    """Every MRMC analysis the data allow, ready for comparison.json; None with fewer than two readers.

    ``models`` maps a model's name to (predicted class indices, probabilities [n, classes] or None).
    """
    binary = len(classes) == 2
    conditions = sorted(set(reader_frame["condition"]))
    panels = {condition: reader_arrays(reader_frame, paths, classes, condition) for condition in conditions}
    panels = {condition: panel for condition, panel in panels.items() if len(panel[0]) >= 2}
    if not panels:
        return None
    groups = patients if len(set(patients)) < len(patients) else None
    common = dict(groups=groups, method=method, n_resamples=n_resamples, seed=seed)
    analyses, skipped = [], []
    for condition, (names, labels, scores) in panels.items():
        for fom in figures_of_merit(binary, scores is not None):
            readers = scores if fom == "auc" else labels
            for model_name, (predicted, probabilities) in models.items():
                values = probabilities[:, 1] if fom == "auc" and probabilities is not None else predicted
                if fom == "auc" and probabilities is None:
                    continue
                try:
                    result = mrmc.model_vs_readers(y_true, values, readers, fom, reader_names=names,
                                                   model_name=model_name, **common)
                except mrmc.MRMCError as error:
                    skipped.append(f"{model_name} vs readers{_label(condition)} ({fom}): {error}")
                    continue
                analyses.append({**result, "condition": condition or None})
    shared = _readers_in_every_condition(panels)
    if len(panels) >= 2 and len(shared) >= 2:
        stacked = {condition: _subset(panel, shared) for condition, panel in panels.items()}
        scored = all(panel[2] is not None for panel in stacked.values())
        for fom in figures_of_merit(binary, scored):
            ratings = np.stack([panel[2] if fom == "auc" else panel[1] for panel in stacked.values()])
            try:
                analyses.append(mrmc.or_analysis(y_true, ratings, fom, conditions=list(stacked), readers=shared,
                                                 **common))
            except mrmc.MRMCError as error:
                skipped.append(f"conditions {', '.join(stacked)} ({fom}): {error}")
    unit = "patient" if groups is not None else "image"
    return {"method": mrmc.METHOD, "covariance": method, "resampled_unit": unit,
            "n_units": int(len(set(patients))) if groups is not None else len(paths), "n_images": len(paths),
            "simulated_readers": simulated, "analyses": analyses, "skipped": skipped}


def operating_points(readers: list, y_true: np.ndarray) -> tuple[dict, dict]:
    """Each reader's (1 - specificity, sensitivity) from their labels, and their ROC curve when they gave scores."""
    from sklearn.metrics import roc_curve

    positive = np.asarray(y_true) == 1
    points, curves = {}, {}
    for reader in readers:
        called = np.asarray(reader.predicted) == 1
        points[reader.name] = (float(called[~positive].mean()), float(called[positive].mean()))
        if reader.scores is not None:
            fpr, tpr, _ = roc_curve(positive, reader.scores)
            curves[reader.name] = (fpr, tpr, mrmc.figure_of_merit(positive, reader.scores))
    return points, curves


def _listed(values: np.ndarray) -> list[float]:
    return [round(float(value), 6) for value in values]


def curve_points(table: list[dict], participants: list, y_true: np.ndarray, binary: bool) -> dict | None:
    """What compare's ROC, precision-recall and readers' ROC figures draw, as JSON numbers: each scored model's
    fpr/tpr and recall/precision points with its AUC and AP, the prevalence, and (with readers) each reader's
    operating point, ROC curve where they gave scores, and reading condition. None for a multi-class task or
    when no model has scores."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if not binary:
        return None
    models = {}
    for participant in participants:
        if participant.probabilities is None:
            continue
        fpr, tpr, _ = roc_curve(y_true, participant.probabilities[:, 1])
        precision, recall, _ = precision_recall_curve(y_true, participant.probabilities[:, 1])
        row = next(item for item in table if item["participant"] == participant.name)
        models[participant.name] = {"fpr": _listed(fpr), "tpr": _listed(tpr), "auc": row.get("roc_auc"),
                                    "recall": _listed(recall), "precision": _listed(precision),
                                    "average_precision": row.get("average_precision")}
    if not models:
        return None
    readers = [participant for participant in participants if participant.kind != "model"]
    points, curves = operating_points(readers, y_true) if readers else ({}, {})
    return {"prevalence": float(np.mean(np.asarray(y_true) == 1)), "models": models,
            "readers": {name: list(point) for name, point in points.items()},
            "reader_curves": {name: {"fpr": _listed(fpr), "tpr": _listed(tpr), "auc": float(auc)}
                              for name, (fpr, tpr, auc) in curves.items()},
            "conditions": {reader.name: reader.condition for reader in readers}}


def _label(condition: str) -> str:
    return f" ({condition})" if condition else ""


def _readers_in_every_condition(panels: dict[str, tuple[list[str], np.ndarray, np.ndarray | None]]) -> list[str]:
    sets = [set(names) for names, _, _ in panels.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _subset(panel: tuple[list[str], np.ndarray, np.ndarray | None], keep: list[str]):
    names, labels, scores = panel
    index = [names.index(name) for name in keep]
    return keep, labels[index], None if scores is None else scores[index]


def markdown(result: dict | None) -> str:
    """The MRMC section of comparison.md."""
    if not result or not result["analyses"]:
        return ""
    unit = "patients (all images of a patient together)" if result["resampled_unit"] == "patient" else "images"
    lines = ["", "## Multi-reader multi-case analysis (OR-H)" + (" — simulated readers" if result["simulated_readers"]
                                                                  else ""), "",
             f"{result['method']}. Covariances: {result['covariance']} over {result['n_units']} {unit}. "
             "Readers and cases are random: the result generalises to other readers and other patients.", "",
             "| comparison | figure of merit | a | b | difference a-b (95% CI) | df | p | note |",
             "|---|---|---|---|---|---|---|---|"]
    for analysis in result["analyses"]:
        if analysis["design"] == "model_vs_readers":
            rows = [analysis["difference"]]
            label = "model vs readers" + _label(analysis.get("condition") or "")
            a_value, b_value = analysis["model_fom"], analysis["readers_mean"]
            names = [(f"{rows[0]['a']} {a_value:.3f}", f"readers' mean {b_value:.3f}")]
        else:
            rows = analysis["rrrc"]["differences"]
            label = "conditions"
            means = analysis["condition_means"]
            names = [(f"{row['a']} {means[row['a']]:.3f}", f"{row['b']} {means[row['b']]:.3f}") for row in rows]
        for row, (a, b) in zip(rows, names):
            p = "-" if row["p_value"] is None else f"{row['p_value']:.4f}"
            df = "∞ (z)" if row.get("normal_approximation") else "-" if row["df"] is None else f"{row['df']:.1f}"
            low, high = row["ci95"]
            interval = "" if low is None or high is None or low == high else f" ({low:+.3f} to {high:+.3f})"
            lines.append(f"| {label} | {analysis['figure_of_merit']} | {a} | {b} | {row['difference']:+.3f}"
                         f"{interval} | {df} | {p} | {row.get('note') or ''} |")
    for reason in result["skipped"]:
        lines.append(f"\nNot analysed: {reason}")
    return "\n".join(lines) + "\n"
