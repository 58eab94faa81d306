"""CUSUM charts for monitoring a deployed model, their average run lengths, and limits designed from a false-alarm
budget per 10,000 in-distribution answers.

Two charts are used:

* the tabular (Page) CUSUM on a standardised statistic, with reference value k and decision interval h in units of
  sigma (Montgomery, *Introduction to Statistical Quality Control*, ch. 9). Its run length comes from the Markov
  chain of Brook and Evans (1972) or from a simulation; the two-sided ARL combines the two one-sided ones by
  1/ARL = 1/ARL+ + 1/ARL- (exact when the two sides cannot both be away from zero, as for k >= 0.5 at no shift);
* the Bernoulli CUSUM (Reynolds and Stoumbos 1999) for a per-answer event such as "flagged as out of distribution":
  each answer adds its log-likelihood ratio of p1 (the rate to detect) against p0 (the reference rate), so the chart
  needs no window and reacts from the first answers of a shift.

A false-alarm budget of ``alarms_per_10000`` over ``n_charts`` charts gives each chart an in-control ARL of
``10000 * n_charts / alarms_per_10000`` answers (a Bonferroni split of the budget between charts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse
from scipy.sparse.linalg import spsolve
from scipy.stats import norm

BROOK_EVANS_STATES = 400


@dataclass(frozen=True)
class Chart:
    """A one-sided chart's path and its first crossing (index of the answer, 0-based; None when it never crosses)."""

    statistic: np.ndarray
    limit: float
    first_signal: int | None


def _first(crossed: np.ndarray) -> int | None:
    hits = np.flatnonzero(crossed)
    return int(hits[0]) if hits.size else None


def lindley(increments: np.ndarray, start: float = 0.0) -> np.ndarray:
    """S_t = max(0, S_{t-1} + x_t) from S_0 = ``start`` >= 0, vectorised: S_t = Z_t - min(-start, min_{j<=t} Z_j),
    Z the partial sums of x."""
    partial = np.cumsum(np.asarray(increments, dtype=np.float64))
    if partial.size == 0:
        return partial
    return partial - np.minimum(np.minimum.accumulate(partial), -start)


def tabular_cusum(values: np.ndarray, target: float, sigma: float, k: float = 0.5, h: float = 4.0) -> tuple[Chart, Chart]:
    """Montgomery's tabular CUSUM: C+ accumulates x - (target + k sigma), C- accumulates (target - k sigma) - x;
    either crossing h sigma signals."""
    values = np.asarray(values, dtype=np.float64)
    upper = lindley(values - (target + k * sigma))
    lower = lindley((target - k * sigma) - values)
    limit = h * sigma
    return Chart(upper, limit, _first(upper >= limit)), Chart(lower, limit, _first(lower >= limit))


def arl_one_sided(k: float, h: float, shift: float = 0.0, states: int = BROOK_EVANS_STATES) -> float:
    """ARL of the upper CUSUM S_t = max(0, S_{t-1} + Z_t - k), Z ~ N(shift, 1), signalling at S >= h, from zero.

    Brook-Evans: [0, h) in ``states`` cells of width w = 2h / (2 states - 1), cell 0 the atom at zero (below w/2),
    cell j centred at j w; ARL = first entry of (I - R)^-1 1 with R the transitions between the cells.
    """
    width = 2.0 * h / (2 * states - 1)
    centres = np.arange(states) * width
    upper_edges = (np.arange(states) + 0.5) * width
    # P(from i to cell <= j) = Phi(edge_j - centre_i + k - shift)
    below = norm.cdf(upper_edges[None, :] - centres[:, None] + k - shift)
    transitions = np.diff(np.concatenate([np.zeros((states, 1)), below], axis=1), axis=1)
    lengths = np.linalg.solve(np.eye(states) - transitions, np.ones(states))
    return float(lengths[0])


def arl_two_sided(k: float, h: float, shift: float = 0.0, states: int = BROOK_EVANS_STATES) -> float:
    """Two-sided tabular CUSUM: 1/ARL = 1/ARL(upper) + 1/ARL(lower), the lower side seeing a shift of -shift."""
    return 1.0 / (1.0 / arl_one_sided(k, h, shift, states) + 1.0 / arl_one_sided(k, h, -shift, states))


def simulated_arl(k: float, h: float, shift: float = 0.0, runs: int = 4000, seed: int = 0,
                  max_steps: int = 200_000) -> tuple[float, float]:
    """Mean run length of the two-sided tabular CUSUM over ``runs`` simulated N(shift, 1) streams, and its standard
    error; all runs advance together, one step at a time."""
    rng = np.random.default_rng(seed)
    upper, lower = np.zeros(runs), np.zeros(runs)
    lengths = np.zeros(runs, dtype=np.int64)
    alive = np.ones(runs, dtype=bool)
    for step in range(1, max_steps + 1):
        count = int(alive.sum())
        if not count:
            break
        draws = rng.normal(shift, 1.0, count)
        upper[alive] = np.maximum(0.0, upper[alive] + draws - k)
        lower[alive] = np.maximum(0.0, lower[alive] - draws - k)
        signalled = np.zeros(runs, dtype=bool)
        signalled[alive] = (upper[alive] >= h) | (lower[alive] >= h)
        lengths[signalled] = step
        alive &= ~signalled
    lengths[alive] = max_steps
    return float(lengths.mean()), float(lengths.std(ddof=1) / np.sqrt(runs))


def in_control_arl(alarms_per_10000: float, n_charts: int = 1) -> float:
    """The in-control ARL (in answers) each of ``n_charts`` charts needs so that all of them together raise about
    ``alarms_per_10000`` false alarms per 10,000 in-distribution answers."""
    if alarms_per_10000 <= 0:
        raise ValueError("the false-alarm budget must be positive")
    return 10_000.0 * n_charts / alarms_per_10000


def design_h(target_arl: float, k: float = 0.5, sides: int = 2) -> float:
    """The decision interval h (sigmas) whose in-control ARL is ``target_arl`` (Brook-Evans), for the two-sided
    chart or (``sides=1``) the upper one alone."""
    arl = arl_two_sided if sides == 2 else arl_one_sided
    return float(optimize.brentq(lambda h: np.log(arl(k, h, 0.0, 200)) - np.log(target_arl), 0.5, 20.0, xtol=1e-4))


def bernoulli_increments(p0: float, p1: float) -> tuple[float, float]:
    """Log-likelihood-ratio steps of the Bernoulli CUSUM: (after an event, after a non-event)."""
    if not 0 < p0 < p1 < 1:
        raise ValueError(f"the Bernoulli CUSUM needs 0 < p0 < p1 < 1 (got p0={p0}, p1={p1})")
    return float(np.log(p1 / p0)), float(np.log((1 - p1) / (1 - p0)))


def bernoulli_cusum(events: np.ndarray, p0: float, p1: float, h: float, start: float = 0.0) -> Chart:
    """The chart over a 0/1 sequence; it signals when the accumulated log-likelihood ratio reaches h."""
    up, down = bernoulli_increments(p0, p1)
    statistic = lindley(np.where(np.asarray(events, dtype=bool), up, down), start)
    return Chart(statistic, h, _first(statistic >= h))


def bernoulli_arl(p: float, p0: float, p1: float, h: float, cells: int = 2000) -> float:
    """ARL (answers) of the Bernoulli CUSUM when events occur at rate ``p``: a Markov chain on [0, h) in ``cells``
    cells, each step rounded to whole cells (a sparse, banded system)."""
    up, down = bernoulli_increments(p0, p1)
    unit = h / cells
    rise, fall = max(1, int(round(up / unit))), int(round(-down / unit))
    index = np.arange(cells)
    after_event, after_none = index + rise, np.maximum(index - fall, 0)
    inside = after_event < cells
    rows = np.concatenate([index[inside], index])
    columns = np.concatenate([after_event[inside], after_none])
    values = np.concatenate([np.full(int(inside.sum()), p), np.full(cells, 1 - p)])
    transitions = sparse.csr_matrix((values, (rows, columns)), shape=(cells, cells))
    lengths = spsolve((sparse.identity(cells, format="csr") - transitions).tocsc(), np.ones(cells))
    return float(lengths[0])


def design_bernoulli_h(p0: float, p1: float, target_arl: float) -> float:
    """The smallest h whose in-control ARL (events at p0) reaches ``target_arl`` answers."""
    def gap(h: float) -> float:
        return np.log(bernoulli_arl(p0, p0, p1, h)) - np.log(target_arl)

    high = 1.0
    while gap(high) < 0:
        high *= 2.0
        if high > 1e3:
            raise ValueError("no decision interval reaches that in-control ARL")
    return float(optimize.brentq(gap, 1e-3, high, xtol=1e-3))
