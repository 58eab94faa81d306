"""The reading room's JSON API on SQLite and PostgreSQL: reading, aided arm, washout, admin, adjudication."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from reading_fixtures import (PASSWORD, database, make_study, postgres, read, signed_in_client,  # noqa: F401
                              tiny_manifest)
from sqlalchemy import select

from proctovision.reading.api import create_app
from proctovision.reading.db import Answer, Assignment, AuditEvent
from proctovision.reading.project import add_user, init_project


def test_reader_reads_every_case_and_each_answer_is_committed_before_201(tmp_path: Path, database):
    project = make_study(tmp_path, db=database, repeats=1)
    alice = signed_in_client(create_app(project=project), "alice")
    work = alice.get("/api/assignments").json()
    assert work["assignments"] == [{"arm": "unaided", "kind": "study", "done": 0, "total": 9, "open": True,
                                    "finished": False, "opens_at": None}]
    seen = []
    while (shown := alice.get("/api/assignments/unaided/next")).status_code == 200:
        case = shown.json()
        assert case["position"] == len(seen) + 1 and case["total"] == 9 and "model" not in case
        assert alice.get(case["image"] if case["image"].startswith("/") else "/" + case["image"]).status_code == 200
        response = alice.post(f"/api/cases/{case['case']}/answers",
                              json={"arm": "unaided", "label": "normal", "confidence": 70})
        assert response.status_code == 201, response.text
        with project.session() as session:  # another connection sees it at once: committed before the 201
            assert session.query(Answer).count() == len(seen) + 1
        seen.append(case["case"])
    assert shown.status_code == 204 and len(seen) == 9 and len(set(seen)) == 9  # a repeat has its own id
    assert alice.post(f"/api/cases/{seen[0]}/answers",
                      json={"arm": "unaided", "label": "normal", "confidence": 70}).status_code == 409
    assert alice.get("/api/assignments").json()["assignments"][0]["finished"]


def test_reader_resumes_at_the_next_unanswered_case_after_signing_out(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    app = create_app(project=project)
    alice = signed_in_client(app, "alice")
    for _ in range(3):
        read(alice, "unaided")
    pending = alice.get("/api/assignments/unaided/next").json()
    assert alice.delete("/api/session").status_code == 204
    again = signed_in_client(app, "alice").get("/api/assignments/unaided/next").json()
    assert again["case"] == pending["case"] and again["position"] == 4


def test_aided_arm_shows_the_model_and_audits_what_it_showed(tmp_path: Path, run_dir: Path, database):
    project = make_study(tmp_path, db=database, arms=("unaided", "aided"), model=run_dir, washout_days=7)
    alice = signed_in_client(create_app(project=project), "alice")
    assert alice.get("/api/assignments/aided/next").status_code == 409  # washout: unaided first
    while (shown := read(alice, "unaided", confidence=60))[1] is not None:
        assert "model" not in shown[0].json() and shown[1].status_code == 201
    arms = alice.get("/api/assignments").json()["assignments"]
    assert arms[1]["arm"] == "aided" and not arms[1]["open"] and arms[1]["opens_at"]
    assert alice.get("/api/assignments/aided/next").status_code == 409
    with project.session() as session:
        first = session.scalar(select(Assignment).where(Assignment.arm == "unaided"))
        first.finished_at -= dt.timedelta(days=8)
        session.commit()
    case = alice.get("/api/assignments/aided/next").json()
    model = case["model"]
    assert abs(sum(model["probabilities"].values()) - 1) < 1e-3 and model["version"] and model["cam"]
    assert alice.get("/" + case["image"]).status_code == 200
    cam = alice.get("/" + model["cam"])
    assert cam.status_code == 200 and cam.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert alice.post(f"/api/cases/{case['case']}/answers",
                      json={"arm": "aided", "label": "hemorrhoid", "confidence": 90}).status_code == 201
    with project.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.arm == "aided")).one()
        assert event.payload["cam_opened"] is True and event.payload["model_probabilities"] == model["probabilities"]
        assert event.payload["model_version"] == model["version"]
        unaided = session.scalars(select(AuditEvent).where(AuditEvent.arm == "unaided")).first()
        assert "model_probabilities" not in unaided.payload


def test_admin_sees_progress_and_agreement_and_exports(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    app = create_app(project=project)
    for name in ("alice", "bob"):
        reader = signed_in_client(app, name)
        while read(reader, "unaided", "normal" if name == "alice" else "hemorrhoid")[1] is not None:
            pass
    admin = signed_in_client(app, "admin")
    info = admin.get("/api/admin/progress").json()
    assert [(line["reader"], line["done"]) for line in info["progress"]] == [("alice", 8), ("bob", 8)]
    assert "unaided" in info["agreement"]["conditions"]
    response = admin.post("/api/admin/export")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    exported = list((project.root / "exports").glob("readers-*.csv"))
    assert len(exported) == 1 and len(pd.read_csv(exported[0])) == 16
    assert "reader,experience" in response.text or "reader" in response.text.splitlines()[0]


def test_adjudicator_sees_the_experts_labels_and_decides(tmp_path: Path, database):
    manifest = tiny_manifest(tmp_path / "data", n=4)
    project = init_project(tmp_path / "label", manifest, "hemorrhoid", "labelling", consensus="adjudication",
                           db=database)
    for name, role in (("expert_one", "reader"), ("expert_two", "reader"), ("judge", "adjudicator")):
        add_user(project, name, role, PASSWORD)
    app = create_app(project=project)
    for name, label in (("expert_one", "normal"), ("expert_two", "hemorrhoid")):
        expert = signed_in_client(app, name)
        assert expert.get("/api/adjudication/next").status_code == 403
        while read(expert, "labelling", label)[1] is not None:
            pass
    judge = signed_in_client(app, "judge")
    decided = 0
    while (shown := judge.get("/api/adjudication/next")).status_code == 200:
        case = shown.json()
        assert sorted(entry["label"] for entry in case["labels"]) == ["hemorrhoid", "normal"]
        assert "expert_one" not in shown.text and "expert_two" not in shown.text
        assert judge.get("/" + case["image"]).status_code == 200
        assert judge.post(f"/api/adjudication/{case['case']}", json={"label": "normal"}).status_code == 201
        decided += 1
    assert decided == 4
    admin_free = judge.get("/api/admin/progress")
    assert admin_free.status_code == 403


def test_docs_describe_the_api(tmp_path: Path):
    project = make_study(tmp_path)
    from fastapi.testclient import TestClient

    client = TestClient(create_app(project=project))
    schema = client.get("/openapi.json").json()
    for path in ("/api/session", "/api/assignments", "/api/assignments/{arm}/next", "/api/cases/{case}/answers",
                 "/api/cases/{case}/image", "/api/admin/progress"):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200
