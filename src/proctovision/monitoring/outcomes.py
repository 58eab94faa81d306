"""Confirmed labels that arrive after the answer: ``prediction_id,label[,source]`` (source: pathology, report or
clinician; ``report`` when the column is absent). Unknown ids, labels outside the task's classes and unknown
sources are listed by row and skipped; the rest go in. Importing the same file twice changes nothing; a new label
for the same prediction and source replaces the old one (and is counted as changed)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select

from proctovision.monitoring.store import OUTCOME_SOURCES, MonitorError, Outcome, PredictionRecord, now

DEFAULT_SOURCE = "report"
PRECEDENCE = {"pathology": 0, "report": 1, "clinician": 2}  # a pathology result outranks a report, then a clinician


def read_outcomes(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise MonitorError(f"{path}: cannot be read as CSV ({error})") from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in ("prediction_id", "label") if column not in table.columns]
    if missing:
        raise MonitorError(f"{path}: missing column(s) {', '.join(missing)}; the columns are "
                           "prediction_id,label[,source]; nothing was imported")
    if "source" not in table.columns:
        table["source"] = DEFAULT_SOURCE
    return table


def import_outcomes(monitor: object, path: str | Path) -> dict:
    """Add the file's outcomes; returns counts and the skipped rows as ``(row, prediction_id, reason)``."""
    path = Path(path)
    table = read_outcomes(path)
    skipped: list[tuple[int, str, str]] = []
    added = unchanged = changed = 0
    with monitor.sessions.begin() as session:
        wanted = set(table["prediction_id"].str.strip())
        known = set(session.scalars(select(PredictionRecord.id).where(PredictionRecord.id.in_(wanted))))
        existing = {(item.prediction_id, item.source): item for item in session.scalars(
            select(Outcome).where(Outcome.prediction_id.in_(known)))}
        for number, row in enumerate(table.itertuples(index=False), start=2):
            ident, label = str(row.prediction_id).strip(), str(row.label).strip()
            source = str(row.source).strip().lower() or DEFAULT_SOURCE
            reason = ("unknown prediction id" if ident not in known else
                      f"label {label!r} is not a class of the task ({', '.join(monitor.classes)})"
                      if label not in monitor.classes else
                      f"source {source!r} is not one of {', '.join(OUTCOME_SOURCES)}"
                      if source not in OUTCOME_SOURCES else None)
            if reason:
                skipped.append((number, ident, reason))
                continue
            before = existing.get((ident, source))
            if before is None:
                existing[(ident, source)] = Outcome(prediction_id=ident, label=label, source=source, at=now())
                session.add(existing[(ident, source)])
                added += 1
            elif before.label == label:
                unchanged += 1
            else:
                before.label, before.at = label, now()
                changed += 1
    return {"file": str(path), "rows": int(len(table)), "added": added, "unchanged": unchanged, "changed": changed,
            "skipped": skipped}


def confirmed_labels(monitor: object) -> pd.DataFrame:
    """One confirmed label per prediction (pathology before report before clinician): prediction_id, label,
    source."""
    with monitor.engine.connect() as connection:
        table = pd.read_sql(select(Outcome.prediction_id, Outcome.label, Outcome.source), connection)
    if table.empty:
        return table
    table["rank"] = table["source"].map(PRECEDENCE).fillna(9)
    return table.sort_values("rank").drop_duplicates("prediction_id").drop(columns="rank").reset_index(drop=True)
