"""Operating thresholds and calibration, both fitted on the validation split and applied unchanged elsewhere."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_curve

from proctovision.core.errors import UserError
from proctovision.core.decision import apply_threshold, scale
from proctovision.evaluation.metrics import calibration_bins

__all__ = ["apply_threshold", "choose_threshold", "fit_temperature", "logistic_calibration", "reliability", "scale"]


class ThresholdError(UserError, ValueError):
    """A threshold rule that cannot be read or met."""


def check_threshold_rule(rule: str) -> str:
    """Refuse a rule that cannot mean anything before any work starts: numbers and targets lie in 0..1."""
    text = str(rule).strip().lower()
    usage = f"threshold rule {rule!r}: use youden, sensitivity:X, specificity:X (X in 0..1) or a number in 0..1"
    if text == "youden":
        return text
    kind, colon, target = text.partition(":")
    if colon and kind not in ("sensitivity", "specificity"):
        raise ThresholdError(usage)
    try:
        value = float(target if colon else text)
    except ValueError as error:
        raise ThresholdError(usage) from error
    if not 0.0 <= value <= 1.0:
        raise ThresholdError(f"{usage}; {value:g} is out of range")
    return text


def choose_threshold(y_true: np.ndarray, positive_probability: np.ndarray, rule: str) -> float:
    """``youden`` (max sensitivity + specificity − 1), ``sensitivity:0.9``, ``specificity:0.95``, or a number.

    The cut is placed midway between the chosen validation score and the next lower one: the same
    validation decisions, but not glued to one image's score, which matters on small, separable sets.
    """
    rule = check_threshold_rule(rule)
    if is_fixed_threshold(rule):
        return float(rule)
    if len(np.unique(y_true)) < 2:
        raise ThresholdError(f"threshold rule {rule!r} needs both classes in the validation split")
    fpr, tpr, thresholds = roc_curve(y_true, positive_probability, drop_intermediate=False)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if rule == "youden":
        return _midway(thresholds, int(np.argmax(tpr - fpr)))
    kind, _, target = rule.partition(":")
    wanted = float(target)
    if kind == "sensitivity":
        return _midway(thresholds, int(np.argmax(tpr >= wanted)))
    return _midway(thresholds, int(np.flatnonzero(1 - fpr >= wanted)[-1]))


def is_fixed_threshold(rule: str) -> bool:
    try:
        float(rule)
    except ValueError:
        return False
    return True


def _midway(thresholds: np.ndarray, index: int) -> float:
    if index + 1 < len(thresholds):
        return float((thresholds[index] + thresholds[index + 1]) / 2)
    return float(thresholds[index])


def fit_temperature(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0))

    def nll(temperature: float) -> float:
        return float(-np.log(np.clip(scale(probabilities, temperature, log_p)[np.arange(len(y_true)), y_true],
                                     1e-12, 1)).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def reliability(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10, y_pred: np.ndarray | None = None) -> dict:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's data), binned as the
    ECE is, on the decision actually made (``y_pred``: the operating threshold for binary tasks)."""
    count, correct, confidence = calibration_bins(y_true, probabilities, y_pred, bins)
    filled = count > 0
    mean = lambda values: [float(v / n) if n else None for v, n in zip(values, count)]  # noqa: E731
    return {"confidence": mean(confidence), "accuracy": mean(correct), "count": [int(n) for n in count],
            "filled_bins": int(filled.sum())}


def logistic_calibration(y_true: np.ndarray, positive_probability: np.ndarray) -> dict[str, float]:
    """Cox's logistic recalibration of a binary model: y ~ intercept + slope * logit(p), by maximum likelihood
    (statsmodels). A slope of 1 and an intercept of 0 is a calibrated model; slope < 1 means overconfident."""
    from statsmodels.discrete.discrete_model import Logit

    y_true = np.asarray(y_true, dtype=float)
    if len(np.unique(y_true)) < 2:
        raise ThresholdError("logistic calibration needs both classes among the cases")
    p = np.clip(np.asarray(positive_probability, dtype=float), 1e-12, 1 - 1e-12)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = Logit(y_true, np.column_stack([np.ones_like(p), np.log(p / (1 - p))])).fit(disp=0, maxiter=200)
    intercept, slope = (float(value) for value in fit.params)
    return {"intercept": intercept, "slope": slope}


def calibration_slope_ci(
    y_true: np.ndarray, positive_probability: np.ndarray, patients: np.ndarray, n_resamples: int = 1000, seed: int = 0,
) -> dict[str, dict]:
    """The calibration slope and intercept, each with a percentile CI over patient resamples, as metrics.json has."""
    from proctovision.evaluation.metrics import patient_bootstrap_indices

    y_true, positive_probability = np.asarray(y_true), np.asarray(positive_probability, dtype=float)
    observed = logistic_calibration(y_true, positive_probability)
    draws = []
    for index in patient_bootstrap_indices(np.asarray(patients), n_resamples, seed):
        if len(np.unique(y_true[index])) == 2:
            draws.append(logistic_calibration(y_true[index], positive_probability[index]))
    result = {}
    for name in ("slope", "intercept"):
        samples = np.array([draw[name] for draw in draws])
        samples = samples[np.isfinite(samples)]
        low, high = np.percentile(samples, [2.5, 97.5]) if len(samples) else (np.nan, np.nan)
        result[f"calibration_{name}"] = {"value": observed[name], "ci95": [float(low), float(high)],
                                         "ci_method": "patient bootstrap (percentile)", "unit": "image"}
    return result
