"""Clinicians' feedback on answers ("agree" or "correct to <class>", with a reason), and the human-AI team figures
it gives: the override rate per clinician and overall over time, and, once outcomes arrive, who was right when
model and clinician disagreed (Wilson CIs). These watch for automation bias and deskilling."""
from __future__ import annotations

import pandas as pd
from sqlalchemy import select, update

from proctovision.core.errors import UserError
from proctovision.evaluation.drift import wilson
from proctovision.monitoring.change_store import ANONYMOUS, VERDICTS, ChangeLog, Feedback, ModelVersion
from proctovision.monitoring.store import Outcome, PredictionRecord, now

FEEDBACK_SOURCE = "feedback"  # ranks below every outcome source: pathology outranks a clinician's label
MAX_REASON = 500


class FeedbackNotFound(UserError, LookupError):
    """No answer of this deployment has that prediction id."""


class FeedbackInvalid(UserError, ValueError):
    """A verdict, label or reason that cannot be recorded."""


def record_feedback(monitor: object, prediction_id: str, verdict: str, label: str | None = None,
                    reason: str | None = None, clinician: str | None = None) -> dict:
    """Store one feedback; the clinician's earlier one on the same answer stops counting but stays in the audit."""
    clinician = clinician or ANONYMOUS
    if verdict not in VERDICTS:
        raise FeedbackInvalid(f"verdict {verdict!r}: use agree or disagree")
    if label is not None and label not in monitor.classes:
        raise FeedbackInvalid(f"label {label!r} is not a class of the task ({', '.join(monitor.classes)})")
    if reason is not None and len(reason) > MAX_REASON:
        raise FeedbackInvalid(f"reason longer than {MAX_REASON} characters")
    with monitor.sessions.begin() as session:
        answer = session.scalar(select(PredictionRecord).where(PredictionRecord.id == str(prediction_id)))
        versions = {monitor.model_sha256, *session.scalars(select(ModelVersion.sha256))}  # this deployment's
        if answer is None or answer.model_sha256 not in versions or answer.status != "answered":
            raise FeedbackNotFound("no answer of this deployment has that prediction id")
        if verdict == "agree":
            if label not in (None, answer.decision):
                raise FeedbackInvalid("agree takes no other label than the answer's own")
            label = answer.decision
        elif label is None or label == answer.decision:
            raise FeedbackInvalid("disagree needs the corrected label, a class other than the answer's")
        replaced = session.execute(update(Feedback).where(
            Feedback.prediction_id == answer.id, Feedback.clinician == clinician, Feedback.current.is_(True))
            .values(current=False)).rowcount
        item = Feedback(prediction_id=answer.id, clinician=clinician, verdict=verdict, label=label,
                        reason=(reason or "").strip() or None, at=now(), current=True)
        session.add(item)
        session.add(ChangeLog(event="feedback", account=clinician, at=item.at, details={
            "prediction_id": answer.id, "verdict": verdict, "label": label, "replaced": int(replaced or 0)}))
    return {"prediction_id": item.prediction_id, "verdict": verdict, "label": label, "clinician": clinician,
            "replaced": bool(replaced)}


def feedback_table(monitor: object, current_only: bool = True) -> pd.DataFrame:
    """Feedback joined with the answer it judges (decision, time of the answer)."""
    query = select(Feedback.prediction_id, Feedback.clinician, Feedback.verdict, Feedback.label, Feedback.reason,
                   Feedback.at, Feedback.current, PredictionRecord.decision, PredictionRecord.at.label("answered_at"),
                   PredictionRecord.model_sha256).join(PredictionRecord, PredictionRecord.id == Feedback.prediction_id)
    if current_only:
        query = query.where(Feedback.current.is_(True))
    with monitor.engine.connect() as connection:
        return pd.read_sql(query.order_by(Feedback.id), connection)


def feedback_labels(monitor: object) -> pd.DataFrame:
    """One confirmed label per answer from feedback (the latest clinician's), as ``prediction_id,label,source``."""
    table = feedback_table(monitor)
    if table.empty:
        return pd.DataFrame(columns=["prediction_id", "label", "source"])
    latest = table.drop_duplicates("prediction_id", keep="last")
    return latest[["prediction_id", "label"]].assign(source=FEEDBACK_SOURCE).reset_index(drop=True)


def outcome_labels(monitor: object) -> pd.DataFrame:
    with monitor.engine.connect() as connection:
        return pd.read_sql(select(Outcome.prediction_id, Outcome.label, Outcome.source), connection)


def team_figures(monitor: object, freq: str = "W") -> dict:
    """Override rates (overall, per clinician, per period) and who was right when model and clinician disagreed."""
    table = feedback_table(monitor)
    if table.empty:
        return {"n_feedback": 0, "override": wilson(0, 0), "by_clinician": {}, "over_time": [], "disagreements": None}
    overrides = table["verdict"] == "disagree"
    by_clinician = {name: wilson(int((group["verdict"] == "disagree").sum()), len(group))
                    for name, group in table.groupby("clinician")}
    periods = pd.to_datetime(table["answered_at"]).dt.to_period(freq)
    over_time = [{"period": str(period), **wilson(int((group["verdict"] == "disagree").sum()), len(group))}
                 for period, group in table.groupby(periods)]
    return {"n_feedback": int(len(table)), "override": wilson(int(overrides.sum()), len(table)),
            "by_clinician": by_clinician, "over_time": over_time,
            "disagreements": who_was_right(table[overrides], outcome_labels(monitor))}


def who_was_right(disagreed: pd.DataFrame, outcomes: pd.DataFrame) -> dict:
    """Among disagreements with an outcome (pathology before report before a clinician's outcome): the shares where
    the model was right, the clinician was right, or neither, each with a Wilson CI."""
    from proctovision.monitoring.outcomes import PRECEDENCE

    if outcomes.empty or disagreed.empty:
        return {"n": 0, "model_right": wilson(0, 0), "clinician_right": wilson(0, 0), "neither": wilson(0, 0)}
    ranked = outcomes.assign(rank=outcomes["source"].map(PRECEDENCE).fillna(9)).sort_values("rank")
    truth = ranked.drop_duplicates("prediction_id").set_index("prediction_id")["label"]
    judged = disagreed[disagreed["prediction_id"].isin(truth.index)]
    actual = truth.loc[judged["prediction_id"]].to_numpy()
    model_right = int((judged["decision"].to_numpy() == actual).sum())
    clinician_right = int((judged["label"].to_numpy() == actual).sum())
    n = len(judged)
    return {"n": int(n), "model_right": wilson(model_right, n), "clinician_right": wilson(clinician_right, n),
            "neither": wilson(n - model_right - clinician_right, n)}


def confirmed_cases(monitor: object) -> pd.DataFrame:
    """Every confirmed label, one per answer: outcomes (pathology before report before clinician) and then feedback;
    both stay stored, the higher source decides."""
    from proctovision.monitoring.outcomes import confirmed_labels

    both = pd.concat([confirmed_labels(monitor), feedback_labels(monitor)], ignore_index=True)
    if both.empty:
        return both
    return both.drop_duplicates("prediction_id", keep="first").reset_index(drop=True)
