"""Window tests, CBPE on a worked example, Wilson CIs pinned to Newcombe (1998) and statsmodels, calibration fit."""
from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from proctovision.evaluation import drift


def test_cbpe_worked_example() -> None:
    # p(hemorrhoid) 0.9, 0.8 called positive; 0.3, 0.1 called negative.
    # Expected TP = 0.9 + 0.8 = 1.7, FP = 0.1 + 0.2 = 0.3, FN = 0.3 + 0.1 = 0.4, TN = 0.7 + 0.9 = 1.6
    p = np.array([0.9, 0.8, 0.3, 0.1])
    probabilities = np.stack([1 - p, p], axis=1)
    result = drift.cbpe(probabilities, np.array([1, 1, 0, 0]))
    assert result["accuracy"] == pytest.approx(3.3 / 4)
    assert result["sensitivity"] == pytest.approx(1.7 / 2.1)
    assert result["specificity"] == pytest.approx(1.6 / 1.9)
    assert "calibrated" in result["assumptions"]


# Newcombe RG (1998) Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity correction)
NEWCOMBE = [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)]


@pytest.mark.parametrize(("successes", "n", "low", "high"), NEWCOMBE)
def test_wilson_matches_newcombe_and_statsmodels(successes: int, n: int, low: float, high: float) -> None:
    result = drift.wilson(successes, n)
    assert result["ci"] == pytest.approx([low, high], abs=6e-5)
    assert result["ci"] == pytest.approx(list(proportion_confint(successes, n, method="wilson")))


def test_observed_performance_counts_each_metric() -> None:
    truth = np.array([1, 1, 1, 0, 0])
    called = np.array([1, 0, 1, 0, 1])
    result = drift.observed_performance(truth, called)
    assert result["accuracy"]["value"] == pytest.approx(3 / 5)
    assert result["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert result["specificity"]["value"] == pytest.approx(1 / 2)
    assert drift.wilson(0, 0)["ci"] is None


def test_calibration_fit_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20000)
    logits = np.log(p / (1 - p))
    calibrated = rng.random(p.size) < p
    assert drift.calibration_fit(calibrated, p)["slope"] == pytest.approx(1.0, abs=0.06)
    assert drift.calibration_fit(calibrated, p)["in_the_large"] == pytest.approx(0.0, abs=0.05)
    overconfident = rng.random(p.size) < 1 / (1 + np.exp(-(0.5 * logits + 0.4)))
    fit = drift.calibration_fit(overconfident, p)
    assert fit["slope"] == pytest.approx(0.5, abs=0.05)
    assert fit["in_the_large"] > 0.2


def test_class_mix_detects_a_prevalence_shift_and_not_the_reference() -> None:
    shifted = drift.class_mix_test(np.array([40, 60]), np.array([0.75, 0.25]))
    same = drift.class_mix_test(np.array([74, 26]), np.array([0.75, 0.25]))
    alpha = drift.window_alpha(1.0, 100, n_tests=2)
    assert alpha == pytest.approx(0.005)
    assert shifted["p_value"] < alpha < same["p_value"]


def test_window_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="below the minimum"):
        drift.class_mix_test(np.array([10, 10]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="below the minimum"):
        drift.windows(1000, 20)
    assert len(drift.windows(250, 100)) == 2


def test_probability_test_separates_shifted_distributions() -> None:
    rng = np.random.default_rng(1)
    reference = rng.beta(2, 5, 500)
    assert drift.probability_test(rng.beta(2, 5, 100), reference)["p_value"] > 0.01
    assert drift.probability_test(rng.beta(5, 2, 100), reference)["p_value"] < 1e-6


def test_class_mix_against_a_small_reference_counts_its_noise() -> None:
    # 12 validation answers, 25% positive; a window of 100 at 40%: significant against the shares taken as
    # exact, not once the reference's 12 answers are a row of the table
    window = np.array([60, 40])
    assert drift.class_mix_test(window, np.array([0.75, 0.25]))["p_value"] < 0.005
    assert drift.class_mix_test(window, np.array([0.75, 0.25]), reference_n=12)["p_value"] > 0.2


@pytest.mark.parametrize("reference_n", [None, 12, 300])
def test_class_mix_on_many_windows_gives_each_windows_numbers(reference_n: int | None) -> None:
    rng = np.random.default_rng(3)
    for classes in (2, 3, 5):
        shares = rng.dirichlet(np.ones(classes))
        shares[0] = 0.0001  # rounds to no reference count: a column empty in both rows is left out
        counts = rng.multinomial(100, rng.dirichlet(np.ones(classes)), 300)
        counts[:20, 1] += counts[:20, 0]
        counts[:20, 0] = 0
        many = drift.class_mix_tests(counts, shares, reference_n)
        for index, window in enumerate(counts):
            one = drift.class_mix_test(window, shares, reference_n)
            assert (one["statistic"], one["p_value"], one["n"]) == (
                many["statistic"][index], many["p_value"][index], many["n"][index])
            assert one["shares"] == many["shares"][index].tolist()
    with pytest.raises(ValueError, match="below the minimum"):
        drift.class_mix_tests(np.array([[60, 40], [10, 10]]), np.array([0.5, 0.5]))


@pytest.mark.parametrize("reference_size", [37, 100, 500])
def test_kolmogorov_smirnov_on_many_windows_gives_each_windows_numbers(reference_size: int) -> None:
    rng = np.random.default_rng(reference_size)
    reference = np.round(rng.beta(2, 5, reference_size), 2)  # rounded: ties within and across the samples
    windows = np.round(rng.beta(2, 4, (300, 100)), 2)
    windows[1] = np.resize(reference, 100)
    windows[2, 5] = np.nan
    many = drift.probability_tests(windows, reference)
    for index, window in enumerate(windows):
        one = drift.probability_test(window, reference)
        assert one["statistic"] == many["statistic"][index] or np.isnan(one["statistic"]) and index == 2
        assert one["p_value"] == many["p_value"][index] or np.isnan(one["p_value"]) and index == 2
    assert np.isnan(many["p_value"][2])
