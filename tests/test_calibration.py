import numpy as np
import pytest
from sklearn.metrics import roc_curve

from proctovision.evaluation.calibration import (
    ThresholdError,
    choose_threshold,
    fit_temperature,
    reliability,
    scale,
)
from proctovision.evaluation.metrics import brier, expected_calibration_error


def _scores(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.2, n), 0.001, 0.999)
    return y, p


def test_youden_threshold_maximises_sensitivity_plus_specificity():
    y, p = _scores()
    chosen = choose_threshold(y, p, "youden")
    fpr, tpr, cuts = roc_curve(y, p)
    best = (tpr - fpr).max()
    called = p >= chosen
    assert (called[y == 1].mean() - called[y == 0].mean()) == pytest.approx(best)


@pytest.mark.parametrize("kind, target", [("sensitivity", 0.95), ("specificity", 0.9)])
def test_target_sensitivity_or_specificity_is_met_on_the_fitting_data(kind: str, target: float):
    y, p = _scores(1)
    chosen = choose_threshold(y, p, f"{kind}:{target}")
    called = p >= chosen
    achieved = called[y == 1].mean() if kind == "sensitivity" else (~called[y == 0]).mean()
    assert achieved >= target


def test_bad_rules_are_refused():
    y, p = _scores()
    with pytest.raises(ThresholdError, match="youden"):
        choose_threshold(y, p, "median")
    assert choose_threshold(y, p, "0.3") == 0.3


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3000, 3))
    truth = np.array([rng.choice(3, p=row) for row in scale(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1)])
    overconfident = scale(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 0.5)
    assert fit_temperature(truth, overconfident) == pytest.approx(2.0, rel=0.15)
    assert expected_calibration_error(truth, scale(overconfident, 2.0)) < expected_calibration_error(truth, overconfident)


def test_brier_and_reliability():
    y = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    assert brier(y, probabilities) == pytest.approx(np.mean((probabilities[:, 1] - y) ** 2))
    table = reliability(y, probabilities, bins=5)
    assert sum(table["count"]) == 4


@pytest.mark.parametrize("rule", ["sensitivity:1.5", "-0.2", "1.2", "specificity:-1", "recall:0.9", "youdn"])
def test_threshold_rules_out_of_range_are_refused(rule: str):
    from proctovision.evaluation.calibration import ThresholdError, check_threshold_rule

    with pytest.raises(ThresholdError, match="threshold rule"):
        check_threshold_rule(rule)


def test_reliability_and_ece_use_the_decision_actually_made():
    """At threshold 0.7 an image with p(positive) = 0.65 is called negative with confidence 0.35, not argmax's 0.65."""
    from proctovision.evaluation.calibration import reliability
    from proctovision.core.decision import apply_threshold
    from proctovision.evaluation.metrics import expected_calibration_error

    probabilities = np.array([[0.35, 0.65], [0.35, 0.65], [0.05, 0.95], [0.85, 0.15]])
    y_true = np.array([0, 0, 1, 0])
    called = apply_threshold(probabilities, 0.7)
    table = reliability(y_true, probabilities, y_pred=called)
    assert table["count"][3] == 2 and table["accuracy"][3] == 1.0 and table["confidence"][3] == pytest.approx(0.35)
    by_argmax = reliability(y_true, probabilities)
    assert by_argmax["count"][6] == 2 and by_argmax["accuracy"][6] == 0.0
    # ECE by hand: bin 0.3 (2 right, confidence 0.35 each), 0.9 (1 right, 0.95), 0.8 (1 right, 0.85)
    assert expected_calibration_error(y_true, probabilities, y_pred=called) == pytest.approx((1.3 + 0.05 + 0.15) / 4)
