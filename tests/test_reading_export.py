"""The reading room's exports and the commands that write or describe them: cases without consensus stay out
(and are counted with the reason), every file written is named, and `reading status` shows the study design."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from reading_fixtures import PASSWORD, make_study, read_all, tiny_manifest
from sqlalchemy import select
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.reading.db import Case
from proctovision.reading.project import add_user, init_project


def _disagreeing_labelling(tmp_path: Path, n: int = 8, flipped: int = 5):
    manifest = tiny_manifest(tmp_path / "data", n=n)
    project = init_project(tmp_path / "label", manifest, "hemorrhoid", "labelling", consensus="adjudication")
    for name in ("e1", "e2"):
        add_user(project, name, "reader", PASSWORD)
    with project.session() as session:
        truth = {case.id: case.label for case in session.scalars(select(Case))}
    flip = set(sorted(truth)[:flipped])
    other = {"normal": "hemorrhoid", "hemorrhoid": "normal"}
    read_all(project, "e1", "labelling", lambda case: truth[case])
    read_all(project, "e2", "labelling", lambda case: other[truth[case]] if case in flip else truth[case])
    return project


def test_labelling_export_leaves_out_cases_awaiting_adjudication_and_says_how_many_and_why(tmp_path: Path):
    project = _disagreeing_labelling(tmp_path)
    folder = project.root
    project.close()
    out = tmp_path / "consensus.csv"
    result = CliRunner().invoke(app, ["reading", "export", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 3 and (frame["label"] != "").all()
    assert "left out 5 case(s) without consensus: 5 awaiting adjudication" in result.output
    assert f"wrote 3 rows to {out}" in result.output


def test_study_export_prints_the_repeats_file(tmp_path: Path):
    project = make_study(tmp_path, repeats=1)
    read_all(project, "alice", "unaided")
    folder = project.root
    project.close()
    out = tmp_path / "readers.csv"
    result = CliRunner().invoke(app, ["reading", "export", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    repeats = out.with_suffix(".repeats.csv")
    assert repeats.is_file() and str(repeats) in result.output


def test_status_shows_the_order_the_washout_and_the_consensus_rule(tmp_path: Path):
    project = make_study(tmp_path, arm_order="counterbalanced", washout_days=14)
    folder = project.root
    project.close()
    result = CliRunner().invoke(app, ["reading", "status", str(folder)])
    assert result.exit_code == 0, result.output
    assert "arm order: counterbalanced" in result.output and "washout: 14 day(s)" in result.output
    labelling = _disagreeing_labelling(tmp_path / "l")
    root = labelling.root
    labelling.close()
    result = CliRunner().invoke(app, ["reading", "status", str(root)])
    assert result.exit_code == 0 and "consensus rule: adjudication" in result.output
