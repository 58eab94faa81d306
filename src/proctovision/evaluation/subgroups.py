"""Performance per subgroup (site, device, sex, age band, grade...) with CIs, and whether it differs across them.

A model that works on average can fail on one device or one grade; regulators and TRIPOD+AI ask for the
breakdown. Each level gets every metric with its patient-bootstrap 95% CI. Whether a metric differs across levels
is Cochran's Q test of homogeneity (statsmodels' ``combine_effects``), with each level's variance taken from the
width of its bootstrap interval: levels are treated as independent samples, which holds when no patient appears in
two levels (the output says when one does).
"""
from __future__ import annotations


import numpy as np
import pandas as pd
from statsmodels.stats.meta_analysis import combine_effects

from proctovision.core.errors import UserError
from proctovision.evaluation.metrics import compute_metrics

Z_975 = 1.959963984540054


class SubgroupError(UserError, ValueError):
    """A subgroup request that cannot be met; the message says why."""


def split_columns(value: str | None) -> list[str]:
    """``--by site,device`` → ["site", "device"]."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def arrays(frame: pd.DataFrame, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth, probabilities, decisions and patients of a predictions-shaped frame (label, prob_<class>, ...)."""
    columns = [f"prob_{name}" for name in classes]
    missing = [column for column in ["label", *columns] if column not in frame.columns]
    if missing:
        raise SubgroupError(f"predictions lack column(s) {', '.join(missing)}")
    index = {name: position for position, name in enumerate(classes)}
    y_true = frame["label"].astype(str).map(index).to_numpy()
    if np.isnan(y_true.astype(float)).any():
        raise SubgroupError(f"labels outside the classes ({', '.join(classes)})")
    probabilities = frame[columns].to_numpy(float)
    if "predicted" in frame.columns:
        y_pred = frame["predicted"].astype(str).map(index).to_numpy()
    else:
        y_pred = probabilities.argmax(axis=1)
    patients = (frame["patient_id"] if "patient_id" in frame.columns else pd.Series(range(len(frame)))).astype(str)
    return y_true.astype(int), probabilities, np.asarray(y_pred, int), patients.to_numpy()


def subgroup_metrics(
    frame: pd.DataFrame, columns: list[str], classes: tuple[str, ...], ordinal: bool = False,
    n_resamples: int = 1000, seed: int = 0, min_images: int = 1,
) -> dict:
    """For each column: every level's metrics with 95% CIs, and a homogeneity test per metric.

    ``frame`` is a predictions table (label, prob_<class>, optional predicted and patient_id) joined with the
    manifest columns to group by. Rows with an empty level form the level "(missing)".
    """
    unknown = [column for column in columns if column not in frame.columns]
    if unknown:
        raise SubgroupError(f"no column(s) {', '.join(unknown)} to group by; available: "
                            f"{', '.join(map(str, frame.columns))}")
    y_true, probabilities, y_pred, patients = arrays(frame, classes)
    result = {}
    for column in columns:
        values = frame[column].astype(str).str.strip().replace({"": "(missing)", "nan": "(missing)"}).to_numpy()
        levels = []
        for level in sorted(set(values)):
            rows = values == level
            if rows.sum() < min_images:
                continue
            metrics = compute_metrics(y_true[rows], probabilities[rows], patients[rows], len(classes), ordinal,
                                      n_resamples=n_resamples, seed=seed, y_pred=y_pred[rows], class_names=classes)
            levels.append({"level": level, "n_images": int(rows.sum()),
                           "n_patients": int(len(set(patients[rows]))), "metrics": metrics})
        shared = _patients_in_several_levels(values, patients)
        result[column] = {"levels": levels, "patients_in_several_levels": shared,
                          "heterogeneity": {metric: homogeneity(levels, metric) for metric in _metric_names(levels)}}
    return result


def _metric_names(levels: list[dict]) -> list[str]:
    names: list[str] = []
    for level in levels:
        names += [name for name in level["metrics"] if name not in names]
    return names


def _patients_in_several_levels(values: np.ndarray, patients: np.ndarray) -> int:
    frame = pd.DataFrame({"level": values, "patient": patients})
    return int((frame.groupby("patient")["level"].nunique() > 1).sum())


def homogeneity(levels: list[dict], metric: str) -> dict | None:
    """Cochran's Q across levels for one metric; None with fewer than two levels that have a CI."""
    estimates, variances, names = [], [], []
    for level in levels:
        item = level["metrics"].get(metric)
        if not item or item["value"] is None or None in item["ci95"]:
            continue
        se = (item["ci95"][1] - item["ci95"][0]) / (2 * Z_975)
        if se <= 0:
            continue
        estimates.append(item["value"])
        variances.append(se ** 2)
        names.append(level["level"])
    if len(estimates) < 2:
        return None
    with np.errstate(invalid="ignore"):  # the random-effects parts, unused here, may take sqrt of a negative
        test = combine_effects(np.array(estimates), np.array(variances), method_re="chi2").test_homogeneity()
    return {"q": float(test.statistic), "df": int(test.df), "p_value": float(test.pvalue), "levels": names,
            "method": "Cochran's Q (variances from the bootstrap CI widths)"}


def safe_name(name: str) -> str:
    return "".join(character if character.isalnum() or character in "-_" else "_" for character in name)


def markdown(result: dict, metrics: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "roc_auc")) -> str:
    """The subgroup section of a report or a score summary."""
    lines = ["# Subgroups", "", "Each cell: value (95% CI, patient bootstrap). p: Cochran's Q test that the metric is "
             "the same in every level."]
    for column, block in result.items():
        shown = [metric for metric in metrics if any(metric in level["metrics"] for level in block["levels"])]
        lines += ["", f"## By {column}", "", "| level | images | patients | " + " | ".join(shown) + " |",
                  "|---|---|---|" + "---|" * len(shown)]
        for level in block["levels"]:
            cells = [_cell(level["metrics"].get(metric)) for metric in shown]
            lines.append(f"| {level['level']} | {level['n_images']} | {level['n_patients']} | " + " | ".join(cells)
                         + " |")
        lines.append("| heterogeneity | | | " + " | ".join(
            f"p = {block['heterogeneity'][metric]['p_value']:.4f}" if block["heterogeneity"].get(metric) else "-"
            for metric in shown) + " |")
        if block["patients_in_several_levels"]:
            lines.append(f"\n{block['patients_in_several_levels']} patient(s) have images in several levels: the "
                         "test's independence assumption is only approximate.")
    return "\n".join(lines) + "\n"


def _cell(item: dict | None) -> str:
    if not item or item["value"] is None:
        return "-"
    low, high = item["ci95"]
    if low is None or high is None:
        return f"{item['value']:.3f}"
    return f"{item['value']:.3f} ({low:.3f} to {high:.3f})"
