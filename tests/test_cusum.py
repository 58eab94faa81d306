"""CUSUM run lengths pinned to Montgomery's table (k = 0.5), by Brook-Evans and by simulation; Bernoulli design."""
from __future__ import annotations

import numpy as np
import pytest

from proctovision.evaluation import cusum

# Montgomery, Introduction to Statistical Quality Control, Table 9.3: two-sided tabular CUSUM, k = 1/2
MONTGOMERY = {(4.0, 0.0): 168.0, (4.0, 1.0): 8.38, (5.0, 0.0): 465.0, (5.0, 1.0): 10.4}


@pytest.mark.parametrize(("h", "shift"), list(MONTGOMERY))
def test_brook_evans_matches_montgomery(h: float, shift: float) -> None:
    assert cusum.arl_two_sided(0.5, h, shift) == pytest.approx(MONTGOMERY[(h, shift)], rel=0.005)


@pytest.mark.parametrize(("h", "shift", "runs"), [(4.0, 0.0, 20000), (4.0, 1.0, 4000), (5.0, 0.0, 8000),
                                                  (5.0, 1.0, 4000)])
def test_simulation_matches_montgomery(h: float, shift: float, runs: int) -> None:
    mean, error = cusum.simulated_arl(0.5, h, shift, runs=runs, seed=1)
    assert abs(mean - MONTGOMERY[(h, shift)]) < 4 * error + 0.01 * MONTGOMERY[(h, shift)]


def test_tabular_cusum_follows_the_recursion() -> None:
    values = np.array([0.0, 1.5, 2.0, -3.0, 1.0])
    upper, lower = cusum.tabular_cusum(values, target=0.0, sigma=1.0, k=0.5, h=2.0)
    # C+: 0, 1.0, 2.5, 0, 0.5 ; C-: 0, 0, 0, 2.5, 2.5 - 1.5 = 1.0
    assert upper.statistic.tolist() == pytest.approx([0.0, 1.0, 2.5, 0.0, 0.5])
    assert lower.statistic.tolist() == pytest.approx([0.0, 0.0, 0.0, 2.5, 1.0])
    assert (upper.first_signal, lower.first_signal) == (2, 3)


def test_design_h_returns_the_textbook_interval() -> None:
    assert cusum.design_h(168.0) == pytest.approx(4.0, abs=0.02)


def test_bernoulli_design_meets_the_false_alarm_budget() -> None:
    target = cusum.in_control_arl(1.0, n_charts=2)
    assert target == 20_000
    h = cusum.design_bernoulli_h(0.01, 0.03, target)
    assert cusum.bernoulli_arl(0.01, 0.01, 0.03, h) == pytest.approx(target, rel=0.01)
    rng = np.random.default_rng(0)
    delays = []
    for _ in range(300):
        chart = cusum.bernoulli_cusum(rng.random(4000) < 0.03, 0.01, 0.03, h)
        delays.append(4000 if chart.first_signal is None else chart.first_signal + 1)
    expected = cusum.bernoulli_arl(0.03, 0.01, 0.03, h)
    assert abs(np.mean(delays) - expected) < 4 * np.std(delays) / np.sqrt(len(delays))
    assert expected < 500  # a rise from 1% to 3% OOD found within ~3 days at 100 answers a day


def test_bernoulli_rejects_a_rate_that_does_not_rise() -> None:
    with pytest.raises(ValueError, match="p0 < p1"):
        cusum.bernoulli_increments(0.05, 0.01)


def test_lindley_resumes_from_a_stored_statistic() -> None:
    increments = np.array([0.7, -0.2, 1.1, -3.0, 0.4, 0.9])
    whole = cusum.lindley(increments)
    resumed = cusum.lindley(increments[3:], start=float(whole[2]))
    assert resumed.tolist() == pytest.approx(whole[3:].tolist())
    assert cusum.design_h(cusum.arl_one_sided(0.5, 4.0), sides=1) == pytest.approx(4.0, abs=0.02)


def test_vectorised_lindley_equals_the_recursion_with_its_alarm() -> None:
    rng = np.random.default_rng(7)
    up, down = cusum.bernoulli_increments(0.01, 0.03)
    for start, increments in ((0.0, rng.normal(-0.5, 1.0, 20_000)), (2.5, rng.normal(-0.45, 1.0, 5_000)),
                              (0.0, np.where(rng.random(50_000) < 0.012, up, down))):
        recursion, value = np.empty(increments.size), start
        for index, step in enumerate(increments):  # S_n = max(0, S_(n-1) + z_n), one answer at a time
            value = max(0.0, value + step)
            recursion[index] = value
        vectorised = cusum.lindley(increments, start)
        assert np.allclose(vectorised, recursion, rtol=0, atol=1e-9)
        limit = np.quantile(recursion, 0.999)
        assert np.flatnonzero(vectorised >= limit)[0] == np.flatnonzero(recursion >= limit)[0]
