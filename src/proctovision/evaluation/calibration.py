"""Operating thresholds and calibration, both fitted on the validation split and applied unchanged elsewhere."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_curve

from proctovision.errors import UserError


class ThresholdError(UserError, ValueError):
    """A threshold rule that cannot be read or met."""


def choose_threshold(y_true: np.ndarray, positive_probability: np.ndarray, rule: str) -> float:
    """``youden`` (max sensitivity + specificity − 1), ``sensitivity:0.9``, ``specificity:0.95``, or a number.

    The cut is placed midway between the chosen validation score and the next lower one: the same
    validation decisions, but not glued to one image's score, which matters on small, separable sets.
    """
    rule = rule.strip().lower()
    try:
        return float(rule)
    except ValueError:
        pass
    if len(np.unique(y_true)) < 2:
        raise ThresholdError(f"threshold rule {rule!r} needs both classes in the validation split")
    fpr, tpr, thresholds = roc_curve(y_true, positive_probability, drop_intermediate=False)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if rule == "youden":
        return _midway(thresholds, int(np.argmax(tpr - fpr)))
    kind, _, target = rule.partition(":")
    try:
        wanted = float(target)
    except ValueError as error:
        raise ThresholdError(f"threshold rule {rule!r}: use youden, sensitivity:X, specificity:X or a number") from error
    if kind == "sensitivity":
        return _midway(thresholds, int(np.argmax(tpr >= wanted)))
    if kind == "specificity":
        return _midway(thresholds, int(np.flatnonzero(1 - fpr >= wanted)[-1]))
    raise ThresholdError(f"threshold rule {rule!r}: use youden, sensitivity:X, specificity:X or a number")


def _midway(thresholds: np.ndarray, index: int) -> float:
    if index + 1 < len(thresholds):
        return float((thresholds[index] + thresholds[index + 1]) / 2)
    return float(thresholds[index])


def apply_threshold(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    return (probabilities[:, 1] >= threshold).astype(int)


def fit_temperature(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0))

    def nll(temperature: float) -> float:
        return float(-np.log(np.clip(scale(probabilities, temperature, log_p)[np.arange(len(y_true)), y_true],
                                     1e-12, 1)).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def scale(probabilities: np.ndarray, temperature: float, log_p: np.ndarray | None = None) -> np.ndarray:
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0)) if log_p is None else log_p
    scaled = log_p / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def reliability(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's data)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = {"confidence": [], "accuracy": [], "count": []}
    for index in range(bins):
        members = which == index
        rows["count"].append(int(members.sum()))
        rows["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        rows["accuracy"].append(float(correct[members].mean()) if members.any() else None)
    return rows
