"""Classification metrics with patient-level bootstrap confidence intervals.

Images of one patient are not independent, so the bootstrap resamples patients and
takes all their images, which gives honest (wider) intervals than resampling images.

All metrics of one resample come from one confusion matrix and one ranking, in numpy:
a thousand resamples take a fraction of a second instead of the minute that a thousand
rounds of scikit-learn calls (each with its input validation) cost. tests/test_metrics.py
pins every value to scikit-learn. A metric whose denominator is empty (no positive case,
nothing called negative, a class absent) is undefined: NaN, reported as null, and left out
of the bootstrap percentiles instead of counted as zero.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes (scikit-learn's confusion_matrix layout)."""
    cells = np.asarray(y_true, int) * n_classes + np.asarray(y_pred, int)
    return np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _one_vs_rest_specificity(counts: np.ndarray) -> np.ndarray:
    total, actual, called = counts.sum(), counts.sum(axis=1), counts.sum(axis=0)
    negatives = total - actual
    true_negatives = negatives - (called - np.diag(counts))
    return _ratio(true_negatives, negatives)


def specificity(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """True-negative rate; for several classes the macro mean of one-vs-rest specificities."""
    values = _one_vs_rest_specificity(confusion_counts(y_true, y_pred, n_classes))
    return float(values[1]) if n_classes == 2 else _nanmean(values)


def quadratic_kappa(counts: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights: disagreement by two grades costs four times one grade."""
    k, total = len(counts), counts.sum()
    if total == 0:
        return float("nan")
    weights = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / max((k - 1) ** 2, 1)
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total
    denominator = (weights * expected).sum()
    return float(1 - (weights * counts).sum() / denominator) if denominator > 0 else float("nan")


def auc_by_ranks(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); NaN without both classes."""
    positive = np.asarray(positive, bool)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Step-wise area under the precision-recall curve, as scikit-learn's average_precision_score."""
    positive = np.asarray(positive, bool)
    if not positive.any() or positive.all():
        return float("nan")
    order = np.argsort(-np.asarray(scores, float), kind="mergesort")
    sorted_scores, hits = np.asarray(scores, float)[order], positive[order]
    cut = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(hits) - 1]
    true_positives = np.cumsum(hits)[cut]
    precision = true_positives / (cut + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared distance of the probability vector to the one-hot truth (binary: sklearn's Brier score)."""
    y_true = np.asarray(y_true, int)
    if probabilities.shape[1] == 2:
        return float(np.mean((probabilities[:, 1] - y_true) ** 2))
    onehot = np.eye(probabilities.shape[1])[y_true]
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def calibration_bins(
    y_true: np.ndarray, probabilities: np.ndarray, y_pred: np.ndarray | None = None, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of the decided class's probability: count, correct decisions, summed confidence.

    ``y_pred`` is the decision actually made (the operating threshold for binary tasks); without it, argmax.
    """
    predicted = probabilities.argmax(axis=1) if y_pred is None else np.asarray(y_pred, int)
    confidence = probabilities[np.arange(len(probabilities)), predicted]
    correct = predicted == np.asarray(y_true)
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    return (np.bincount(which, minlength=bins), np.bincount(which, correct, bins),
            np.bincount(which, confidence, bins))


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10, y_pred: np.ndarray | None = None
) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by count."""
    count, correct, confidence = calibration_bins(y_true, probabilities, y_pred, bins)
    return float(np.abs(correct - confidence).sum() / max(count.sum(), 1))


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def metric_values(
    y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray, n_classes: int, ordinal: bool = False,
    class_names: tuple[str, ...] = (),
) -> dict[str, float]:
    """Every metric of one set of predictions; binary metrics take the second class as positive."""
    y_true = np.asarray(y_true, int)
    counts = confusion_counts(y_true, y_pred, n_classes)
    true_positives, actual, called = np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)
    precision, recall = _ratio(true_positives, called), _ratio(true_positives, actual)
    f1 = _ratio(2 * true_positives, actual + called)
    auc = np.array([auc_by_ranks(probabilities[:, index], y_true == index) for index in range(n_classes)])
    if n_classes == 2:
        values = {
            "accuracy": true_positives.sum() / counts.sum() if counts.sum() else np.nan,
            "precision": precision[1], "recall": recall[1], "specificity": recall[0], "f1": f1[1],
            "roc_auc": auc[1], "sensitivity": recall[1], "ppv": precision[1], "npv": precision[0],
            "average_precision": average_precision(probabilities[:, 1], y_true == 1),
        }
    else:
        values = {
            "accuracy": true_positives.sum() / counts.sum() if counts.sum() else np.nan,
            "precision": _nanmean(precision), "recall": _nanmean(recall),
            "specificity": _nanmean(_one_vs_rest_specificity(counts)), "f1": _nanmean(f1),
            "roc_auc": float(auc.mean()) if np.isfinite(auc).all() else np.nan,
        }
        for index, name in enumerate(class_names):
            values.update({f"precision_{name}": precision[index], f"recall_{name}": recall[index],
                           f"f1_{name}": f1[index], f"roc_auc_{name}": auc[index]})
    if ordinal:
        values["quadratic_kappa"] = quadratic_kappa(counts)
    values["brier"] = brier(y_true, probabilities)
    values["ece"] = expected_calibration_error(y_true, probabilities, y_pred=y_pred)
    return {name: float(value) for name, value in values.items()}


def patient_bootstrap_indices(patients: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Image indices of each resample, drawn by resampling patients with replacement."""
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(patients, return_inverse=True)
    members = [np.flatnonzero(inverse == index) for index in range(len(unique))]
    draws = rng.integers(0, len(unique), size=(n_resamples, len(unique)))
    return [np.concatenate([members[index] for index in draw]) for draw in draws]


def compute_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    patients: np.ndarray,
    n_classes: int,
    ordinal: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    y_pred: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    include: set[str] | None = None,
    unit: str = "image",
) -> dict[str, dict]:
    """Each metric as ``{"value", "ci95", "unit"}``; CIs are percentile intervals over patient resamples.

    ``unit`` names what one row is (``image``, or ``patient`` for rows made by :func:`patient_level`).
    """
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=float)
    y_pred = probabilities.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    observed = metric_values(y_true, y_pred, probabilities, n_classes, ordinal, class_names)
    names = [name for name in observed if include is None or name in include]
    resamples = patient_bootstrap_indices(np.asarray(patients), n_resamples, seed) if n_resamples else []
    draws = [metric_values(y_true[idx], y_pred[idx], probabilities[idx], n_classes, ordinal, class_names)
             for idx in resamples]
    results: dict[str, dict] = {}
    for name in names:
        samples = np.array([draw[name] for draw in draws])
        samples = samples[np.isfinite(samples)]
        low, high = np.percentile(samples, [2.5, 97.5]) if len(samples) else (np.nan, np.nan)
        results[name] = {
            "value": _clean(observed[name]),
            "ci95": [_clean(low), _clean(high)],
            "unit": unit,
            "ci_method": "patient bootstrap (percentile)" if n_resamples else "none",
        }
    return results


def patient_level(
    y_true: np.ndarray, probabilities: np.ndarray, patients: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One row per patient: their label and the mean of their images' probabilities.

    A clinician decides per patient, so patient-level figures are reported beside the image-level ones.
    None when some patient carries two labels (then no single patient-level truth exists).
    """
    frame = pd.DataFrame(np.asarray(probabilities), columns=range(probabilities.shape[1]))
    frame["label"], frame["patient"] = np.asarray(y_true), np.asarray(patients).astype(str)
    if (frame.groupby("patient")["label"].nunique() > 1).any():
        return None
    grouped = frame.groupby("patient", sort=True)
    mean = grouped[list(range(probabilities.shape[1]))].mean()
    return grouped["label"].first().to_numpy(), mean.to_numpy(), mean.index.to_numpy()


def _clean(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    return confusion_counts(y_true, y_pred, n_classes).tolist()
