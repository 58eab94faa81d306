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


def test_non_finite_or_absurd_hidden_and_idle_times_get_422(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    alice = signed_in_client(create_app(project=project), "alice")
    case = alice.get("/api/assignments/unaided/next").json()
    assert alice.get("/" + case["image"]).status_code == 200
    url = f"/api/cases/{case['case']}/answers"
    for raw in ('{"arm": "unaided", "label": "normal", "confidence": 50, "hidden_s": Infinity}',
                '{"arm": "unaided", "label": "normal", "confidence": 50, "idle_s": NaN}',
                '{"arm": "unaided", "label": "normal", "confidence": 50, "hidden_s": 1e308}'):
        response = alice.post(url, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422 and response.json()["detail"] == "invalid request", raw
    longer = alice.post(url, json={"arm": "unaided", "label": "normal", "confidence": 50, "hidden_s": 3000,
                                   "idle_s": 600})
    assert longer.status_code == 422 and "longer than the showing" in longer.json()["detail"]
    with project.session() as session:
        assert session.query(Answer).count() == 0
    fine = alice.post(url, json={"arm": "unaided", "label": "normal", "confidence": 50, "hidden_s": 0.0})
    assert fine.status_code == 201 and fine.json()["reading_time_s"] >= 0


def _read_via_api(client, arm: str, label_of, limit: int | None = None) -> int:
    """Answer ``arm``'s cases in order; ``label_of`` gets each case's real id (the API shows only its opaque id)."""
    from proctovision.reading.db import Item

    project = client.app.state.project
    count = 0
    while (limit is None or count < limit) and (shown := client.get(f"/api/assignments/{arm}/next")).status_code == 200:
        case = shown.json()
        client.get("/" + case["image"])
        with project.session() as session:
            case_id = session.scalar(select(Item.case_id).where(Item.token == case["case"]))
        assert client.post(f"/api/cases/{case['case']}/answers",
                           json={"arm": arm, "label": label_of(case_id), "confidence": 50}).status_code == 201
        count += 1
    return count


def test_admin_sees_kappa_with_n_and_ci_and_every_pair_with_its_n(tmp_path: Path, monkeypatch):
    from proctovision.reading import consensus
    from proctovision.reading.db import Case

    project = make_study(tmp_path, readers=(("alice", "senior"), ("bob", "junior"), ("carol", "junior")))
    app = create_app(project=project)
    with project.session() as session:
        truth = {case.id: case.label for case in session.scalars(select(Case))}
    flip = {sorted(c for c in truth if truth[c] == "normal")[0], sorted(c for c in truth if truth[c] != "normal")[0]}
    other = {"normal": "hemorrhoid", "hemorrhoid": "normal"}
    _read_via_api(signed_in_client(app, "alice"), "unaided", lambda case: truth[case])
    _read_via_api(signed_in_client(app, "bob"), "unaided", lambda case: other[truth[case]] if case in flip
                  else truth[case])
    carol = signed_in_client(app, "carol")
    _read_via_api(carol, "unaided", lambda case: truth[case], limit=2)
    computed = []
    original = consensus.agreement
    monkeypatch.setattr(consensus, "agreement", lambda *a, **k: computed.append(1) or original(*a, **k))
    admin = signed_in_client(app, "admin")
    block = admin.get("/api/admin/progress").json()["agreement"]["conditions"]["unaided"]
    assert block["fleiss"]["n"] == 2 and block["fleiss"]["n_readers"] == 3 and block["n_cases"] == 8
    pairs = {(pair["a"], pair["b"]): pair for pair in block["pairs"]}
    # alice vs bob: 6 of 8 agree, both say normal 4 times: kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5, on n = 8
    assert pairs[("alice", "bob")]["n"] == 8 and abs(pairs[("alice", "bob")]["kappa"] - 0.5) < 1e-12
    low, high = pairs[("alice", "bob")]["ci95"]
    assert low < 0.5 < high
    assert pairs[("alice", "carol")]["n"] == 2 and pairs[("bob", "carol")]["n"] == 2
    admin.get("/api/admin/progress")
    assert len(computed) == 1  # no answer since: the figures come from the cache
    _read_via_api(carol, "unaided", lambda case: truth[case], limit=1)
    assert admin.get("/api/admin/progress").json()["agreement"]["conditions"]["unaided"]["fleiss"]["n"] == 3
    assert len(computed) == 2
