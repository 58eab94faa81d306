"""Classification metrics from scikit-learn, with patient-level bootstrap confidence intervals.

Images of one patient are not independent, so the bootstrap resamples patients and
takes all their images, which gives honest (wider) intervals than resampling images.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def specificity(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """True-negative rate; for several classes the macro mean of one-vs-rest specificities."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    values = []
    for index in range(n_classes):
        negatives = matrix.sum() - matrix[index].sum()
        true_negatives = negatives - (matrix[:, index].sum() - matrix[index, index])
        values.append(true_negatives / negatives if negatives else np.nan)
    if n_classes == 2:
        return float(values[1])
    return float(np.nanmean(values))


def roc_auc(y_true: np.ndarray, probabilities: np.ndarray, n_classes: int) -> float:
    if len(np.unique(y_true)) < n_classes:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y_true, probabilities[:, 1]))
    return float(roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro", labels=list(range(n_classes))))


def negative_predictive_value(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    called_negative = y_pred == 0
    return float((y_true[called_negative] == 0).mean()) if called_negative.any() else float("nan")


def brier(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared distance of the probability vector to the one-hot truth (binary: sklearn's Brier score)."""
    if probabilities.shape[1] == 2:
        return float(brier_score_loss(y_true, probabilities[:, 1]))
    onehot = np.eye(probabilities.shape[1])[y_true]
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def expected_calibration_error(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by count."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def per_class_functions(n_classes: int, class_names: tuple[str, ...]) -> dict[str, MetricFn]:
    """One-vs-rest precision, recall, F1 and AUC for every class of a multi-class task."""
    functions: dict[str, MetricFn] = {}
    for index, name in enumerate(class_names):
        def pick(values: np.ndarray, index: int = index) -> float:
            return float(values[index])

        options = {"labels": list(range(n_classes)), "average": None, "zero_division": 0}
        functions[f"precision_{name}"] = lambda t, p, _, k=index: pick(precision_score(t, p, **options), k)
        functions[f"recall_{name}"] = lambda t, p, _, k=index: pick(recall_score(t, p, **options), k)
        functions[f"f1_{name}"] = lambda t, p, _, k=index: pick(f1_score(t, p, **options), k)
        functions[f"roc_auc_{name}"] = lambda t, _, q, k=index: (
            float(roc_auc_score(t == k, q[:, k])) if 0 < (t == k).sum() < len(t) else float("nan")
        )
    return functions


def metric_functions(n_classes: int, ordinal: bool, class_names: tuple[str, ...] = ()) -> dict[str, MetricFn]:
    """Name → f(y_true, y_pred, probabilities); binary metrics take the second class as positive."""
    labels = list(range(n_classes))
    average = "binary" if n_classes == 2 else "macro"
    options = {"labels": labels if n_classes > 2 else None, "average": average, "zero_division": 0}
    if n_classes == 2:
        options["pos_label"] = 1
        options.pop("labels")
    functions: dict[str, MetricFn] = {
        "accuracy": lambda t, p, _: float(accuracy_score(t, p)),
        "precision": lambda t, p, _: float(precision_score(t, p, **options)),
        "recall": lambda t, p, _: float(recall_score(t, p, **options)),
        "specificity": lambda t, p, _: specificity(t, p, n_classes),
        "f1": lambda t, p, _: float(f1_score(t, p, **options)),
        "roc_auc": lambda t, _, q: roc_auc(t, q, n_classes),
    }
    if n_classes == 2:
        functions["sensitivity"] = functions["recall"]
        functions["ppv"] = functions["precision"]
        functions["npv"] = lambda t, p, _: negative_predictive_value(t, p)
        functions["average_precision"] = lambda t, _, q: (
            float(average_precision_score(t, q[:, 1])) if 0 < t.sum() < len(t) else float("nan")
        )
    elif class_names:
        functions.update(per_class_functions(n_classes, class_names))
    if ordinal:
        functions["quadratic_kappa"] = lambda t, p, _: float(cohen_kappa_score(t, p, weights="quadratic", labels=labels))
    functions["brier"] = lambda t, _, q: brier(t, q)
    functions["ece"] = lambda t, _, q: expected_calibration_error(t, q)
    return functions


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
    probabilities = np.asarray(probabilities)
    y_pred = probabilities.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    functions = metric_functions(n_classes, ordinal, class_names)
    if include is not None:
        functions = {name: function for name, function in functions.items() if name in include}
    resamples = patient_bootstrap_indices(np.asarray(patients), n_resamples, seed) if n_resamples else []
    results: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, function in functions.items():
            value = function(y_true, y_pred, probabilities)
            samples = np.array([function(y_true[idx], y_pred[idx], probabilities[idx]) for idx in resamples])
            samples = samples[np.isfinite(samples)] if len(samples) else samples
            low, high = (np.percentile(samples, [2.5, 97.5]) if len(samples) else (np.nan, np.nan))
            results[name] = {
                "value": _clean(value),
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
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist()
