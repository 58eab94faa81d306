"""Paired statistical tests between two readers of the same images: DeLong, McNemar, bootstrap differences."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from proctovision.evaluation.metrics import patient_bootstrap_indices


def _placements(scores: np.ndarray, positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components (V10 for positives, V01 for negatives) via midranks."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (all_ranks[:m] - pos_ranks) / n
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m
    auc = float(v10.mean())
    return auc, v10, v01


def delong_covariance(y_true: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several scores on the same cases and their DeLong (1988) covariance matrix."""
    positive = np.asarray(y_true).astype(bool)
    if positive.all() or not positive.any():
        raise ValueError("DeLong needs both positive and negative cases")
    parts = [_placements(np.asarray(score, dtype=float), positive) for score in scores]
    aucs = np.array([part[0] for part in parts])
    v10 = np.stack([part[1] for part in parts])
    v01 = np.stack([part[2] for part in parts])
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / positive.sum() + s01 / (~positive).sum()


def delong_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict:
    """Two-sided test that two correlated AUCs are equal."""
    aucs, covariance = delong_covariance(y_true, [scores_a, scores_b])
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = float(aucs[0] - aucs[1])
    if variance <= 0:
        return {"auc_a": aucs[0], "auc_b": aucs[1], "difference": difference, "z": None, "p_value": None,
                "ci95": [difference, difference]}
    z = difference / np.sqrt(variance)
    half = 1.959963984540054 * np.sqrt(variance)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": difference, "z": float(z),
            "p_value": float(2 * stats.norm.sf(abs(z))), "ci95": [difference - half, difference + half]}


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray, exact_below: int = 25) -> dict:
    """McNemar on paired correctness; the exact binomial form when discordant pairs are few."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    discordant = table[0][1] + table[1][0]
    exact = discordant < exact_below
    result = statsmodels_mcnemar(table, exact=exact, correction=True)
    return {"table": table, "discordant": discordant, "exact": exact, "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def bootstrap_difference(
    metric: Callable[[np.ndarray], float], metric_b: Callable[[np.ndarray], float], patients: np.ndarray,
    n_resamples: int = 1000, seed: int = 0,
) -> dict:
    """Percentile CI of metric_a − metric_b, both computed on the same patient resample (paired)."""
    everyone = np.arange(len(patients))
    observed = metric(everyone) - metric_b(everyone)
    samples = np.array([metric(index) - metric_b(index) for index in patient_bootstrap_indices(patients, n_resamples, seed)])
    samples = samples[np.isfinite(samples)]
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"difference": float(observed), "ci95": [float(low), float(high)], "resamples": n_resamples,
            "unit": "patient"}
