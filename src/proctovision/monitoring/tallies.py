"""What ``monitor status`` reads, at the scale of a year of answers (a million rows): the database counts the
answers per status and source, the first and last time, and per flag the answers that know it and those that raise
it, in one grouped query; only the few columns that the other numbers need travel, as numpy arrays in order of
arrival (decisions as class numbers, so no string crosses per answer)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import case, func, literal, null, select

from proctovision.monitoring.folder import ANSWERED
from proctovision.monitoring.change_store import Feedback
from proctovision.monitoring.store import Outcome, PredictionRecord

ANSWER = PredictionRecord.__table__.c
FLAGS = ("out_of_distribution", "too_dark", "overexposed", "blurred")


def within(query: object, since: dt.datetime | None, until: dt.datetime | None) -> object:
    if since is not None:
        query = query.where(ANSWER.at >= since)
    if until is not None:
        query = query.where(ANSWER.at < until)
    return query


def counts(monitor: object, since: dt.datetime | None = None, until: dt.datetime | None = None,
           flags: tuple[str, ...] = FLAGS) -> dict:
    """Answered answers, their sources (most first, ties in order of first answer), first and last time; errors
    and refusals; per flag (over answered answers) how many know it and how many raise it."""
    known = [func.count(ANSWER[flag]) for flag in flags]
    raised = [func.sum(case((ANSWER[flag].is_(True), 1), else_=0)) for flag in flags]
    names = ("status", "source", "n", "first_seq", "first_at", "last_at", *(f"known_{flag}" for flag in flags),
             *(f"raised_{flag}" for flag in flags))
    expressions = (ANSWER.status, ANSWER.source, func.count(), func.min(ANSWER.seq), func.min(ANSWER.at),
                   func.max(ANSWER.at), *known, *raised)
    query = select(*(expression.label(name) for expression, name in zip(expressions, names))).group_by(
        ANSWER.status, ANSWER.source)
    groups = monitor.read(within(query, since, until), names, times=("first_at", "last_at"))
    answered = groups[groups["status"] == "answered"]
    by_source = answered.groupby("source").agg(n=("n", "sum"), first=("first_seq", "min"))
    by_source = by_source.sort_values(["n", "first"], ascending=[False, True])
    total = int(answered["n"].sum())
    return {"answered": total, "first": answered["first_at"].min() if total else None,
            "last": answered["last_at"].max() if total else None,
            "by_source": {str(name): int(n) for name, n in by_source["n"].items()},
            "errors": int(groups.loc[groups["status"] == "error", "n"].sum()),
            "refusals": int(groups.loc[groups["status"] == "refused", "n"].sum()),
            "flags": {flag: (int(answered[f"known_{flag}"].sum()), int(answered[f"raised_{flag}"].sum()))
                      for flag in flags}}


def class_number(classes: list[str]) -> object:
    """The decision as its class's number, NULL for any other decision (or none)."""
    return case(*((ANSWER.decision == name, literal(index)) for index, name in enumerate(classes)), else_=null())


def answered_arrays(monitor: object, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """Per answered answer, in order of arrival: the decision's class number, the score, the OOD score and the
    latency, as float arrays (missing: NaN)."""
    names = ("decision", "score", "ood_score", "latency_s")
    query = select(class_number(monitor.classes), ANSWER.score, ANSWER.ood_score, ANSWER.latency_s).where(*ANSWERED)
    rows = monitor.rows(within(query, since, until).order_by(ANSWER.seq))
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return {name: np.ascontiguousarray(table[:, index]) for index, name in enumerate(names)}


def labelled_answers(monitor: object, columns: tuple[str, ...], since: dt.datetime | None = None,
                     until: dt.datetime | None = None) -> pd.DataFrame:
    """The answered answers that have an outcome or a feedback (a superset of the confirmed ones), in order of
    arrival: joining a year of answers to a few confirmed ones needs only these."""
    labelled = select(Outcome.prediction_id).union(select(Feedback.prediction_id))
    query = select(*(ANSWER[name] for name in columns)).where(*ANSWERED, ANSWER.id.in_(labelled))
    return monitor.read(within(query, since, until).order_by(ANSWER.seq), columns)
