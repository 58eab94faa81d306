"""Exports are the files the rest of the tool reads (each written atomically, paths relative to the file).

- labelling: a manifest (``path,label,patient_id`` and the source's other columns, ``frame`` where present) with
  the consensus label, each expert's label (``label_<expert>``), the rule and how consensus was reached, ready for
  ``split``. Cases without consensus (pending, no majority, awaiting adjudication) are left out and counted
  per reason.
- study: a readers.csv for ``compare``/``agreement``: path, frame, case, reader, experience, condition (the arm),
  label, confidence (0-100), score (binary tasks: the reader's rating of the positive class, 0-100),
  case_time_s (this case's reading time), reading_time_s (the reader's total in that arm, as ``compare`` reads it),
  hidden_s, idle_s, interrupted_s. Unannounced repeats go to ``<name>.repeats.csv`` beside it, each with the
  first reading's label, so each reader's own consistency can be measured; readers.csv holds first readings only.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from proctovision.core import fileio
from proctovision.reading.consensus import consensus_table, first_readings
from proctovision.reading.db import Answer, Case, Item, User
from proctovision.reading.project import Project


def export(project: Project, out: str | Path) -> dict:
    """Write the project's export to ``out``; returns what was written and counted."""
    out = Path(out)
    with project.session() as session:
        study = project.study(session)
        cases = {case.id: case for case in session.scalars(select(Case))}
        if study.kind == "labelling":
            frame, info = _labelling(session, study, cases, out)
        else:
            frame, info = _study(session, study, cases, out)
            repeats = _repeats(session, cases, out)
            if len(repeats):
                info["repeats_file"] = str(fileio.write_csv(out.with_suffix(".repeats.csv"), repeats))
    fileio.write_csv(out, frame)
    return {"file": str(out), "rows": len(frame), **info}


def _relative(path: str, out: Path) -> str:
    return os.path.relpath(path, out.resolve().parent)


def _labelling(session, study, cases: dict[str, Case], out: Path) -> tuple[pd.DataFrame, dict]:
    table = consensus_table(session, study)
    experts = sorted({name for labels in table["labels"] for name in labels})
    rows, left_out = [], {}
    for line in table.itertuples(index=False):
        if pd.isna(line.consensus) or not str(line.consensus):  # pandas holds a missing consensus as NaN
            left_out[line.method] = left_out.get(line.method, 0) + 1
            continue
        case = cases[line.case]
        row = {"path": _relative(case.path, out), "label": line.consensus, "patient_id": case.patient_id}
        if case.frame:
            row["frame"] = case.frame
        row.update(case.extra)
        if case.label:
            row["source_label"] = case.label
        row.update({f"label_{name}": line.labels.get(name, "") for name in experts})
        row.update(consensus_rule=study.consensus, consensus=line.method, n_experts=len(line.labels),
                   case=line.case)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["path", "label", "patient_id"]), {
        "left_out": left_out, "experts": experts}


def _study(session, study, cases: dict[str, Case], out: Path) -> tuple[pd.DataFrame, dict]:
    readings = first_readings(session)
    positive = study.classes[1] if len(study.classes) == 2 else None
    rows = []
    totals = readings.groupby(["reader", "arm"])["reading_time_s"].sum().to_dict() if len(readings) else {}
    for line in readings.itertuples(index=False):
        case = cases[line.case]
        sure = line.confidence / 2
        row = {"path": _relative(case.path, out), "frame": case.frame, "case": line.case, "reader": line.reader,
               "experience": line.experience, "condition": line.arm, "label": line.label,
               "confidence": line.confidence,
               "score": (50 + sure if line.label == positive else 50 - sure) if positive else "",
               "case_time_s": line.reading_time_s,
               "reading_time_s": round(totals[(line.reader, line.arm)], 3),
               "hidden_s": line.hidden_s, "idle_s": line.idle_s, "interrupted_s": line.interrupted_s}
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["path", "case", "reader", "experience", "condition",
                                                         "label", "confidence", "score", "reading_time_s"])
    if len(frame) and not frame["frame"].astype(str).str.len().any():
        frame = frame.drop(columns="frame")
    return frame, {"readers": sorted(set(readings["reader"])), "arms": sorted(set(readings["arm"]))}


def _repeats(session, cases: dict[str, Case], out: Path) -> pd.DataFrame:
    first = {(row.case, row.reader, row.arm): row.label for row in first_readings(session).itertuples(index=False)}
    query = (select(Answer, User.name).join(Item, Answer.item_id == Item.id).join(User, Answer.user_id == User.id)
             .where(Item.repeat.is_(True)).order_by(Answer.id))
    rows = [{"path": _relative(cases[row.case_id].path, out), "case": row.case_id, "reader": name,
             "condition": row.arm, "label": row.label, "first_label": first.get((row.case_id, name, row.arm), ""),
             "confidence": row.confidence, "case_time_s": row.reading_time_s}
            for row, name in session.execute(query)]
    return pd.DataFrame(rows)
