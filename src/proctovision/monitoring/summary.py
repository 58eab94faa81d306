"""What ``monitor status``, the /monitor page and the report say: volume, alarms, the label-free estimate (CBPE,
with its assumptions), observed performance on confirmed cases with Wilson CIs against validation, the OOD and
quality shares, and the operations figures; plus the series over time that the charts draw."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from proctovision.evaluation import drift
from proctovision.monitoring import signals, tallies
from proctovision.monitoring.change_control import change_status
from proctovision.monitoring.feedback import confirmed_cases as confirmed_labels  # outcomes, then feedback
from proctovision.monitoring.folder import ANSWERED

FLAGS = ("too_dark", "overexposed", "blurred")


def estimated(decision: np.ndarray, score: np.ndarray, classes: list[str]) -> dict:
    """CBPE over the answers (``decision``: class numbers, NaN for another decision): from P(positive) for two
    classes, from P(decided class) (accuracy only) otherwise."""
    kept = ~np.isnan(score) & ~np.isnan(decision)
    p, decided = score[kept], decision[kept].astype(int)
    if len(classes) == 2:
        return drift.cbpe(np.stack([1 - p, p], axis=1), (decided == 1).astype(int))
    result = drift.cbpe(np.zeros((0, 1)), np.zeros(0))
    if p.size:
        result.update(n=int(p.size), accuracy=float(pd.Series(p).mean()))
    return result


def confirmed(answers: pd.DataFrame, labels: pd.DataFrame, classes: list[str]) -> dict:
    """Observed performance on the answers that have a confirmed label, with Wilson CIs and the calibration fit."""
    joined = answers[["id", "decision", "score"]].merge(labels, left_on="id", right_on="prediction_id")
    joined = joined[joined["decision"].isin(classes)]
    out: dict = {"n": int(len(joined)), "by_source": joined["source"].value_counts().to_dict() if len(joined) else {}}
    truth = pd.Categorical(joined["label"], categories=classes).codes.astype(int)
    called = pd.Categorical(joined["decision"], categories=classes).codes.astype(int)
    out.update(drift.observed_performance(truth, called, 1))
    if len(classes) == 2:
        out["calibration"] = drift.calibration_fit(truth == 1, joined["score"].to_numpy(float))
    return out


def operations(counted: dict, latency_s: np.ndarray) -> dict:
    answered = counted["answered"]
    hours = max((counted["last"] - counted["first"]).total_seconds() / 3600, 1.0) if answered else 1.0
    latency = latency_s[~np.isnan(latency_s)] * 1000
    return {"per_hour": answered / hours, "per_day": answered / hours * 24,
            "latency_ms_p50": float(np.percentile(latency, 50)) if latency.size else None,
            "latency_ms_p95": float(np.percentile(latency, 95)) if latency.size else None,
            "errors": counted["errors"], "refusals": counted["refusals"]}


def shares(counted: dict, ood_score: np.ndarray) -> dict:
    """The share of answered answers flagged, of those that know the flag; the mean OOD score."""
    out = {"ood_share": _share(*counted["flags"]["out_of_distribution"]),
           "ood_mean_score": float(pd.Series(ood_score).mean()) if (~np.isnan(ood_score)).any() else None}
    out.update({f"{flag}_share": _share(*counted["flags"][flag]) for flag in FLAGS})
    return out


def _share(known: int, raised: int) -> float | None:
    return raised / known if known else None


def status(monitor: object, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """The status document (the JSON of ``monitor status --json``). The database counts; only the columns the
    estimate, the latency and the OOD score need are read (monitoring.tallies)."""
    monitor.refresh_alarms()
    counted = tallies.counts(monitor, since, until, ("out_of_distribution", *FLAGS))
    arrays = tallies.answered_arrays(monitor, since, until)
    labels = confirmed_labels(monitor)
    alarms = monitor.alarms()
    return {
        "folder": str(monitor.folder),
        "model": {"sha256": monitor.model_sha256, "task": monitor.config["model"]["task"], "classes": monitor.classes},
        "period": {"first": _iso(counted["first"]) if counted["answered"] else None,
                   "last": _iso(counted["last"]) if counted["answered"] else None},
        "predictions": counted["answered"],
        "by_source": counted["by_source"],
        "alarms": [alarm for alarm in alarms if alarm["acknowledged_at"] is None],
        "acknowledged": [alarm for alarm in alarms if alarm["acknowledged_at"] is not None],
        "estimated": estimated(arrays["decision"], arrays["score"], monitor.classes),
        "confirmed": confirmed(tallies.labelled_answers(monitor, ("id", "decision", "score"), since, until), labels,
                               monitor.classes) if len(labels) else {"n": 0},
        "validation": {"n": monitor.reference["n"], "performance": monitor.reference.get("performance"),
                       "calibration": monitor.reference.get("calibration")},
        "outcomes": {"n": int(len(labels)), "by_source": labels["source"].value_counts().to_dict() if len(labels)
                     else {}},
        "inputs": shares(counted, arrays["ood_score"]),
        "operations": operations(counted, arrays["latency_s"]),
        "design": monitor.design,
        **change_status(monitor),  # overrides, who was right, the version history (change-control plan)
    }


def _iso(value: object) -> str:
    return pd.Timestamp(value).isoformat() + "Z"


def expected_correct(answers: pd.DataFrame, classes: list[str]) -> pd.Series:
    """Per answer, the calibrated probability that it is right (what CBPE averages)."""
    score = answers["score"].astype(float)
    if len(classes) == 2:
        return score.where(answers["decision"] == classes[1], 1 - score)
    return score


def timeline(monitor: object, answered: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Per period (``freq``: D for days, h for hours) of the answered answers: answers, OOD share, the class mix and
    the estimated accuracy."""
    answered = answered.copy()
    if answered.empty:
        return pd.DataFrame()
    answered["period"] = pd.to_datetime(answered["at"]).dt.floor(freq)
    answered["ood"] = answered["out_of_distribution"].astype(float)
    answered["correct"] = expected_correct(answered, monitor.classes)
    grouped = answered.groupby("period")
    table = pd.DataFrame({"answers": grouped.size(), "ood_share": grouped["ood"].mean(),
                          "estimated_accuracy": grouped["correct"].mean()})
    mix = pd.crosstab(answered["period"], answered["decision"], normalize="index")
    for name in monitor.classes:
        table[f"share_{name}"] = mix[name] if name in mix.columns else 0.0
    return table.reset_index()


MAX_POINTS = 2000


def ood_chart(monitor: object, charted: pd.DataFrame) -> dict | None:
    """The OOD-share CUSUM over every charted answer and its limit, for drawing."""
    if "ood_share" not in monitor.design["charts"]:
        return None
    answered = charted.reset_index(drop=True)
    chart = signals.advance_chart("ood_share", 0.0, answered, monitor.design, monitor.reference)
    path = chart["path"]
    if path.size > MAX_POINTS:  # drawn, not computed, at this resolution: each point the highest of its stretch
        edges = np.linspace(0, path.size, MAX_POINTS + 1).astype(int)
        path = np.maximum.reduceat(path, edges[:-1])
    return {"statistic": path.tolist(), "answers": int(chart["path"].size), "limit": chart["limit"]}


def observed_by_period(answers: pd.DataFrame, labels: pd.DataFrame, classes: list[str], freq: str) -> pd.DataFrame:
    """Observed accuracy per period on the answers confirmed so far, with Wilson CIs."""
    joined = answers[["id", "at", "decision"]].merge(labels, left_on="id", right_on="prediction_id")
    if joined.empty:
        return pd.DataFrame(columns=["period", "observed_accuracy", "observed_low", "observed_high", "observed_n"])
    joined["period"] = pd.to_datetime(joined["at"]).dt.floor(freq)
    rows = []
    for period, group in joined.groupby("period"):
        result = drift.wilson(int((group["decision"] == group["label"]).sum()), len(group))
        rows.append({"period": period, "observed_accuracy": result["value"], "observed_low": result["ci"][0],
                     "observed_high": result["ci"][1], "observed_n": result["n"]})
    return pd.DataFrame(rows)


def chart_data(monitor: object, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """What the page's and the report's figures draw: per day (per hour for spans under three days) the volume,
    OOD share, class mix, estimated and observed accuracy; and the OOD-share CUSUM with its limit."""
    answered = monitor.answers(since, until, columns=("at", "unit", "decision", "score", "out_of_distribution"),
                               where=ANSWERED)
    span = (pd.to_datetime(answered["at"]).max() - pd.to_datetime(answered["at"]).min()) if len(answered) else None
    freq = "h" if span is not None and span < pd.Timedelta(days=3) else "D"
    table = timeline(monitor, answered, freq)
    if not table.empty:
        observed = observed_by_period(tallies.labelled_answers(monitor, ("id", "at", "decision"), since, until),
                                      confirmed_labels(monitor), monitor.classes, freq)
        table = table.merge(observed, on="period", how="left") if not observed.empty else table
    charted = answered[answered["unit"] != "procedure"]
    return {"freq": freq, "classes": monitor.classes, "timeline": table, "ood_chart": ood_chart(monitor, charted)}
