"""Drift and performance after deployment, in numbers: the output's distribution per window against the reference
(chi-square on the predicted-class mix, Kolmogorov-Smirnov on the probabilities), the label-free estimate of
performance from calibrated probabilities (CBPE), and observed performance on confirmed cases with Wilson 95% CIs,
calibration-in-the-large and the calibration slope.

Windows are consecutive, non-overlapping blocks of ``window`` answers; no test runs on fewer than
``MIN_WINDOW`` answers (the chi-square then has an expected count of at least 5 in any class of 10% or more). Each
window test gets the significance level that spends the false-alarm budget per 10,000 answers, not per window.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import logit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant

MIN_WINDOW = 50
DEFAULT_WINDOW = 100
CBPE_ASSUMPTIONS = ("the probabilities stay calibrated on the new data (no concept drift: P(label | image) is "
                    "unchanged), and the answers are independent")


def window_alpha(alarms_per_10000: float, window: int, n_tests: int) -> float:
    """Significance level per window test: ``alarms_per_10000`` false alarms per 10,000 answers shared between the
    ``n_tests`` tests of each of the 10,000 / ``window`` windows."""
    if window < MIN_WINDOW:
        raise ValueError(f"a window of {window} answers is below the minimum of {MIN_WINDOW}")
    return alarms_per_10000 * window / 10_000 / n_tests


def class_mix_test(counts: np.ndarray, reference_shares: np.ndarray, reference_n: int | None = None) -> dict:
    """Pearson chi-square of the window's predicted-class counts against the reference: against its shares as
    known proportions, or (``reference_n`` given) as a 2 x k table with the reference's counts, which carries the
    reference's own sampling error (a small validation split then raises no alarm on its own noise)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = int(counts.sum())
    if n < MIN_WINDOW:
        raise ValueError(f"a window of {n} answers is below the minimum of {MIN_WINDOW}")
    shares = np.clip(np.asarray(reference_shares, dtype=np.float64), 1e-6, None)
    if reference_n:
        table = np.vstack([np.round(shares / shares.sum() * reference_n), counts])
        table = table[:, table.sum(axis=0) > 0]
        statistic, p_value = stats.chi2_contingency(table, correction=False)[:2] if table.shape[1] > 1 else (0.0, 1.0)
    else:
        statistic, p_value = stats.chisquare(counts, shares / shares.sum() * n)
    return {"n": n, "statistic": float(statistic), "p_value": float(p_value), "shares": (counts / n).tolist()}


def probability_test(window_probabilities: np.ndarray, reference_probabilities: np.ndarray) -> dict:
    """Two-sample Kolmogorov-Smirnov of the window's probabilities (of one class) against the reference's."""
    window_probabilities = np.asarray(window_probabilities, dtype=np.float64)
    if window_probabilities.size < MIN_WINDOW:
        raise ValueError(f"a window of {window_probabilities.size} answers is below the minimum of {MIN_WINDOW}")
    result = stats.ks_2samp(window_probabilities, np.asarray(reference_probabilities, dtype=np.float64))
    return {"n": int(window_probabilities.size), "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def class_mix_tests(counts: np.ndarray, reference_shares: np.ndarray, reference_n: int | None = None) -> dict:
    """:func:`class_mix_test` on many windows at once (``counts``: one row of class counts per window), with the
    same numbers: each 2 x k table's expected counts and Pearson terms are summed as scipy sums them (columns empty
    in both rows left out, so the degrees of freedom follow each window's table). Returns arrays n, statistic,
    p_value and shares (one row per window)."""
    counts = np.asarray(counts, dtype=np.float64).reshape(len(counts), -1)
    n = counts.sum(axis=1)
    if n.size and n.min() < MIN_WINDOW:
        raise ValueError(f"a window of {int(n.min())} answers is below the minimum of {MIN_WINDOW}")
    shares = np.clip(np.asarray(reference_shares, dtype=np.float64), 1e-6, None)
    statistic, p_value = np.zeros(len(counts)), np.ones(len(counts))
    if not reference_n:
        if len(counts):
            statistic, p_value = stats.chisquare(counts, shares / shares.sum() * n[:, None], axis=1)
    else:
        reference = np.round(shares / shares.sum() * reference_n)
        kept = (counts + reference) > 0
        for mask in np.unique(kept, axis=0):
            rows = np.flatnonzero((kept == mask).all(axis=1))
            if mask.sum() < 2:
                continue
            table = np.stack([np.broadcast_to(reference[mask], (len(rows), int(mask.sum()))),
                              counts[np.ix_(rows, mask)]], axis=1)
            expected = table.sum(axis=2)[:, :, None] * table.sum(axis=1)[:, None, :] / table.reshape(
                len(rows), -1).sum(axis=1)[:, None, None]
            terms = ((table - expected) ** 2 / expected).reshape(len(rows), -1)
            statistic[rows] = terms.sum(axis=1)
            p_value[rows] = stats.chi2.sf(statistic[rows], int(mask.sum()) - 1)
    return {"n": n.astype(int), "statistic": np.asarray(statistic, dtype=np.float64),
            "p_value": np.asarray(p_value, dtype=np.float64), "shares": counts / np.maximum(n, 1)[:, None]}


def probability_tests(window_probabilities: np.ndarray, reference_probabilities: np.ndarray) -> dict:
    """:func:`probability_test` on many windows at once (one row of probabilities per window), with the same
    numbers. Each window's statistic comes out in whole steps of 1/lcm(n1, n2): the largest gap between the two
    empirical CDFs is reached just at a window value (F1 above) or just below one (F2 above). scipy's p-value
    depends on that step count alone, so it is asked once per distinct step count; a window with a missing value
    goes to scipy whole."""
    windows_ = np.sort(np.asarray(window_probabilities, dtype=np.float64), axis=1)
    reference = np.sort(np.asarray(reference_probabilities, dtype=np.float64))
    count, n1 = windows_.shape
    if n1 < MIN_WINDOW:
        raise ValueError(f"a window of {n1} answers is below the minimum of {MIN_WINDOW}")
    n2 = reference.size
    statistic, p_value = np.full(count, np.nan), np.full(count, np.nan)
    if count == 0:
        return {"n": np.full(0, n1), "statistic": statistic, "p_value": p_value}
    rank = np.arange(n1, dtype=np.int64)
    at_or_below = np.searchsorted(reference, windows_.ravel(), side="right").reshape(count, n1)
    below = np.searchsorted(reference, windows_.ravel(), side="left").reshape(count, n1)
    first_above = ((rank + 1) * n2 - at_or_below * n1).max(axis=1)
    second_above = (below * n1 - rank * n2).max(axis=1)
    steps = np.maximum(np.maximum(first_above, second_above), 0) // math.gcd(n1, n2)
    complete = ~np.isnan(windows_).any(axis=1) & ~np.isnan(reference).any()
    for index in np.flatnonzero(~complete):
        result = stats.ks_2samp(windows_[index], reference)
        statistic[index], p_value[index] = result.statistic, result.pvalue
    for step in np.unique(steps[complete]):
        rows = np.flatnonzero(complete & (steps == step))
        result = stats.ks_2samp(windows_[rows[0]], reference)
        statistic[rows], p_value[rows] = result.statistic, result.pvalue
    return {"n": np.full(count, n1), "statistic": statistic, "p_value": p_value}


def windows(n: int, window: int = DEFAULT_WINDOW) -> list[slice]:
    """The complete windows of ``window`` answers among n (a last, partial one waits for more answers)."""
    if window < MIN_WINDOW:
        raise ValueError(f"a window of {window} answers is below the minimum of {MIN_WINDOW}")
    return [slice(start, start + window) for start in range(0, n - window + 1, window)]


def cbpe(probabilities: np.ndarray, predicted: np.ndarray, positive: int = 1) -> dict:
    """Confidence-based performance estimation: the expected confusion matrix when each answer is right with its
    calibrated probability. Accuracy for any task; sensitivity and specificity of class ``positive`` (binary)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=int)
    n = len(predicted)
    if n == 0:
        return {"n": 0, "accuracy": None, "sensitivity": None, "specificity": None, "assumptions": CBPE_ASSUMPTIONS}
    accuracy = float(probabilities[np.arange(n), predicted].mean())
    p = probabilities[:, positive]
    called = predicted == positive
    tp, fp = p[called].sum(), (1 - p[called]).sum()
    fn, tn = p[~called].sum(), (1 - p[~called]).sum()
    return {"n": n, "accuracy": accuracy,
            "sensitivity": float(tp / (tp + fn)) if tp + fn > 0 else None,
            "specificity": float(tn / (tn + fp)) if tn + fp > 0 else None,
            "assumptions": CBPE_ASSUMPTIONS}


def wilson(successes: int, n: int) -> dict:
    """A proportion with its Wilson score 95% CI (statsmodels); value and ci None when n is 0."""
    if n == 0:
        return {"value": None, "ci": None, "n": 0}
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return {"value": successes / n, "ci": [float(low), float(high)], "n": int(n)}


def observed_performance(y_true: np.ndarray, predicted: np.ndarray, positive: int = 1) -> dict:
    """Accuracy, sensitivity and specificity (of class ``positive``) on confirmed cases, each with a Wilson CI."""
    y_true, predicted = np.asarray(y_true, dtype=int), np.asarray(predicted, dtype=int)
    positives, negatives = y_true == positive, y_true != positive
    return {
        "accuracy": wilson(int((y_true == predicted).sum()), len(y_true)),
        "sensitivity": wilson(int((predicted[positives] == positive).sum()), int(positives.sum())),
        "specificity": wilson(int((predicted[negatives] != positive).sum()), int(negatives.sum())),
    }


def calibration_fit(y_true: np.ndarray, positive_probability: np.ndarray) -> dict:
    """Calibration-in-the-large (the intercept of a logistic model with logit(p) as offset: 0 when calibrated) and
    the calibration slope (of logit(p) in a logistic model: 1 when calibrated), as Van Calster et al. (2019)."""
    y = np.asarray(y_true, dtype=np.float64)
    if len(y) < 10 or y.min() == y.max():
        return {"in_the_large": None, "slope": None, "n": int(len(y))}
    score = logit(np.clip(np.asarray(positive_probability, dtype=np.float64), 1e-6, 1 - 1e-6))
    ones = np.ones((len(y), 1))
    large = GLM(y, ones, family=families.Binomial(), offset=score).fit()
    slope = GLM(y, add_constant(score), family=families.Binomial()).fit()
    return {"in_the_large": float(large.params[0]), "slope": float(slope.params[1]), "n": int(len(y))}
