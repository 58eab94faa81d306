"""Labelling: each expert's label per case, the consensus rule, the adjudication queue, and agreement so far.

Rules: ``unanimous`` (every assigned expert gave the same label, else none), ``majority`` (more than half,
else none) and ``adjudication`` (agreement stands; every disagreement goes to an adjudicator, who sees the
experts' labels and picks the final one). Repeated showings of a case are left out of consensus and agreement.
"""
from __future__ import annotations

import warnings
from collections import Counter

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctovision.evaluation.agreement import agreement
from proctovision.reading.db import Adjudication, Answer, AuditEvent, Case, Item, ReadingError, Study, User


def first_readings(session: Session, arm: str | None = None) -> pd.DataFrame:
    """One row per reader, arm and case (the first showing, not the repeat): case, reader, experience, arm,
    label, confidence, reading_time_s, hidden_s, idle_s, interrupted_s."""
    query = (select(Answer.case_id, User.name, User.experience, Answer.arm, Answer.label, Answer.confidence,
                    Answer.reading_time_s, Answer.hidden_s, Answer.idle_s, Answer.interrupted_s)
             .join(Item, Answer.item_id == Item.id).join(User, Answer.user_id == User.id)
             .where(Item.repeat.is_(False)).order_by(Answer.id))
    if arm is not None:
        query = query.where(Answer.arm == arm)
    columns = ["case", "reader", "experience", "arm", "label", "confidence", "reading_time_s", "hidden_s",
               "idle_s", "interrupted_s"]
    return pd.DataFrame([tuple(row) for row in session.execute(query)], columns=columns)  # columns, not ORM objects


def assigned_readers(session: Session) -> dict[str, int]:
    """How many experts each case is assigned to (first showings)."""
    counts: Counter = Counter(session.scalars(select(Item.case_id).where(Item.repeat.is_(False))))
    return dict(counts)


def decide(labels: list[str], assigned: int, rule: str, adjudicated: str | None) -> tuple[str | None, str]:
    """(consensus label or None, how it was reached) for one case's expert labels."""
    if not labels or len(labels) < assigned:
        return None, "pending"
    counts = Counter(labels).most_common()
    if len(counts) == 1:
        return counts[0][0], "unanimous"
    if rule == "unanimous":
        return None, "no consensus (not unanimous)"
    if rule == "majority":
        top, votes = counts[0]
        return (top, "majority") if votes * 2 > len(labels) else (None, "no consensus (no majority)")
    return (adjudicated, "adjudicated") if adjudicated else (None, "awaiting adjudication")


def consensus_table(session: Session, study: Study) -> pd.DataFrame:
    """Per case: each expert's label, the consensus label and method."""
    readings = first_readings(session, "labelling")
    assigned = assigned_readers(session)
    adjudicated = {row.case_id: row.label for row in session.scalars(select(Adjudication))}
    lines = []
    for case in session.scalars(select(Case).order_by(Case.position)):
        own = readings[readings["case"] == case.id]
        label, method = decide(list(own["label"]), assigned.get(case.id, 0), study.consensus,
                               adjudicated.get(case.id))
        lines.append({"case": case.id, "consensus": label, "method": method,
                      "labels": dict(zip(own["reader"], own["label"]))})
    return pd.DataFrame(lines, columns=["case", "consensus", "method", "labels"])


def adjudication_queue(session: Session, study: Study) -> list[str]:
    if study.kind != "labelling" or study.consensus != "adjudication":
        return []
    table = consensus_table(session, study)
    return list(table.loc[table["method"] == "awaiting adjudication", "case"])


def next_adjudication(session: Session, study: Study) -> dict | None:
    """The first disagreement waiting for an adjudicator: the case and the experts' labels (not their names)."""
    queue = adjudication_queue(session, study)
    if not queue:
        return None
    case_id = queue[0]
    labels = first_readings(session, "labelling")
    own = labels[labels["case"] == case_id]
    return {"case": case_id, "image": f"api/cases/{case_id}/image", "classes": list(study.classes),
            "remaining": len(queue),
            "labels": [{"expert": index + 1, "label": label} for index, label in enumerate(own["label"])]}


def adjudicate(session: Session, study: Study, user: User, case_id: str, label: str) -> dict:
    if case_id not in adjudication_queue(session, study):
        from proctovision.reading.assignments import NotFound

        raise NotFound("no such case awaiting adjudication")
    if label not in study.classes:
        raise ReadingError("label is not a class of this study")
    session.add(Adjudication(case_id=case_id, user_id=user.id, label=label))
    session.add(AuditEvent(user_id=user.id, case_id=case_id, arm="labelling", event="adjudicate",
                           payload={"label": label}))
    session.commit()
    return {"case": case_id, "label": label}


_SO_FAR: dict[str, tuple[tuple, dict]] = {}  # study token -> (answers version, admin summary)


def answers_version(session: Session) -> tuple:
    """Changes whenever an answer is added or changed or a case adjudicated: the key of the cached figures."""
    adjudications = select(func.count()).select_from(Adjudication).scalar_subquery()
    count, last, changes, decided = session.execute(select(
        func.count(Answer.id), func.max(Answer.id), func.coalesce(func.sum(Answer.changes), 0), adjudications)).one()
    return int(count), last, int(changes), int(decided)


def agreement_so_far(session: Session, study: Study, n_resamples: int = 200) -> dict:
    """Agreement per arm from the answers so far, recomputed only when an answer came in since the last call.

    Per arm: Fleiss' kappa with its 95% CI and n (the cases every reader of that arm has read) and every pair's
    Cohen's kappa (quadratic-weighted for ordinal tasks) with its 95% CI and n (the cases both have read)."""
    version = answers_version(session)
    cached = _SO_FAR.get(study.token)
    if cached is not None and cached[0] == version:
        return cached[1]
    result = _agreement_summary(session, study, n_resamples)
    if study.kind == "labelling":
        table = consensus_table(session, study)
        result["consensus"] = {str(k): int(v) for k, v in table["method"].value_counts().items()}
    _SO_FAR[study.token] = (version, result)
    return result


def _agreement_summary(session: Session, study: Study, n_resamples: int) -> dict:
    readings = first_readings(session)
    if readings.empty or readings["reader"].nunique() < 2:
        return {"conditions": {}, "note": "fewer than two readers have answered"}
    table = readings.rename(columns={"case": "path", "arm": "condition"})[["path", "reader", "label", "condition"]]
    try:
        with warnings.catch_warnings():  # a panel that agrees perfectly so far has no z statistic yet
            warnings.simplefilter("ignore", RuntimeWarning)
            full = agreement(table, tuple(study.classes), study.ordinal, n_resamples=n_resamples)
    except (ValueError, ZeroDivisionError) as error:
        return {"conditions": {}, "note": f"not computable yet: {error}"}
    weights = "quadratic" if study.ordinal else "unweighted"
    conditions = {}
    for condition, block in full["conditions"].items():
        panel = block["fleiss"]
        conditions[condition] = {
            "readers": block["readers"], "n_cases": block["n_images"],
            "fleiss": None if panel is None else {"kappa": panel["kappa"], "ci95": panel["ci95"],
                                                  "n": panel["n_images"], "n_readers": panel["n_readers"]},
            "pairs": [{"a": pair["a"], "b": pair["b"], "kappa": pair[weights]["kappa"], "ci95": pair[weights]["ci95"],
                       "n": pair[weights]["n"]} for pair in block["pairs"]]}
    return {"conditions": conditions, "weights": weights,
            "note": "Fleiss' kappa on the cases every reader has read (n); each pair on the cases both have read"}
