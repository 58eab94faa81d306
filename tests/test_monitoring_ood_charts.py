"""The OOD charts' in-control design: p0 an upper bound of the threshold's exceedance probability over n validation
patients, and the score chart widened by their bounds."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from proctovision.monitoring import ood_charts, signals


def test_exceedance_bound_is_the_order_statistic_beta_quantile() -> None:
    # no unit above: Beta(1, n), whose 0.95 quantile is 1 - 0.05^(1/n) in closed form (0.2831 for n = 9)
    assert ood_charts.exceedance_bound(0, 9) == pytest.approx(1 - 0.05 ** (1 / 9), abs=1e-9)
    assert ood_charts.exceedance_bound(0, 9) == pytest.approx(0.2831, abs=1e-4)
    # x of n above: the one-sided 95% Clopper-Pearson upper bound (statsmodels' "beta" interval at alpha 0.10)
    for x, n in ((1, 36), (2, 20)):
        assert ood_charts.exceedance_bound(x, n) == pytest.approx(proportion_confint(x, n, 0.10, "beta")[1], abs=1e-9)


def test_the_bound_covers_the_true_exceedance_of_exchangeable_units_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    n, above = 9, 1
    samples = np.sort(rng.standard_normal((20_000, n)), axis=1)
    true_exceedance = stats.norm.sf(samples[:, n - above - 1])  # the threshold: the (n - x)-th order statistic
    assert np.mean(true_exceedance <= ood_charts.exceedance_bound(above, n)) == pytest.approx(0.95, abs=0.01)


def test_the_design_takes_the_patients_as_units_and_widens_the_score_chart() -> None:
    scores = list(np.linspace(1000.0, 5000.0, 36))
    reference = {"n": 36, "units": 9, "quality": {}, "ood": {"quantile": 0.99, "share_flagged": 1 / 36,
                                                             "scores": scores}}
    charts = signals.design(reference)["charts"]
    # x = 9 patients x 1/36 flagged = 0.25: p0 is the 0.95 quantile of Beta(1.25, 8.75), not the nominal 1%
    assert charts["ood_share"]["p0"] == pytest.approx(stats.beta.ppf(0.95, 1.25, 8.75), abs=1e-4)
    assert charts["ood_share"]["unit"] == "patients"
    spread = np.std(ood_charts.normal_scores(np.array(scores), np.array(scores)), ddof=1)
    assert charts["ood_score"]["scale"] == pytest.approx(spread * np.sqrt(8 / stats.chi2.ppf(0.025, 8)), abs=1e-3)
    assert charts["ood_score"]["allowance"] == pytest.approx(
        stats.t.ppf(0.975, 8) / 3 * spread / charts["ood_score"]["scale"], abs=1e-3)
    unknown = signals.design({**reference, "units": None})["charts"]["ood_share"]  # an older export: images
    assert unknown["unit"] == "images" and unknown["p0"] == pytest.approx(stats.beta.ppf(0.95, 2, 35), abs=1e-4)


def test_too_few_validation_patients_keep_the_nominal_design_and_say_so() -> None:
    from proctovision.monitoring.report import methods

    reference = {"n": 2, "units": 2, "quality": {}, "ood": {"quantile": 0.99, "share_flagged": 0.0,
                                                           "scores": [1.0, 2.0]}}
    design = signals.design(reference)
    assert design["charts"]["ood_share"]["p0"] == 0.01 and design["charts"]["ood_share"]["bounded"] is False
    assert design["charts"]["ood_score"]["scale"] == 1.0 and design["charts"]["ood_score"]["allowance"] == 0.0
    assert any("too few to bound" in sentence for sentence in methods(design, lambda text: text))
    bounded = signals.design({**reference, "n": 36, "units": 9})
    assert any("Beta(x + 1, n - x)" in sentence and "9 validation patients" in sentence
               for sentence in methods(bounded, lambda text: text))
