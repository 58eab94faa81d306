"""The in-control design of the two OOD charts from a small validation split, the patient being the unit.

The OOD threshold is a quantile (99% by default) of the validation images' OOD scores, and a validation split is
small (the demo's: 36 images of 9 patients) and clustered (a patient's images score alike). The threshold's own
quantile is therefore not the share a clinic's in-distribution answers exceed: on the demo model about 10% of fresh
generated in-distribution images exceed a 99% threshold. The charts are designed for what n validation units can
tell:

* ``ood_share`` (Bernoulli CUSUM): p0 is the upper 95% bound of the threshold's exceedance probability. With x of n
  exchangeable units above the threshold (the threshold is their (n - x)-th order statistic), a new unit exceeds it
  with probability Beta(x + 1, n - x) (the order-statistic, or conformal, argument: the k-th of n exchangeable
  values is exceeded with probability Beta(n + 1 - k, k)); p0 is that distribution's 0.95 quantile, which is also
  the Clopper-Pearson upper bound of x in n. n is the number of validation patients where known (else of images)
  and x = n times the share flagged on validation (or one minus the quantile, if higher): as many patients' worth
  of exceedances as the images showed.
* ``ood_score`` (upper tabular CUSUM, k = 0.5): the normal score of each answer within the validation scores is
  standardised like the appearance charts (``appearance.widened``): by the upper 95% bound of the validation normal
  scores' spread and past the 95% confidence interval of their mean, n the validation patients.

A validation split of fewer than ``MIN_UNITS`` patients (or images, where the patients are not known) bounds
nothing: both charts then keep the nominal design (p0 the threshold's own share; normal scores as N(0, 1)) and the
design says that false alarms are likely (``bounded`` False). The charts stay: an OOD signal that false-alarms is
safer than none.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.stats import norm

from proctovision.monitoring.appearance import MIN_UNITS, widened

CONFIDENCE = 0.95
SHARE_NOTE = ("upper 95% bound of the threshold's exceedance probability, Beta(x + 1, n - x) with x of n validation "
              "patients' worth of scores above it")
SCORE_METHOD = ("upper tabular CUSUM on normal scores standardised by the validation patients' 95% bounds "
                "(Page 1954; Montgomery ch. 9)")


def units(reference: dict) -> tuple[int, str]:
    """The number of validation units and what they are: patients where the reference knows them, else images."""
    patients = reference.get("units")
    if patients and patients >= 2:
        return int(patients), "patients"
    return int(reference["n"]), "images"


def exceedance_bound(exceeding: float, n: int, confidence: float = CONFIDENCE) -> float:
    """The ``confidence`` quantile of Beta(x + 1, n - x): the exceedance probability of a threshold that x of n
    exchangeable units lie above, bounded from above."""
    exceeding = min(max(exceeding, 0.0), n - 1.0)
    return float(stats.beta.ppf(confidence, exceeding + 1, n - exceeding))


def share_design(ood: dict, reference: dict) -> dict:
    """p0 of the ``ood_share`` chart with how it was reached (n, what the units are, x)."""
    n, unit = units(reference)
    share = max(1 - float(ood.get("quantile") or 0.99), float(ood.get("share_flagged") or 0.0))
    exceeding = share * n
    bounded = n >= MIN_UNITS
    return {"p0": exceedance_bound(exceeding, n) if bounded else share, "units": n, "unit": unit,
            "exceeding": round(exceeding, 4), "validation_share": round(share, 4), "bounded": bounded}


def normal_scores(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Phi^-1 of each value's plotting position (rank + 0.5) / (n + 1) among the reference values."""
    reference = np.sort(np.asarray(reference, dtype=np.float64))
    position = (np.searchsorted(reference, values, side="right") + 0.5) / (len(reference) + 1)
    return norm.ppf(position)


def score_standardisation(reference: dict) -> dict:
    """``mean``, ``scale`` and ``allowance`` of the ``ood_score`` chart from the validation scores' own normal
    scores, n the validation patients (or images)."""
    scores = np.asarray(reference["ood"].get("scores") or [], dtype=np.float64)
    n, unit = units(reference)
    if scores.size < MIN_UNITS or n < MIN_UNITS:
        return {"mean": 0.0, "scale": 1.0, "allowance": 0.0, "units": n, "unit": unit, "bounded": False}
    z = normal_scores(scores, scores)
    return {**widened(round(float(z.mean()), 4), float(max(z.std(ddof=1), 1e-6)), n), "units": n, "unit": unit,
            "bounded": True}


def score_increments(values: np.ndarray, spec: dict, scores: np.ndarray) -> np.ndarray:
    """The ``ood_score`` chart's increments; a design made before the standardisation existed reads as N(0, 1)."""
    z = (normal_scores(values, scores) - spec.get("mean", 0.0)) / spec.get("scale", 1.0)
    return z - spec.get("allowance", 0.0) - spec["k"]


def methods(charts: dict, _: object) -> list[str]:
    """The report's sentences on the two OOD charts and their false-alarm design (a folder designed before the
    bounds existed is described as it was designed)."""
    share, score = charts["ood_share"], charts["ood_score"]
    sentences = [_("The OOD share is followed by a Bernoulli CUSUM (Reynolds and Stoumbos 1999) that detects a rise "
                   "from p0 = {p0:.1%} to p1 = {p1:.1%}, with limit h = {h:.2f}.").format(
        p0=share["p0"], p1=share["p1"], h=share["h"])]
    nominal_score = _("The mean OOD score is followed by an upper tabular CUSUM (k = 0.5, h = {h:.2f}) on the normal "
                      "scores of each answer's OOD score within the validation scores.").format(h=score["h"])
    if "unit" not in share:
        return sentences + [nominal_score]
    units = (_("{n} validation patients") if share["unit"] == "patients" else _("{n} validation images")).format(
        n=share["units"])
    if not share.get("bounded", True):
        return sentences + [_("p0 is the share of validation scores above the OOD threshold ({nominal:.1%}) and "
                              "the OOD scores are taken as they lie among the validation scores: {units} are too few to bound either (at least "
                              "{minimum} are needed), so false alarms are likely.").format(
            nominal=share["validation_share"], units=units, minimum=MIN_UNITS), nominal_score]
    sentences.append(_("p0 is not the share of validation scores above the OOD threshold ({nominal:.1%}) but the "
                       "upper 95% bound of its exceedance probability given {units}: with x = {x:.2f} of n = {n} units above the threshold, a new unit "
                       "exceeds it with probability Beta(x + 1, n - x) (the order statistics of exchangeable units), "
                       "whose 0.95 quantile is taken.").format(
        nominal=share["validation_share"], units=units, x=share["exceeding"], n=share["units"]))
    sentences.append(_("The mean OOD score is followed by an upper tabular CUSUM (k = 0.5, h = {h:.2f}) on the normal "
                       "scores of each answer's OOD score within the validation scores, standardised against {units}: "
                       "the scale is the upper confidence bound (95%) of their standard deviation and the reference "
                       "value is widened by the confidence interval (95%) of their mean.").format(
        h=score["h"], units=units))
    return sentences
