"""The decision rule shared by evaluation, prediction and serving, in numpy alone (the ONNX path imports it).

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


def apply_threshold(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    return (np.asarray(probabilities)[:, 1] >= threshold).astype(int)


def decide(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indices: the threshold on the second class when given (binary), else argmax."""
    probabilities = np.asarray(probabilities)
    if threshold is not None and probabilities.shape[1] == 2:
        return apply_threshold(probabilities, threshold)
    return probabilities.argmax(axis=1)
