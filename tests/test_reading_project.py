"""Reading projects: init, opaque ids, seeded orders, repeats, washout, consensus, exports that split/compare read."""
from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from reading_fixtures import PASSWORD, make_study, read_all, tiny_manifest
from sqlalchemy import select, text
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.reading import assignments, consensus
from proctovision.reading.db import Answer, Assignment, AuditEvent, Case, Item, ReadingError, User, current_revision
from proctovision.reading.export import export
from proctovision.reading.project import add_user, init_project, open_project, status


def truth_of(project) -> dict[str, str]:
    with project.session() as session:
        return {case.id: case.label for case in session.scalars(select(Case))}


def test_init_makes_opaque_ids_full_images_and_a_wal_database(tmp_path: Path):
    project = make_study(tmp_path)
    with project.session() as session:
        cases = session.scalars(select(Case)).all()
        assert len(cases) == 8 and current_revision(project.engine) == "0004"
        for case in cases:
            assert "SECRETFILE" not in case.id and "PATIENT" not in case.id and len(case.id) >= 16
            assert (project.root / "images" / f"{case.id}.png").is_file()
        assert len({case.id for case in cases}) == 8
    with sqlite3.connect(project.root / "reading.sqlite") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ReadingError, match="already"):
        init_project(project.root, tmp_path / "data" / "manifest.csv", "hemorrhoid", "study")


def test_aided_arm_needs_a_model_and_study_needs_reference_labels(tmp_path: Path):
    manifest = tiny_manifest(tmp_path / "data")
    with pytest.raises(ReadingError, match="--model"):
        init_project(tmp_path / "p1", manifest, "hemorrhoid", "study", arms=("unaided", "aided"))
    bad = tmp_path / "data" / "bad.csv"
    bad.write_text(manifest.read_text().replace(",normal,", ",nonsense,"))
    with pytest.raises(ReadingError, match="reference label"):
        init_project(tmp_path / "p2", bad, "hemorrhoid", "study")


def test_a_labelling_project_refuses_arms(tmp_path: Path):
    manifest = tiny_manifest(tmp_path / "data")
    with pytest.raises(ReadingError, match="--arms is for reader studies"):
        init_project(tmp_path / "l1", manifest, "hemorrhoid", "labelling", arms=("unaided", "aided"))
    result = CliRunner().invoke(app, ["reading", "init", str(tmp_path / "l2"), "--manifest", str(manifest),
                                      "--task", "hemorrhoid", "--kind", "labelling", "--arms", "unaided"])
    assert result.exit_code != 0 and "no arms" in str(result.exception)
    assert not (tmp_path / "l1" / "reading.json").exists() and not (tmp_path / "l2" / "reading.json").exists()


def test_orders_are_seeded_per_reader_recorded_and_reproducible(tmp_path: Path):
    project = make_study(tmp_path, n=12, seed=3)
    with project.session() as session:
        study = project.study(session)
        orders = {}
        for name in ("alice", "bob"):
            user = session.scalar(select(User).where(User.name == name))
            assignment, = assignments.ensure_assignments(session, study, user)
            items = session.scalars(select(Item).where(Item.assignment_id == assignment.id)
                                    .order_by(Item.position)).all()
            orders[name] = [item.case_id for item in items]
            assert [case for case, _ in assignments._order(session, study, assignment.seed)] == orders[name]
        assert sorted(orders["alice"]) == sorted(orders["bob"]) and orders["alice"] != orders["bob"]
        admin = session.scalar(select(User).where(User.name == "admin"))
        assert assignments.ensure_assignments(session, study, admin) == []


def test_repeats_come_back_unannounced_later_and_stay_out_of_readers_csv(tmp_path: Path):
    project = make_study(tmp_path, n=8, repeats=2)
    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == "alice"))
        assignment, = assignments.ensure_assignments(session, study, user)
        items = session.scalars(select(Item).where(Item.assignment_id == assignment.id)
                                .order_by(Item.position)).all()
        assert len(items) == 10
        repeated = [item for item in items if item.repeat]
        assert len(repeated) == 2
        for item in repeated:
            first = next(other for other in items if other.case_id == item.case_id and not other.repeat)
            assert item.position > first.position + 1
    assert read_all(project, "alice", "unaided") == 10
    shown = None
    with project.session() as session:
        shown = assignments.next_case(session, project.study(session),
                                      session.scalar(select(User).where(User.name == "alice")), "unaided")
    assert shown is None
    info = export(project, tmp_path / "out" / "readers.csv")
    readers = pd.read_csv(info["file"])
    assert len(readers) == 8 and not readers.duplicated(["path", "reader"]).any()
    assert len(pd.read_csv(info["repeats_file"])) == 2


def test_answers_cannot_change_unless_the_study_allows_it(tmp_path: Path):
    for allow in (False, True):
        project = make_study(tmp_path / str(allow), allow_changes=allow)
        read_all(project, "alice", "unaided")
        with project.session() as session:
            study, user = project.study(session), session.scalar(select(User).where(User.name == "alice"))
            item = session.scalars(select(Item).join(Assignment).where(Assignment.user_id == user.id)).first()
            if allow:
                assert assignments.answer(session, study, user, item.token, "unaided", "hemorrhoid", 60)["changed"]
                events = session.scalars(select(AuditEvent).where(AuditEvent.case_id == item.case_id)).all()
                assert [event.event for event in events] == ["answer", "change"]
            else:
                with pytest.raises(assignments.Conflict):
                    assignments.answer(session, study, user, item.token, "unaided", "hemorrhoid", 60)


def test_audit_table_is_append_only_in_the_database(tmp_path: Path):
    project = make_study(tmp_path)
    read_all(project, "alice", "unaided")
    with project.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_events")).scalar() == 8
        for statement in ("UPDATE audit_events SET event = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(Exception, match="append-only"):
                connection.execute(text(statement))
            connection.rollback()
        assert connection.execute(text("SELECT count(*) FROM audit_events WHERE event = 'answer'")).scalar() == 8


def test_a_case_is_answerable_only_once_its_image_is_served_and_timed_from_then(tmp_path: Path):
    project = make_study(tmp_path)
    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == "alice"))
        shown = assignments.next_case(session, study, user, "unaided")
        item = session.scalar(select(Item).where(Item.token == shown["case"]))
        other = session.scalar(select(Item).where(Item.assignment_id == item.assignment_id, Item.id != item.id))
        with pytest.raises(assignments.Conflict, match="not been shown"):
            assignments.answer(session, study, user, other.token, "unaided", "normal", 50)
        with pytest.raises(assignments.Conflict, match="not been served"):
            assignments.answer(session, study, user, shown["case"], "unaided", "normal", 50)
        assert assignments.open_image(session, study, user, other.token) is None  # no look ahead
        assert assignments.open_image(session, study, user, shown["case"]) == item.case_id
        item.shown_at -= dt.timedelta(seconds=100)  # served 100 s ago, 30 s of it hidden, 20 s idle
        session.commit()
        assignments.open_image(session, study, user, shown["case"])  # served again (another window): no restart
        result = assignments.answer(session, study, user, shown["case"], "unaided", "normal", 50, 30, 20)
        assert 49 <= result["reading_time_s"] <= 52


def test_washout_keeps_the_second_arm_closed(tmp_path: Path, run_dir: Path):
    project = make_study(tmp_path, arms=("unaided", "aided"), model=run_dir, washout_days=14,
                         arm_order="counterbalanced")
    with project.session() as session:
        study = project.study(session)
        first = {name: assignments.ensure_assignments(session, study, session.scalar(
            select(User).where(User.name == name)))[0].arm for name in ("alice", "bob")}
    assert first == {"alice": "unaided", "bob": "aided"}
    read_all(project, "alice", "unaided")
    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == "alice"))
        with pytest.raises(assignments.Conflict, match="washout"):
            assignments.next_case(session, study, user, "aided")
        assert [line["open"] for line in assignments.summary(session, study, user)] == [True, False]
        done = session.scalar(select(Assignment).where(Assignment.user_id == user.id, Assignment.sequence == 0))
        done.finished_at -= dt.timedelta(days=15)
        session.commit()
        shown = assignments.next_case(session, study, user, "aided")
        assert set(shown["model"]["probabilities"]) == {"normal", "hemorrhoid"} and shown["model"]["version"]


def test_consensus_rules():
    assert consensus.decide(["a", "a", "a"], 3, "unanimous", None) == ("a", "unanimous")
    assert consensus.decide(["a", "a", "b"], 3, "unanimous", None)[0] is None
    assert consensus.decide(["a", "a", "b"], 3, "majority", None) == ("a", "majority")
    assert consensus.decide(["a", "b"], 2, "majority", None)[0] is None
    assert consensus.decide(["a", "b"], 2, "adjudication", None) == (None, "awaiting adjudication")
    assert consensus.decide(["a", "b"], 2, "adjudication", "b") == ("b", "adjudicated")
    assert consensus.decide(["a"], 2, "majority", None) == (None, "pending")


def test_labelling_with_adjudication_exports_a_manifest_that_split_accepts(tmp_path: Path):
    manifest = tiny_manifest(tmp_path / "data", n=20)
    project = init_project(tmp_path / "label", manifest, "hemorrhoid", "labelling", consensus="adjudication")
    for name in ("e1", "e2", "e3"):
        add_user(project, name, "reader", PASSWORD, "senior")
    add_user(project, "judge", "adjudicator", PASSWORD)
    truth = truth_of(project)
    flip = sorted(truth)[:3]  # e3 disagrees on three cases
    other = {"normal": "hemorrhoid", "hemorrhoid": "normal"}
    read_all(project, "e1", "labelling", lambda case: truth[case])
    read_all(project, "e2", "labelling", lambda case: truth[case])
    read_all(project, "e3", "labelling", lambda case: other[truth[case]] if case in flip else truth[case])
    with project.session() as session:
        study, judge = project.study(session), session.scalar(select(User).where(User.name == "judge"))
        queue = consensus.adjudication_queue(session, study)
        assert sorted(queue) == flip
        shown = consensus.next_adjudication(session, study)
        assert sorted(entry["label"] for entry in shown["labels"]).count(truth[shown["case"]]) == 2
        for case in flip:
            consensus.adjudicate(session, study, judge, case, truth[case])
        assert consensus.adjudication_queue(session, study) == []
        agreement = consensus.agreement_so_far(session, study)
        assert 0.5 < agreement["conditions"]["labelling"]["fleiss"]["kappa"] < 1
    out = tmp_path / "export" / "consensus.csv"
    export(project, out)
    frame = pd.read_csv(out)
    assert list(frame.columns[:3]) == ["path", "label", "patient_id"]
    assert {"label_e1", "label_e2", "label_e3", "consensus", "consensus_rule"} <= set(frame.columns)
    assert (frame["consensus"] == "adjudicated").sum() == 3 and len(frame) == 20
    result = CliRunner().invoke(app, ["split", str(out), "--val", "0.2", "--test", "0.2", "--out",
                                      str(tmp_path / "export" / "split.csv")])
    assert result.exit_code == 0, result.output
    split = pd.read_csv(tmp_path / "export" / "split.csv")
    assert set(split["split"]) == {"train", "val", "test"} and (tmp_path / "export" / split["path"][0]).is_file()


def test_labelling_with_k_readers_per_case_shares_the_cases(tmp_path: Path):
    manifest = tiny_manifest(tmp_path / "data", n=6)
    project = init_project(tmp_path / "label", manifest, "hemorrhoid", "labelling", readers_per_case=2)
    for name in ("e1", "e2", "e3"):
        add_user(project, name, "reader", PASSWORD)
    for name in ("e1", "e2", "e3"):
        read_all(project, name, "labelling")
    with project.session() as session:
        assert set(consensus.assigned_readers(session).values()) == {2}


def test_study_export_feeds_compare_with_mrmc_and_agreement(tmp_path: Path):
    project = make_study(tmp_path, n=16, readers=(("alice", "senior"), ("bob", "junior"), ("carol", "junior")))
    truth = truth_of(project)
    rng = random.Random(0)
    other = {"normal": "hemorrhoid", "hemorrhoid": "normal"}
    for name, accuracy in (("alice", 0.9), ("bob", 0.75), ("carol", 0.8)):
        read_all(project, name, "unaided", lambda case: truth[case] if rng.random() < accuracy else other[truth[case]])
    readers_csv = tmp_path / "out" / "readers.csv"
    export(project, readers_csv)
    frame = pd.read_csv(readers_csv)
    assert {"reader", "experience", "condition", "label", "score", "reading_time_s", "case_time_s"} <= set(frame)
    assert not frame.astype(str).apply(lambda column: column.str.contains("PATIENT")).any().any()
    from proctovision.workflows.compare import compare
    from proctovision.evaluation.readers import read_readers

    readings, times = read_readers(readers_csv, ("normal", "hemorrhoid"))
    assert len(readings) == 48 and set(times) == {"alice (unaided)", "bob (unaided)", "carol (unaided)"}
    manifest = tmp_path / "data" / "manifest.csv"
    truth_rows = pd.read_csv(manifest)
    predictions = truth_rows.assign(predicted=truth_rows["label"],
                                    prob_hemorrhoid=(truth_rows["label"] == "hemorrhoid") * 0.8 + 0.1)
    predictions["prob_normal"] = 1 - predictions["prob_hemorrhoid"]
    predictions.to_csv(tmp_path / "data" / "predictions.csv", index=False)
    result = compare([tmp_path / "data" / "predictions.csv"], tmp_path / "cmp", readers=readers_csv, truth=manifest,
                     n_resamples=50)
    assert result["n_images"] == 16 and result["mrmc"] and result["mrmc"]["analyses"]
    runner = CliRunner()
    outcome = runner.invoke(app, ["agreement", str(readers_csv), "--out", str(tmp_path / "agr")])
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "agr" / "agreement.json").is_file()


def test_cli_init_user_status_export(tmp_path: Path):
    manifest = tiny_manifest(tmp_path / "data")
    runner = CliRunner()
    folder = tmp_path / "cli-project"
    result = runner.invoke(app, ["reading", "init", str(folder), "--manifest", str(manifest), "--split", "test",
                                 "--task", "hemorrhoid", "--kind", "study", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["reading", "user", str(folder), "alice", "--role", "reader", "--experience",
                                 "senior"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    result = runner.invoke(app, ["reading", "user", str(folder), "bob", "--role", "reader", "--password", "x"])
    assert result.exit_code != 0  # no password flag exists
    project = open_project(folder)
    with project.session() as session:
        stored = session.scalar(select(User).where(User.name == "alice")).password_hash
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
    read_all(project, "alice", "unaided")
    assert status(project)["progress"][0]["done"] == 9
    result = runner.invoke(app, ["reading", "status", str(folder)])
    assert result.exit_code == 0 and "alice [unaided]: 9/9" in result.output
    result = runner.invoke(app, ["reading", "export", str(folder), "--out", str(tmp_path / "readers.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "readers.csv")) == 8


def test_a_case_shown_again_is_timed_from_the_new_showing_and_reports_cannot_make_time_negative(tmp_path: Path):
    project = make_study(tmp_path)
    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == "alice"))
        first = assignments.next_case(session, study, user, "unaided")
        case_id = assignments.open_image(session, study, user, first["case"])
        item = session.scalar(select(Item).where(Item.token == first["case"]))
        item.shown_at -= dt.timedelta(seconds=40)  # the tab was closed 40 s after showing the case
        session.commit()
        again = assignments.next_case(session, study, user, "unaided")
        assert again["case"] == first["case"] and again["position"] == 1
        assignments.open_image(session, study, user, again["case"])
        with pytest.raises(ReadingError, match="longer than the showing"):  # reports beyond the showing
            assignments.answer(session, study, user, first["case"], "unaided", "normal", 50, 1e6, 1e6)
        session.rollback()
        result = assignments.answer(session, study, user, first["case"], "unaided", "normal", 50, 0.5, 0.5)
        assert result["reading_time_s"] >= 0  # hidden/idle reports never make time negative
        answer = session.scalar(select(Answer).where(Answer.case_id == case_id))
        assert 40 <= answer.interrupted_s < 45 and answer.hidden_s < 5


def test_labelling_never_shows_the_model_and_can_put_the_least_sure_cases_first(tmp_path: Path, run_dir: Path):
    manifest = tiny_manifest(tmp_path / "data", n=8)
    project = init_project(tmp_path / "label", manifest, "hemorrhoid", "labelling", model=run_dir,
                           case_order="uncertain-first")
    add_user(project, "e1", "reader", PASSWORD)
    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == "e1"))
        sure = {case.id: max(case.model_probabilities.values()) for case in session.scalars(select(Case))}
        assignment, = assignments.ensure_assignments(session, study, user)
        order = [item.case_id for item in session.scalars(select(Item).where(Item.assignment_id == assignment.id)
                                                          .order_by(Item.position))]
        assert [sure[case] for case in order] == sorted(sure.values())
        shown = assignments.next_case(session, study, user, "labelling")
        assert "model" not in shown
        assert assignments.open_model_output(session, study, user, shown["case"]) is None


def test_reading_commands_have_help_with_an_example_and_errors_are_one_line(tmp_path: Path):
    import os
    import subprocess
    import sys

    for command in ("init", "user", "serve", "status", "export"):
        result = CliRunner().invoke(app, ["reading", command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    result = subprocess.run([sys.executable, "-m", "proctovision", "reading", "status", str(tmp_path / "nothing")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and result.stderr.strip().startswith("error:")
    assert "not a reading project" in result.stderr and "Traceback" not in result.stderr


def test_an_export_before_any_answer_has_the_header_and_no_rows(tmp_path: Path):
    project = make_study(tmp_path)
    info = export(project, tmp_path / "readers.csv")
    frame = pd.read_csv(info["file"])
    assert len(frame) == 0 and {"path", "reader", "label", "condition"} <= set(frame.columns)
