"""Each statistic pinned to an independent reference."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from proctovision.evaluation.stats import bootstrap_difference, delong_covariance, delong_test, mcnemar_test


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
