"""The decision rule shared by evaluation, prediction and serving, in numpy alone (the ONNX path imports it),
and the operating point (threshold, temperature) a model card carries from evaluation to predict and serve.

Binary tasks call the positive class at or above the operating threshold fitted on validation; other tasks
take the most probable class. Temperature scaling rescales probabilities before either.
"""
from __future__ import annotations

import numpy as np


def scale(probabilities: np.ndarray, temperature: float, log_p: np.ndarray | None = None) -> np.ndarray:
    """Temperature scaling (Guo et al., 2017) applied to probabilities: softmax(log p / T)."""
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0)) if log_p is None else log_p
    scaled = log_p / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def logistic(probabilities: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """Logistic recalibration of a binary model (Cox 1958): logit p' = intercept + slope * logit p."""
    positive = np.clip(np.asarray(probabilities, dtype=float)[:, 1], 1e-12, 1 - 1e-12)
    refitted = 1.0 / (1.0 + np.exp(-(intercept + slope * np.log(positive / (1 - positive)))))
    return np.column_stack([1 - refitted, refitted])


def apply_threshold(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    return (np.asarray(probabilities)[:, 1] >= threshold).astype(int)


def decide(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indices: the threshold on the second class when given (binary), else argmax."""
    probabilities = np.asarray(probabilities)
    if threshold is not None and probabilities.shape[1] == 2:
        return apply_threshold(probabilities, threshold)
    return probabilities.argmax(axis=1)


def operating_point(metrics: dict, is_binary: bool) -> dict:
    """The threshold and temperature evaluation applied, so predict and serve decide as the reported metrics did.

    Both are fitted on the validation split, so every evaluated split carries the same ones; the test
    entry is read first. A run never evaluated keeps the argmax rule (0.5 for two classes), said so plainly.
    """
    entry = next((metrics[split] for split in ("test", "val", *metrics) if split in metrics), {})
    chosen = entry.get("threshold")
    threshold = None
    if is_binary:
        threshold = dict(chosen) if chosen else {"value": 0.5, "rule": "default (run not evaluated)", "chosen_on": None}
    temperature = (entry.get("calibration") or {}).get("temperature")
    return {"threshold": threshold, "temperature": temperature}


def threshold_value(card: dict) -> float | None:
    """The positive-class cut of a binary card; older cards held a bare number or nothing."""
    if len(card.get("classes", ())) != 2:
        return None
    threshold = card.get("threshold")
    value = threshold.get("value") if isinstance(threshold, dict) else threshold
    return 0.5 if value is None else float(value)
