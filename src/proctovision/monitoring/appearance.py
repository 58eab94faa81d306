"""The input-appearance signal: what another video processor changes (a colour cast, another brightness) while the
model's OOD score and outputs barely move.

Each answer records three numbers, the mean red, green and blue levels (0..255) of the lit area it was judged on
(``imaging.quality.channel_means``), never pixels. The reference is the same three numbers over the model's own
validation images, carried by the run's predictions.csv and the export's validation.csv (``appearance_*``
columns), so the clinic's machine needs no training image.

Each channel has a two-sided tabular CUSUM (k = 0.5), one chart per side, on

    z = (x - mean) / s_u,   upper: z - a - k,   lower: -z - a - k,

where ``mean`` and ``sd`` are the validation figures, ``s_u`` the upper 95% confidence bound of ``sd`` (chi-square,
n - 1 degrees of freedom) and ``a`` the half-width of the 95% confidence interval of ``mean`` (Student t) in units
of ``s_u``, n the validation patients (the unit: a patient's images look alike; ``evaluate`` writes their number,
never who they are): a validation split of n patients knows the in-distribution mean and spread only that well. The limit h is
the one-sided Brook-Evans limit for k = 0.5 at the chart's share of the false-alarm budget, so its in-control ARL
holds for any clinic whose true mean lies within the interval and whose spread is within the bound. The six charts
count as six in the Bonferroni split of the budget (``signals.design``).

A reference without the figures (a run evaluated, or an export made, before they existed) or with fewer than
``MIN_IMAGES`` images or ``MIN_UNITS`` patients gets no appearance charts; the design says so and why.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from proctovision.evaluation import cusum

CHANNELS = ("red", "green", "blue")
COLUMNS = tuple(f"appearance_{channel}" for channel in CHANNELS)
SIDES = ("high", "low")
SIGNALS = tuple(f"appearance_{channel}_{side}" for channel in CHANNELS for side in SIDES)
PATIENTS = "appearance_patients"  # the validation split's number of patients (a count, no identifier)
MIN_IMAGES = 10
MIN_UNITS = 3
K = 0.5
NO_FIGURES = ("not available: the reference has no appearance figures (re-run `proctovision evaluate`, then "
              "export again)")
METHOD = ("two-sided tabular CUSUM (k = 0.5) on each lit-area channel mean, standardised against validation "
          "(Page 1954; Montgomery ch. 9)")


def appearance_columns(quality: dict | None) -> dict:
    """The three recorded numbers of one answer, from its quality measures (None where they were not measured)."""
    quality = quality or {}
    return {column: (None if quality.get(channel) is None else float(quality[channel]))
            for column, channel in zip(COLUMNS, CHANNELS)}


def is_appearance(signal: str) -> bool:
    return signal in SIGNALS


def reference_figures(rows: pd.DataFrame) -> dict:
    """Mean, sd and n of each channel over the validation rows; ``available`` False with the reason where the rows
    carry no figures or too few."""
    if not all(column in rows.columns for column in COLUMNS):
        return {"available": False, "reason": "no_figures", "note": NO_FIGURES}
    values = rows[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").dropna()
    units = len(values)
    patients = pd.to_numeric(rows[PATIENTS], errors="coerce") if PATIENTS in rows.columns else pd.Series(dtype=float)
    if patients.notna().any():
        units = min(units, int(patients.max()))
    if len(values) < MIN_IMAGES or units < MIN_UNITS:
        return {"available": False, "reason": "too_few", "n": int(len(values)), "units": units,
                "note": f"not available: the validation split has appearance figures for {len(values)} images of "
                        f"{units} patients, fewer than the {MIN_IMAGES} images and {MIN_UNITS} patients needed"}
    channels = {channel: {"mean": round(float(values[column].mean()), 4),
                          "sd": round(float(max(values[column].std(ddof=1), 1e-6)), 4)}
                for channel, column in zip(CHANNELS, COLUMNS)}
    return {"available": True, "n": int(len(values)), "units": units, "channels": channels}


def standardisation(figures: dict, channel: str) -> dict:
    """``mean``, the scale ``s_u`` (upper 95% bound of sd) and the allowance ``a`` (95% CI half-width of the mean,
    in units of s_u) for one channel. The patient is the unit: a patient's images look alike, so n is the number
    of validation patients where known (sd / sqrt(patients) bounds the clustered mean's standard error from above
    for equal cluster sizes), else of images."""
    n = figures.get("units") or figures["n"]
    return widened(figures["channels"][channel]["mean"], figures["channels"][channel]["sd"], n)


def widened(mean: float, sd: float, n: int) -> dict:
    """``mean``, ``scale`` (the upper 95% chi-square bound of ``sd`` with n - 1 degrees of freedom) and
    ``allowance`` (the 95% Student-t half-width of the mean, in units of the scale) from n units."""
    scale = sd * np.sqrt((n - 1) / stats.chi2.ppf(0.025, n - 1))
    allowance = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) / scale
    return {"mean": mean, "scale": round(float(scale), 4), "allowance": round(float(allowance), 4)}


def chart_count(reference: dict) -> int:
    return len(SIGNALS) if (reference.get("appearance") or {}).get("available") else 0


def design_charts(reference: dict, target_arl: float) -> dict[str, dict]:
    """One chart per channel and side, each with the in-control ARL ``target_arl`` (answers)."""
    if not chart_count(reference):
        return {}
    figures = reference["appearance"]
    h = cusum.design_h(target_arl, K, sides=1)
    charts = {}
    for channel in CHANNELS:
        for side in SIDES:
            charts[f"appearance_{channel}_{side}"] = {
                "method": METHOD, "channel": channel, "side": side, "k": K, "h": round(h, 4),
                "arl0": round(cusum.arl_one_sided(K, h)), "arl1_1sigma": round(cusum.arl_one_sided(K, h, 1.0), 1),
                "n_reference": figures["n"], "units": figures.get("units") or figures["n"],
                **standardisation(figures, channel)}
    return charts


def availability(reference: dict) -> dict:
    """What the design says about the appearance signal: available, or not and why."""
    figures = reference.get("appearance") or {"available": False, "reason": "no_figures", "note": NO_FIGURES}
    return {"available": bool(figures.get("available")), "n": figures.get("n"), "units": figures.get("units"),
            "reason": figures.get("reason"),
            "note": figures.get("note"), "method": METHOD}


def increments(signal: str, frame: pd.DataFrame, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The chart's per-answer increments and the rows they belong to (answers without the figure are skipped)."""
    column = f"appearance_{spec['channel']}"
    if column not in frame.columns:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    known = np.isfinite(values)
    z = (values[known] - spec["mean"]) / spec["scale"]
    z = z if spec["side"] == "high" else -z
    return z - spec["allowance"] - spec["k"], np.flatnonzero(known)


def methods(design: dict, _: object) -> list[str]:
    """The report's sentences on the appearance signal and its false-alarm design (a folder made before the signal
    existed has no ``appearance`` in its design: it is said as a reference without figures)."""
    state = design.get("appearance") or availability({})
    if state.get("reason") == "too_few":
        return [_("Input appearance (the mean red, green and blue levels of each image's lit area) is recorded but "
                  "not charted: the validation split has appearance figures for {n} images of {units} patients, "
                  "fewer than the {minimum} images and {patients} patients needed.").format(
            n=state["n"], units=state["units"], minimum=MIN_IMAGES, patients=MIN_UNITS)]
    if not state["available"]:
        return [_("Input appearance (the mean red, green and blue levels of each image's lit area) is recorded but "
                  "not charted: the model's reference has no appearance figures (run `proctovision evaluate` "
                  "again, then export again).")]
    spec = next(chart for name, chart in design["charts"].items() if is_appearance(name))
    return [_("Input appearance, the mean red, green and blue levels of each image's lit area (what another video "
              "processor changes), is followed by a two-sided tabular CUSUM per channel (k = 0.5, h = {h:.2f}) "
              "standardised against {n} validation images of {units} patients, the patient being the unit: the "
              "scale is the upper confidence bound (95%) of their standard deviation and the reference value is "
              "widened by the confidence interval (95%) of their mean, so the limit holds for any in-distribution "
              "clinic within them; the six one-sided charts count as six charts in the false-alarm budget.").format(
        h=spec["h"], n=state["n"], units=state["units"] or state["n"])]
