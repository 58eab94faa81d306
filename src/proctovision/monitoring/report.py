"""The periodic post-market surveillance report of a monitoring folder (``monitor report``): HTML, PDF and CSV
tables with the period and volume, the alarms and their acknowledgements, performance on confirmed cases with
Wilson CIs against validation, the label-free estimate, the OOD and quality shares, and a methods paragraph that
names each signal's method and its false-alarm design."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from proctovision.core import fileio, i18n
from proctovision.monitoring import appearance, ood_charts
from proctovision.monitoring.summary import chart_data, status
from proctovision.reporting import monitoring_report


def methods(design: dict, _: object) -> list[str]:
    """The methods paragraph, sentence by sentence, from the folder's own design."""
    charts, windows = design["charts"], design["windows"]
    sentences = [_("Each answer is recorded with its probabilities, decision, out-of-distribution (OOD) score, "
                   "quality flags and latency; no patient identifier, file name or pixel is stored.")]
    if "ood_share" in charts:
        sentences.extend(ood_charts.methods(charts, _))
    sentences.append(_("Each quality flag (too dark, overexposed, blurred) has its own Bernoulli CUSUM against its "
                       "validation share, or a 1% prior where the model recorded none."))
    sentences.extend(appearance.methods(design, _))
    sentences.append(_("The mix of predicted classes (Pearson chi-square) and the probability distribution "
                       "(two-sample Kolmogorov-Smirnov) are tested against validation in consecutive windows of "
                       "{window} answers (never fewer than {minimum}), each at significance level {alpha:.4f}.")
                     .format(window=design["window"], minimum=design["min_window"],
                             alpha=windows["class_mix"]["alpha"]))
    sentences.append(_("False alarms are designed per 10,000 in-distribution answers, not per window: a budget of "
                       "{budget:g} is split in half between the per-answer charts (each with an in-control average "
                       "run length of {arl:,.0f} answers, computed by the Brook-Evans Markov chain) and the window "
                       "tests.").format(budget=design["alarms_per_10000"], arl=design["in_control_arl_per_chart"]))
    sentences.append(_("Performance on confirmed cases is given with Wilson confidence intervals (95%), with "
                       "calibration-in-the-large and the calibration slope. The label-free estimate (confidence-"
                       "based performance estimation) assumes that the probabilities stay calibrated and that there "
                       "is no concept drift."))
    return sentences


def tables(document: dict, data: dict) -> dict[str, pd.DataFrame]:
    metrics = []
    for name in ("accuracy", "sensitivity", "specificity"):
        seen = document["confirmed"].get(name) or {}
        reference = ((document["validation"].get("performance") or {}).get(name)) or {}
        metrics.append({"metric": name, "confirmed_n": seen.get("n"), "confirmed": seen.get("value"),
                        "confirmed_ci_low": (seen.get("ci") or [None, None])[0],
                        "confirmed_ci_high": (seen.get("ci") or [None, None])[1],
                        "estimated": document["estimated"].get(name),
                        "validation": reference.get("value"),
                        "validation_ci_low": (reference.get("ci") or [None, None])[0],
                        "validation_ci_high": (reference.get("ci") or [None, None])[1]})
    alarms = pd.DataFrame(document["alarms"] + document["acknowledged"],
                          columns=["id", "signal", "first_at", "after_predictions", "acknowledged_at",
                                   "acknowledged_by", "note"])
    inputs = pd.DataFrame([{"signal": key, "share": value} for key, value in document["inputs"].items()])
    team = document.get("team") or {}
    overrides = pd.DataFrame([{"clinician": name, "n": item["n"], "override_rate": item["value"],
                               "ci_low": item["ci"][0], "ci_high": item["ci"][1]}
                              for name, item in {"(all)": team.get("override"), **team.get("by_clinician", {})}.items()
                              if item and item.get("n")], columns=["clinician", "n", "override_rate", "ci_low", "ci_high"])
    return {"performance": pd.DataFrame(metrics), "alarms": alarms, "inputs": inputs, "timeline": data["timeline"],
            "overrides": overrides, "versions": pd.DataFrame(document.get("versions") or [])}


def write_report(monitor: object, out: str | Path, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 language: str | None = None) -> dict[str, Path]:
    """report.html, report.pdf, figures/ and tables/*.csv in ``out``."""
    out = Path(out)
    language = i18n.normalise(language)
    document = status(monitor, since, until)
    data = chart_data(monitor, since, until)
    _ = i18n.gettext_for(language)
    written = {name: fileio.write_csv(out / "tables" / f"{name}.csv", table)
               for name, table in tables(document, data).items()}
    period = {"since": since.isoformat() if since else document["period"]["first"],
              "until": until.isoformat() if until else document["period"]["last"]}
    paragraph = methods(monitor.design, _)
    figures = monitoring_report.figures(data, out / "figures", language, out / "report.pdf", document, period,
                                        paragraph)
    written["pdf"] = figures.pop("pdf")
    written["html"] = fileio.write_text(out / "report.html", monitoring_report.html(
        document, period, paragraph, {name: path.relative_to(out).as_posix() for name, path in figures.items()},
        language))
    return written
