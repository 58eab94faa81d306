"""Each reader's work through the API: ids per item, the model only in the current aided arm, reading time from the
image being served, and the admin's per-reader progress."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from reading_fixtures import make_study, read, signed_in_client
from sqlalchemy import select

from proctovision.reading.api import create_app
from proctovision.reading.db import Answer, Item


def test_case_ids_are_per_arm_and_the_model_is_served_only_in_the_current_aided_arm(tmp_path: Path, run_dir: Path):
    project = make_study(tmp_path, n=4, arms=("unaided", "aided"), model=run_dir, arm_order="counterbalanced")
    bob = signed_in_client(create_app(project=project), "bob")  # the second reader: aided first
    assert [line["arm"] for line in bob.get("/api/assignments").json()["assignments"]] == ["aided", "unaided"]
    aided = []
    while (step := read(bob, "aided", "hemorrhoid"))[1] is not None:
        case = step[0].json()
        assert case["model"]["probabilities"] and step[1].status_code == 201
        aided.append(case)
    first = aided[0]
    assert bob.get("/" + first["model"]["cam"]).status_code == 404, "the aided arm is over: no CAM"
    shown = bob.get("/api/assignments/unaided/next").json()
    assert "model" not in shown and shown["case"] not in {case["case"] for case in aided}
    assert bob.get(f"/api/cases/{shown['case']}/cam").status_code == 404
    assert all(bob.get("/" + case["model"]["cam"]).status_code == 404 for case in aided)
    unaided = [shown["case"]]
    assert bob.get("/" + shown["image"]).status_code == 200
    bob.post(f"/api/cases/{shown['case']}/answers", json={"arm": "unaided", "label": "normal", "confidence": 50})
    while (step := read(bob, "unaided"))[1] is not None:
        unaided.append(step[0].json()["case"])
    assert len(unaided) == 4 and not set(unaided) & {case["case"] for case in aided}
    with project.session() as session:  # the same four images behind both arms' unrelated ids
        behind = dict(session.execute(select(Item.token, Item.case_id)).all())
    assert {behind[token] for token in unaided} == {behind[case["case"]] for case in aided}


def test_the_cam_is_served_during_the_aided_arm_and_not_before_it_opens(tmp_path: Path, run_dir: Path):
    project = make_study(tmp_path, n=2, arms=("unaided", "aided"), model=run_dir)
    alice = signed_in_client(create_app(project=project), "alice")
    shown = alice.get("/api/assignments/unaided/next").json()
    assert alice.get(f"/api/cases/{shown['case']}/cam").status_code == 404
    while read(alice, "unaided")[1] is not None:
        pass
    aided = alice.get("/api/assignments/aided/next").json()
    cam = alice.get("/" + aided["model"]["cam"])
    assert cam.status_code == 200 and cam.content[:4] == b"\x89PNG"


def test_an_answer_needs_the_image_served_in_this_showing_and_is_timed_from_it(tmp_path: Path):
    project = make_study(tmp_path, n=4)
    alice = signed_in_client(create_app(project=project), "alice")
    answer = {"arm": "unaided", "label": "normal", "confidence": 50}
    shown = alice.get("/api/assignments/unaided/next").json()
    url = f"/api/cases/{shown['case']}/answers"
    refused = alice.post(url, json=answer)
    assert refused.status_code == 409 and "image" in refused.json()["detail"]
    assert alice.get("/" + shown["image"]).status_code == 200
    assert alice.get("/api/assignments/unaided/next").json()["case"] == shown["case"]  # the tab reloads
    assert alice.post(url, json=answer).status_code == 409, "a new showing waits for its own image"
    assert alice.get("/" + shown["image"]).status_code == 200
    accepted = alice.post(url, json=answer)
    assert accepted.status_code == 201 and accepted.json()["reading_time_s"] < 5
    following = alice.get("/api/assignments/unaided/next").json()  # a double key press answers too early
    assert alice.post(f"/api/cases/{following['case']}/answers", json=answer).status_code == 409
    with project.session() as session:
        assert session.query(Answer).count() == 1


def test_admin_progress_shows_each_readers_median_time_and_time_since_the_last_answer(tmp_path: Path):
    project = make_study(tmp_path, n=4)
    app = create_app(project=project)
    alice = signed_in_client(app, "alice")
    for _ in range(3):
        assert read(alice)[1].status_code == 201
    assert signed_in_client(app, "bob").get("/api/assignments").status_code == 200  # bob has not answered yet
    with project.session() as session:  # three answers of 10, 20 and 60 s, the last two minutes ago
        for answer, seconds in zip(session.scalars(select(Answer).order_by(Answer.id)), (10.0, 20.0, 60.0)):
            answer.reading_time_s = seconds
            answer.answered_at -= dt.timedelta(seconds=120 + seconds)
        session.commit()
    lines = signed_in_client(app, "admin").get("/api/admin/progress").json()["progress"]
    alice_line, bob_line = lines
    assert alice_line["reader"] == "alice" and alice_line["done"] == 3 and alice_line["median_reading_s"] == 20.0
    assert 129 <= alice_line["since_last_answer_s"] <= 135  # the latest answer: 130 s ago
    assert bob_line["done"] == 0 and bob_line["median_reading_s"] is None and bob_line["since_last_answer_s"] is None
