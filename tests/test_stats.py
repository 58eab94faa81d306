"""Each statistic pinned to an independent reference."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from proctovision.evaluation.metrics import auc_by_ranks
from proctovision.evaluation.stats import (
    bootstrap_difference,
    delong_covariance,
    delong_test,
    mcnemar_test,
)


def test_delong_variance_matches_the_hand_worked_example():
    """Positives 0.9, 0.8, 0.4; negatives 0.7, 0.3. DeLong (1988): V10 = (1, 1, 1/2), V01 = (2/3, 1);
    AUC = 5/6; S10 = 1/12, S01 = 1/18; Var = S10/3 + S01/2 = 1/36 + 1/36 = 1/18."""
    y = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3])
    aucs, covariance = delong_covariance(y, [scores])
    assert aucs[0] == pytest.approx(5 / 6)
    assert covariance[0, 0] == pytest.approx(1 / 18)


def _slow_structural_components(y, a, b):
    """O(n^2) DeLong covariance written straight from the paper's definitions."""
    def psi(x, w):
        return 1.0 if x > w else 0.5 if x == w else 0.0

    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    v10 = np.array([[np.mean([psi(s[i], s[j]) for j in neg]) for i in pos] for s in (a, b)])
    v01 = np.array([[np.mean([psi(s[i], s[j]) for i in pos]) for j in neg] for s in (a, b)])
    return np.cov(v10) / len(pos) + np.cov(v01) / len(neg)


def test_delong_matches_the_definition_and_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    a = np.round(y * 0.8 + rng.normal(0, 0.6, 80), 1)
    b = np.round(y * 0.5 + rng.normal(0, 0.6, 80) + 0.3 * a, 1)
    aucs, covariance = delong_covariance(y, [a, b])
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)])
    assert covariance == pytest.approx(_slow_structural_components(y, a, b))
    result = delong_test(y, a, b)
    assert 0 <= result["p_value"] <= 1 and result["ci95"][0] < result["difference"] < result["ci95"][1]


def test_delong_standard_error_agrees_with_the_bootstrap():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    a = y * 1.0 + rng.normal(0, 1, 300)
    b = y * 0.6 + rng.normal(0, 1, 300)
    se = delong_test(y, a, b)
    draws = [rng.integers(0, 300, 300) for _ in range(1500)]
    boot = [roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]) for i in draws]
    width = se["ci95"][1] - se["ci95"][0]
    assert width / (2 * 1.96 * np.std(boot)) == pytest.approx(1, abs=0.15)


@pytest.mark.parametrize("seed, n", [(0, 30), (1, 400)])
def test_mcnemar_matches_statsmodels(seed: int, n: int):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) < 0.8, rng.random(n) < 0.7
    result = mcnemar_test(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    expected = mcnemar(table, exact=result["exact"], correction=True)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    assert result["exact"] == (n == 30)


def test_paired_bootstrap_difference_is_centred_on_the_observed_difference():
    rng = np.random.default_rng(1)
    correct_a, correct_b = rng.random(200) < 0.9, rng.random(200) < 0.7
    patients = np.repeat(np.arange(50), 4)
    result = bootstrap_difference(lambda i: correct_a[i].mean(), lambda i: correct_b[i].mean(), patients, 500)
    assert result["difference"] == pytest.approx(correct_a.mean() - correct_b.mean())
    assert result["ci95"][0] < result["difference"] < result["ci95"][1]
    assert result["ci95"][0] > 0


def test_auc_and_standard_error_on_hanley_and_mcneil_published_ratings():
    """Hanley & McNeil (Radiology 1982), Table 1: CT ratings 1-5 of 58 normal and 51 abnormal patients.

    Published: AUC 0.893, SE 0.032 (their formula). Reproducing both confirms the reconstructed data; the
    DeLong SE is then checked against the O(n^2) definition and must lie close to the published SE.
    """
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    ratings = np.concatenate([np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]).astype(float)
    y = np.concatenate([np.zeros(sum(normal), int), np.ones(sum(abnormal), int)])
    aucs, covariance = delong_covariance(y, [ratings])
    auc = aucs[0]
    assert round(auc, 3) == 0.893
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    hanley_mcneil_se = np.sqrt((auc * (1 - auc) + 50 * (q1 - auc**2) + 57 * (q2 - auc**2)) / (51 * 58))
    assert round(hanley_mcneil_se, 3) == 0.032
    delong_se = np.sqrt(covariance[0, 0])
    assert delong_se**2 == pytest.approx(_slow_structural_components(y, ratings, ratings)[0, 0])
    assert delong_se == pytest.approx(0.032, rel=0.1)


def test_auc_by_ranks_matches_sklearn_with_ties():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60) + 0.3 * y, 1)
    assert auc_by_ranks(scores, y == 1) == pytest.approx(roc_auc_score(y, scores))
