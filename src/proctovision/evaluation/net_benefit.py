"""Decision-curve analysis (Vickers & Elkin 2006): is acting on the model better than treating all or none?

At a threshold probability p_t a clinician treats (or biopsies, or refers) when the predicted risk is at least p_t;
p_t / (1 - p_t) is how many false positives one true positive is worth to them. Net benefit
= TP/n − FP/n · p_t/(1 − p_t). TRIPOD+AI asks for this curve beside discrimination and calibration.
"""
from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def net_benefit(y_true: np.ndarray, probability: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating the cases whose predicted probability is at least each threshold."""
    positive = np.asarray(y_true).astype(bool)
    probability = np.asarray(probability, float)
    thresholds = np.asarray(thresholds, float)
    n = len(positive)
    treated = probability[None, :] >= thresholds[:, None]
    true_positives = (treated & positive[None, :]).sum(axis=1)
    false_positives = (treated & ~positive[None, :]).sum(axis=1)
    return true_positives / n - false_positives / n * thresholds / (1 - thresholds)


def treat_all(y_true: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating everyone: prevalence − (1 − prevalence) · p_t/(1 − p_t)."""
    prevalence = float(np.mean(np.asarray(y_true).astype(bool)))
    thresholds = np.asarray(thresholds, float)
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)


def decision_curve(
    y_true: np.ndarray, probabilities: dict[str, np.ndarray], thresholds: np.ndarray = DEFAULT_THRESHOLDS,
) -> dict:
    """Net benefit of each model, treat-all and treat-none over the thresholds, ready for JSON and the figure.

    ``probabilities`` maps a model's name to its probability of the positive class per case. Also gives, per
    model, the threshold range where it beats both default strategies.
    """
    thresholds = np.asarray(thresholds, float)
    everyone = treat_all(y_true, thresholds)
    curves, useful = {}, {}
    for name, probability in probabilities.items():
        benefit = net_benefit(y_true, probability, thresholds)
        curves[name] = benefit.tolist()
        better = thresholds[(benefit > everyone) & (benefit > 0)]
        useful[name] = [float(better.min()), float(better.max())] if len(better) else None
    return {"thresholds": thresholds.tolist(), "treat_all": everyone.tolist(),
            "treat_none": [0.0] * len(thresholds), "models": curves, "useful_range": useful,
            "prevalence": float(np.mean(np.asarray(y_true).astype(bool))), "n": int(len(y_true))}
