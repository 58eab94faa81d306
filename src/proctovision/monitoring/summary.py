"""What ``monitor status``, the /monitor page and the report say: volume, alarms, the label-free estimate (CBPE,
with its assumptions), observed performance on confirmed cases with Wilson CIs against validation, the OOD and
quality shares, and the operations figures; plus the series over time that the charts draw."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from proctovision.evaluation import drift
from proctovision.monitoring import signals
from proctovision.monitoring.change_control import change_status
from proctovision.monitoring.feedback import confirmed_cases as confirmed_labels  # outcomes, then feedback

FLAGS = ("too_dark", "overexposed", "blurred")


def estimated(answers: pd.DataFrame, classes: list[str]) -> dict:
    """CBPE over the answers: from P(positive) for two classes, from P(decided class) (accuracy only) otherwise."""
    rows = answers[answers["score"].notna() & answers["decision"].isin(classes)]
    if len(classes) == 2:
        p = rows["score"].to_numpy(float)
        decided = (rows["decision"] == classes[1]).to_numpy().astype(int)
        return drift.cbpe(np.stack([1 - p, p], axis=1), decided)
    result = drift.cbpe(np.zeros((0, 1)), np.zeros(0))
    if len(rows):
        result.update(n=int(len(rows)), accuracy=float(rows["score"].mean()))
    return result


def confirmed(answers: pd.DataFrame, labels: pd.DataFrame, classes: list[str]) -> dict:
    """Observed performance on the answers that have a confirmed label, with Wilson CIs and the calibration fit."""
    joined = answers[["id", "decision", "score"]].merge(labels, left_on="id", right_on="prediction_id")
    joined = joined[joined["decision"].isin(classes)]
    out: dict = {"n": int(len(joined)), "by_source": joined["source"].value_counts().to_dict() if len(joined) else {}}
    truth = np.array([classes.index(label) for label in joined["label"]], dtype=int)
    called = np.array([classes.index(name) for name in joined["decision"]], dtype=int)
    out.update(drift.observed_performance(truth, called, 1))
    if len(classes) == 2:
        out["calibration"] = drift.calibration_fit(truth == 1, joined["score"].to_numpy(float))
    return out


def operations(answers: pd.DataFrame) -> dict:
    answered = answers[answers["status"] == "answered"]
    times = pd.to_datetime(answered["at"])
    hours = max((times.max() - times.min()).total_seconds() / 3600, 1.0) if len(times) else 1.0
    latency = answered["latency_s"].dropna().to_numpy(float) * 1000
    return {"per_hour": len(answered) / hours, "per_day": len(answered) / hours * 24,
            "latency_ms_p50": float(np.percentile(latency, 50)) if latency.size else None,
            "latency_ms_p95": float(np.percentile(latency, 95)) if latency.size else None,
            "errors": int((answers["status"] == "error").sum()), "refusals": int((answers["status"] == "refused").sum())}


def shares(answers: pd.DataFrame) -> dict:
    answered = answers[answers["status"] == "answered"]
    out = {"ood_share": _share(answered["out_of_distribution"]),
           "ood_mean_score": float(answered["ood_score"].mean()) if answered["ood_score"].notna().any() else None}
    out.update({f"{flag}_share": _share(answered[flag]) for flag in FLAGS})
    return out


def _share(column: pd.Series) -> float | None:
    known = column.dropna()
    return float(known.astype(bool).mean()) if len(known) else None


def status(monitor: object, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """The status document (the JSON of ``monitor status --json``)."""
    monitor.refresh_alarms()
    answers = monitor.answers(since, until)
    answered = answers[answers["status"] == "answered"]
    labels = confirmed_labels(monitor)
    alarms = monitor.alarms()
    return {
        "folder": str(monitor.folder),
        "model": {"sha256": monitor.model_sha256, "task": monitor.config["model"]["task"], "classes": monitor.classes},
        "period": {"first": _iso(answered["at"].min()) if len(answered) else None,
                   "last": _iso(answered["at"].max()) if len(answered) else None},
        "predictions": int(len(answered)),
        "by_source": answered["source"].value_counts().to_dict(),
        "alarms": [alarm for alarm in alarms if alarm["acknowledged_at"] is None],
        "acknowledged": [alarm for alarm in alarms if alarm["acknowledged_at"] is not None],
        "estimated": estimated(answered, monitor.classes),
        "confirmed": confirmed(answered, labels, monitor.classes) if len(labels) else {"n": 0},
        "validation": {"n": monitor.reference["n"], "performance": monitor.reference.get("performance"),
                       "calibration": monitor.reference.get("calibration")},
        "outcomes": {"n": int(len(labels)), "by_source": labels["source"].value_counts().to_dict() if len(labels)
                     else {}},
        "inputs": shares(answers),
        "operations": operations(answers),
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


def timeline(monitor: object, answers: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Per period (``freq``: D for days, h for hours): answers, OOD share, the class mix and the estimated accuracy."""
    answered = answers[answers["status"] == "answered"].copy()
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


def ood_chart(monitor: object, answers: pd.DataFrame) -> dict | None:
    """The OOD-share CUSUM over every answer (restarting at each acknowledgement) and its limit, for drawing."""
    if "ood_share" not in monitor.design["charts"]:
        return None
    answered = answers[answers["status"] == "answered"].reset_index(drop=True)
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
    answers = monitor.answers(since, until)
    answered = answers[answers["status"] == "answered"]
    span = (pd.to_datetime(answered["at"]).max() - pd.to_datetime(answered["at"]).min()) if len(answered) else None
    freq = "h" if span is not None and span < pd.Timedelta(days=3) else "D"
    table = timeline(monitor, answers, freq)
    if not table.empty:
        observed = observed_by_period(answered, confirmed_labels(monitor), monitor.classes, freq)
        table = table.merge(observed, on="period", how="left") if not observed.empty else table
    charted = answers[answers["unit"] != "procedure"]
    return {"freq": freq, "classes": monitor.classes, "timeline": table, "ood_chart": ood_chart(monitor, charted)}
