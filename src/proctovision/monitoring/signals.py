"""The monitoring signals, their limits and how they advance over new answers.

Input signals (per answer, no window):

* ``ood_share``: a Bernoulli CUSUM on "flagged out of distribution", p0 the upper 95% bound of the threshold's
  exceedance probability given the validation patients (``monitoring.ood_charts``: Beta(x + 1, n - x), not the
  threshold's nominal 1%, which a split of a few patients cannot vouch for), p1 three times p0 (Zamzmi et al. 2024
  found a rise from 1% to 3-5% within two days at 100 cases a day);
* ``ood_score``: the upper tabular CUSUM (k = 0.5) on the normal score of each answer's OOD score within the
  validation scores (Phi^-1 of its plotting position), standardised by the validation patients' 95% bounds of its
  spread and mean (``monitoring.ood_charts``), so the limit from the Brook-Evans run length that reproduces
  Montgomery's table holds for any clinic within them;
* ``too_dark``, ``overexposed``, ``blurred``: Bernoulli CUSUMs on each quality flag, p0 the upper Wilson 95% bound
  of the validation share (or a 1% prior when the validation images were not at hand);
* ``appearance_<channel>_<high|low>``: the lit area's mean red, green and blue levels, a two-sided tabular CUSUM
  per channel against validation (``monitoring.appearance``), six one-sided charts in the budget.

Output signals (consecutive windows of ``window`` answers, never below drift.MIN_WINDOW): ``class_mix`` (chi-square
of the predicted-class counts against validation's, as a 2 x k table) and ``probability`` (Kolmogorov-Smirnov of the scores).

False alarms: the budget (``alarms_per_10000`` per 10,000 in-distribution answers) is split in half between the
per-answer charts (each gets an in-control ARL of 10,000 x n_charts / half the budget) and the window tests
(each window's significance level spends the other half over 10,000 / window windows).
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from proctovision.evaluation import cusum, drift
from proctovision.monitoring import appearance, ood_charts

FLAG_SIGNALS = ("too_dark", "overexposed", "blurred")
QUALITY_PRIOR = 0.01
WINDOW_SIGNALS = ("class_mix", "probability")
MIN_P0 = 0.005
K = 0.5


@functools.lru_cache(maxsize=32)
def _bernoulli_h(p0: float, p1: float, target: float) -> float:
    return cusum.design_bernoulli_h(p0, p1, target)


def _bernoulli(p0: float | None, target: float, note: str) -> dict:
    p0 = round(max(p0 or 0.0, MIN_P0), 4)
    p1 = round(min(3 * p0, (1 + p0) / 2), 4)
    h = _bernoulli_h(p0, p1, target)
    return {"method": "Bernoulli CUSUM (Reynolds and Stoumbos 1999)", "p0": p0, "p1": p1, "h": h,
            "arl0": round(cusum.bernoulli_arl(p0, p0, p1, h)), "arl1": round(cusum.bernoulli_arl(p1, p0, p1, h), 1),
            "reference": note}


def design(reference: dict, alarms_per_10000: float = 1.0, window: int = drift.DEFAULT_WINDOW) -> dict:
    """The limits of every signal for this reference and false-alarm budget."""
    ood = reference.get("ood") or None
    charts: dict[str, dict] = {}
    n_charts = len(FLAG_SIGNALS) + (2 if ood else 0) + appearance.chart_count(reference)
    target = cusum.in_control_arl(alarms_per_10000 / 2, n_charts)
    if ood:
        share = ood_charts.share_design(ood, reference)
        charts["ood_share"] = {**_bernoulli(share.pop("p0"), target, ood_charts.SHARE_NOTE), **share}
        h = cusum.design_h(target, K, sides=1)
        charts["ood_score"] = {"method": ood_charts.SCORE_METHOD, "k": K, "h": round(h, 4),
                               "arl0": round(cusum.arl_one_sided(K, h)),
                               "arl1_1sigma": round(cusum.arl_one_sided(K, h, 1.0), 1),
                               **ood_charts.score_standardisation(reference)}
    for flag in FLAG_SIGNALS:
        share = (reference.get("quality") or {}).get(flag)
        if share is None:
            charts[flag] = _bernoulli(QUALITY_PRIOR, target, "prior of 1%")
        else:  # the upper Wilson bound: a small validation split's sampling error does not fire the chart
            upper = drift.wilson(round(share * reference["n"]), reference["n"])["ci"][1]
            charts[flag] = _bernoulli(upper, target, "upper Wilson 95% bound of the validation share")
    charts.update(appearance.design_charts(reference, target))
    alpha = drift.window_alpha(alarms_per_10000 / 2, window, len(WINDOW_SIGNALS))
    return {"alarms_per_10000": alarms_per_10000, "window": window, "min_window": drift.MIN_WINDOW,
            "in_control_arl_per_chart": target, "charts": charts, "appearance": appearance.availability(reference),
            "windows": {"class_mix": {"method": "Pearson chi-square of the predicted-class counts", "alpha": alpha},
                        "probability": {"method": "two-sample Kolmogorov-Smirnov of the scores", "alpha": alpha}}}


def chart_increments(signal: str, frame: pd.DataFrame, design_: dict, reference: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-answer increments of one chart, and the positions (rows of ``frame``) they belong to."""
    spec = design_["charts"][signal]
    if appearance.is_appearance(signal):
        return appearance.increments(signal, frame, spec)
    if signal == "ood_score":
        known = frame["ood_score"].notna().to_numpy()
        values = frame["ood_score"].to_numpy(float)[known]
        return (ood_charts.score_increments(values, spec, np.array(reference["ood"]["scores"] or [0.0])),
                np.flatnonzero(known))
    column = "out_of_distribution" if signal == "ood_share" else signal
    known = frame[column].notna().to_numpy()
    events = frame[column].to_numpy()[known].astype(bool)
    up, down = cusum.bernoulli_increments(spec["p0"], spec["p1"])
    return np.where(events, up, down), np.flatnonzero(known)


def advance_chart(signal: str, start: float, frame: pd.DataFrame, design_: dict, reference: dict) -> dict:
    """The chart over the new answers in ``frame`` from its stored ``start``: its path, end and first crossing."""
    increments, positions = chart_increments(signal, frame, design_, reference)
    path = cusum.lindley(increments, start)
    limit = design_["charts"][signal]["h"]
    crossed = np.flatnonzero(path >= limit)
    first = int(positions[crossed[0]]) if crossed.size else None
    return {"path": path, "positions": positions, "end": float(path[-1]) if path.size else start,
            "first": first, "value": float(path[crossed[0]]) if crossed.size else None, "limit": limit}


def window_tests(frame: pd.DataFrame, design_: dict, reference: dict) -> list[dict]:
    """Both window tests on each complete window of ``frame``: row range, statistics, p-values, and which crossed.
    All windows are tested at once (drift.class_mix_tests, drift.probability_tests: the numbers of one test per
    window), so a year of answers takes a second, not minutes."""
    classes = reference["model"]["classes"]
    shares = np.array([reference["class_mix"][name] for name in classes])
    alpha = design_["windows"]["class_mix"]["alpha"]
    size = design_["window"]
    pieces = drift.windows(len(frame), size)
    if not pieces:
        return []
    used = len(pieces) * size
    codes = pd.Categorical(frame["decision"].iloc[:used], categories=classes).codes.reshape(len(pieces), size)
    counts = np.stack([(codes == index).sum(axis=1) for index in range(len(classes))], axis=1)
    mixes = drift.class_mix_tests(counts, shares, reference["n"])
    probabilities = drift.probability_tests(frame["score"].to_numpy(float)[:used].reshape(len(pieces), size),
                                            np.array(reference["scores"]))
    out = []
    for index, piece in enumerate(pieces):
        mix = {"n": int(mixes["n"][index]), "statistic": float(mixes["statistic"][index]),
               "p_value": float(mixes["p_value"][index]), "shares": mixes["shares"][index].tolist()}
        probability = {key: (int if key == "n" else float)(probabilities[key][index])
                       for key in ("n", "statistic", "p_value")}
        out.append({"start": piece.start, "stop": piece.stop, "class_mix": mix, "probability": probability,
                    "crossed": [name for name, test in (("class_mix", mix), ("probability", probability))
                                if test["p_value"] < alpha]})
    return out
