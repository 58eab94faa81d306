"""Security and blinding of the reading room, on SQLite and PostgreSQL: each protection has a test that fails
without it (argon2, cookie flags, expiry, throttling, per-object authorisation, blinding, CSRF, Origin, escaping)."""
from __future__ import annotations

import datetime as dt
import inspect
import json
from pathlib import Path

from asgi_driver import raw_post
from fastapi.testclient import TestClient
from reading_fixtures import (PASSWORD, database, login, make_study, postgres, read,  # noqa: F401
                              signed_in_client, tiny_manifest)
from sqlalchemy import select
from typer.testing import CliRunner

from proctovision.reading.api import create_app
from proctovision.reading.db import Assignment, Case, Item, LoginSession, User
from proctovision.reading.project import add_user, init_project
from proctovision.reading.security import SecuritySettings

ANSWER = {"arm": "unaided", "label": "normal", "confidence": 50}


def cookie_header(response, name: str) -> str:
    return next(value for value in response.headers.get_list("set-cookie") if value.startswith(name + "="))


def test_passwords_are_argon2_hashes(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    with project.session() as session:
        for user in session.scalars(select(User)):
            assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_session_cookie_is_httponly_strict_and_secure_over_https(tmp_path: Path, database):
    app = create_app(project=make_study(tmp_path, db=database))
    plain = login(TestClient(app), "alice")
    session_cookie = cookie_header(plain, "reading_session").lower()
    assert "httponly" in session_cookie and "samesite=strict" in session_cookie and "secure" not in session_cookie
    csrf_cookie = cookie_header(plain, "csrf_token").lower()
    assert "httponly" not in csrf_cookie and "samesite=strict" in csrf_cookie
    secure = login(TestClient(app, base_url="https://testserver"), "alice")
    assert "; secure" in cookie_header(secure, "reading_session").lower()


def test_sessions_expire_and_sign_out_ends_them(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    app = create_app(project=project)
    alice = signed_in_client(app, "alice")
    assert alice.get("/api/assignments").status_code == 200
    with project.session() as session:
        for row in session.scalars(select(LoginSession)):
            row.expires_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
        session.commit()
    assert alice.get("/api/assignments").status_code == 401
    bob = signed_in_client(app, "bob")
    token = bob.cookies.get("reading_session")
    assert bob.delete("/api/session").status_code == 204
    replay = TestClient(app)
    replay.cookies.set("reading_session", token)
    assert replay.get("/api/assignments").status_code == 401


def test_repeated_failed_logins_get_429_even_with_the_right_password(tmp_path: Path, database):
    app = create_app(project=make_study(tmp_path, db=database), security=SecuritySettings(max_failures=3))
    client = TestClient(app)
    assert [login(client, "alice", "wrong password").status_code for _ in range(3)] == [401, 401, 401]
    refused = login(client, "alice")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert login(client, "bob").status_code == 200  # another account is not locked out by alice's failures


def test_readers_reach_only_their_own_cases_and_no_admin_route(tmp_path: Path, database):
    project = make_study(tmp_path / "a", db=database)
    other = make_study(tmp_path / "b")
    with other.session() as session:
        foreign = session.scalars(select(Case.id)).first()
    app = create_app(project=project)
    alice, bob = signed_in_client(app, "alice"), signed_in_client(app, "bob")
    for _ in range(3):  # bob answers; alice's counts and cases stay hers
        shown, answered = read(bob, "unaided")
        assert answered.status_code == 201
        assert alice.get("/" + shown.json()["image"]).status_code == 404
    assert alice.get("/api/assignments").json()["assignments"][0]["done"] == 0
    for path in ("/api/admin/progress",):
        assert alice.get(path).status_code == 403
    assert alice.post("/api/admin/export").status_code == 403
    assert alice.get("/api/adjudication/next").status_code == 403
    for guess in (foreign, "0", "../../reading.sqlite", "..%2F..%2Freading.sqlite"):
        assert alice.get(f"/api/cases/{guess}/image").status_code == 404
        assert alice.post(f"/api/cases/{guess}/answers", json=ANSWER).status_code == 404
    assert alice.get("/api/assignments/aided/next").status_code == 404  # an arm she does not have
    case = alice.get("/api/assignments/unaided/next").json()["case"]
    assert alice.get(f"/api/cases/{case}/cam").status_code == 404  # no model in the unaided arm
    assert TestClient(app).get(f"/api/cases/{case}/image").status_code == 401


def test_labelling_experts_see_only_the_cases_given_to_them(tmp_path: Path, database):
    project = init_project(tmp_path / "label", tiny_manifest(tmp_path / "data", n=6), "hemorrhoid", "labelling",
                           readers_per_case=1, db=database)
    for name in ("e1", "e2"):
        add_user(project, name, "reader", PASSWORD)
    app = create_app(project=project)
    e1, e2 = signed_in_client(app, "e1"), signed_in_client(app, "e2")
    mine = e1.get("/api/assignments/labelling/next").json()["case"]
    assert e1.get(f"/api/cases/{mine}/image").status_code == 200
    assert e2.get(f"/api/cases/{mine}/image").status_code == 404
    for expert in (e1, e2):  # each reads all of theirs, so every case has been shown to its one expert
        while read(expert, "labelling")[1] is not None:
            pass
    with project.session() as session:
        owners = session.execute(select(Item.case_id, Item.token, User.name).select_from(Item)
                                 .join(Assignment, Item.assignment_id == Assignment.id)
                                 .join(User, Assignment.user_id == User.id)).all()
        everything = set(session.scalars(select(Case.id)))
    assert sorted(case for case, _, _ in owners) == sorted(everything)  # one expert per case: never both or neither
    for case, token, owner in owners:
        assert e1.get(f"/api/cases/{token}/image").status_code == (200 if owner == "e1" else 404)
        assert e2.get(f"/api/cases/{token}/image").status_code == (200 if owner == "e2" else 404)
        assert e1.get(f"/api/cases/{case}/image").status_code == 404  # readers never reach a case by its own id


def test_a_reader_cannot_look_ahead_at_cases_not_yet_shown(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    alice = signed_in_client(create_app(project=project), "alice")
    shown = alice.get("/api/assignments/unaided/next").json()["case"]
    with project.session() as session:
        later = [token for token in session.scalars(
            select(Item.token).join(Assignment, Item.assignment_id == Assignment.id)
            .join(User, Assignment.user_id == User.id).where(User.name == "alice")) if token != shown]
    assert len(later) == 7 and alice.get(f"/api/cases/{shown}/image").status_code == 200
    assert all(alice.get(f"/api/cases/{case}/image").status_code == 404 for case in later)


def test_blinding_no_reader_response_carries_truth_model_others_names_or_patients(tmp_path: Path, database):
    project = make_study(tmp_path, db=database, readers=(("alice", "senior"), ("zebulon", "junior")))
    app = create_app(project=project)
    zebulon = signed_in_client(app, "zebulon")
    while read(zebulon, "unaided", "hemorrhoid")[1] is not None:
        pass
    alice = signed_in_client(app, "alice")
    seen = [alice.get("/"), alice.get("/api/session"), alice.get("/api/assignments")]
    payloads = []
    while (shown := alice.get("/api/assignments/unaided/next")).status_code == 200:
        case = shown.json()
        payloads.append({key: value for key, value in case.items() if key not in ("case", "position", "image")})
        seen += [shown, alice.get("/" + case["image"]),
                 alice.post(f"/api/cases/{case['case']}/answers", json=ANSWER)]
    seen.append(shown)
    assert len(payloads) == 8
    assert all(payload == payloads[0] for payload in payloads)  # nothing in a case's JSON depends on its truth
    assert set(payloads[0]) == {"arm", "total", "classes", "allow_changes", "windows"}
    for response in seen:
        blob = response.content + json.dumps(dict(response.headers)).encode()
        for secret in (b"SECRETFILE", b"PATIENT-", b"zebulon", b"site_a", b"probabilit", b".png", b"img/"):
            assert secret not in blob, (secret, response.request.url)


def test_csrf_token_must_match_the_session_and_the_origin_must_be_ours(tmp_path: Path, database):
    app = create_app(project=make_study(tmp_path, db=database))
    alice, bob = signed_in_client(app, "alice"), signed_in_client(app, "bob")
    shown = alice.get("/api/assignments/unaided/next").json()
    url = f"/api/cases/{shown['case']}/answers"
    assert alice.get("/" + shown["image"]).status_code == 200
    own = alice.headers.pop("X-CSRF-Token")
    assert alice.post(url, json=ANSWER).status_code == 403  # no token
    assert alice.post(url, json=ANSWER, headers={"X-CSRF-Token": bob.headers["X-CSRF-Token"]}).status_code == 403
    alice.cookies.set("csrf_token", "forged")  # double submit of a cookie the attacker set is not enough
    assert alice.post(url, json=ANSWER, headers={"X-CSRF-Token": "forged"}).status_code == 403
    evil = {"X-CSRF-Token": own, "Origin": "http://evil.example"}
    assert alice.post(url, json=ANSWER, headers=evil).status_code == 403
    assert alice.post(url, json=ANSWER, headers={"X-CSRF-Token": own, "Origin": "null"}).status_code == 403
    assert alice.delete("/api/session", headers={"X-CSRF-Token": own, "Origin": "http://evil.example"}
                        ).status_code == 403
    assert login(TestClient(app), "alice", Origin="http://evil.example").status_code == 403
    ours = {"X-CSRF-Token": own, "Origin": "http://testserver"}
    assert alice.post(url, json=ANSWER, headers=ours).status_code == 201


def test_names_and_labels_with_markup_stay_text(tmp_path: Path):
    task = tmp_path / "task.yaml"
    task.write_text('name: markup\nclasses: ["<b>calm</b>", "<script>alert(2)</script>"]\n')
    project = init_project(tmp_path / "p", tiny_manifest(tmp_path / "data", classes=("<b>calm</b>",
                                                                                    "<script>alert(2)</script>")),
                           str(task), "study")
    add_user(project, "<img src=x onerror=alert(1)>", "reader", PASSWORD)
    app = create_app(project=project)
    reader = signed_in_client(app, "<img src=x onerror=alert(1)>")
    me = reader.get("/api/session")
    assert me.headers["content-type"] == "application/json" and me.headers["x-content-type-options"] == "nosniff"
    assert me.json()["name"] == "<img src=x onerror=alert(1)>"
    page = reader.get("/")
    assert "onerror" not in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text.replace('<script src="static/reading.js" defer></script>', "")
    script = (Path(__file__).parents[1] / "src/proctovision/reading/static/reading.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


def test_validation_errors_never_echo_the_password(tmp_path: Path):
    client = TestClient(create_app(project=make_study(tmp_path)))
    response = client.post("/api/session", json={"username": ["x"], "password": "hunter2-secret"})
    assert response.status_code == 422 and "hunter2-secret" not in response.text


def test_reading_serve_listens_on_loopback_unless_asked(tmp_path: Path):
    from proctovision.cli import app
    from proctovision.cli.reading import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    make_study(tmp_path)
    result = CliRunner().invoke(app, ["reading", "serve", str(tmp_path / "project"), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "loopback" in result.output


def test_dicom_cases_reach_readers_as_plain_pngs_without_the_header(tmp_path: Path):
    from PIL import Image

    from proctovision.data.synthetic.mri import generate_mri

    manifest = generate_mri(tmp_path / "mri", patients=4, slices_per_patient=1, size=64)
    project = init_project(tmp_path / "p", manifest, "fistula", "study")
    add_user(project, "alice", "reader", PASSWORD)
    alice = signed_in_client(create_app(project=project), "alice")
    case = alice.get("/api/assignments/unaided/next").json()
    image = alice.get("/" + case["image"])
    assert image.headers["content-type"] == "image/png" and "content-disposition" not in image.headers
    for secret in (b"SYNTHETIC", b"PATIENT", b"SYN-", b"IM00", b"1.2.840", b"DICM", b".dcm"):
        assert secret not in image.content
    import io

    assert Image.open(io.BytesIO(image.content)).size == (64, 64)  # full resolution
    assert case["windows"] == ["full", "contrast"]
    shown = {}
    for window in case["windows"]:
        other = alice.get("/" + case["image"], params={"window": window})
        assert other.status_code == 200 and b"SYNTHETIC" not in other.content and b"SYN-" not in other.content
        shown[window] = other.content
    assert shown["contrast"] != shown["full"] and shown["contrast"] != image.content
    assert alice.get("/" + case["image"], params={"window": "../../reading"}).status_code == 404


JSON = (b"content-type", b"application/json")


def test_bodies_over_64_kb_get_413_before_they_are_read(tmp_path: Path):
    app = create_app(project=make_study(tmp_path))
    big = json.dumps({"username": "alice", "password": "x" * 100_000}).encode()
    status, body, pulled = raw_post(app, "/api/session", [big], [JSON, (b"content-length", str(len(big)).encode())])
    assert status == 413 and json.loads(body)["detail"].startswith("request body larger than 64 KB")
    assert pulled == 0  # refused on the declared length, unread
    chunks = [b'{"username": "alice", "password": "'] + [b"x" * 16384] * 6400  # 100 MB, chunked
    status, body, pulled = raw_post(app, "/api/session", chunks, [JSON, (b"transfer-encoding", b"chunked")])
    assert status == 413 and "64 KB" in json.loads(body)["detail"]
    assert pulled <= 64 * 1024 // 16384 + 2  # cut off at the limit, not read whole
    small = signed_in_client(app, "alice")  # an ordinary request still goes through
    assert small.get("/api/session").status_code == 200


def test_a_forged_x_forwarded_for_still_meets_429(tmp_path: Path):
    """Through uvicorn as `reading serve` runs it: a local client cannot pick a new address per attempt."""
    import threading
    import time

    import httpx
    import uvicorn
    from reading_fixtures import free_port

    from proctovision.cli.reading import proxy_options

    app = create_app(project=make_study(tmp_path), security=SecuritySettings(max_failures=2))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           **proxy_options(())))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        statuses = [httpx.post(f"{base}/api/session", json={"username": f"nobody{n}", "password": "wrong pass"},
                               headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code for n in range(9)]
    finally:
        server.should_exit = True
        thread.join(10)
    assert statuses[:8] == [401] * 8 and statuses[8] == 429  # 4 x max_failures from one client


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(tmp_path: Path):
    from proctovision.reading.security import client_address

    trusting = SecuritySettings(trusted_proxies=("10.1.1.1",))
    assert client_address("192.0.2.7", "203.0.113.9", SecuritySettings()) == "192.0.2.7"
    assert client_address("192.0.2.7", "203.0.113.9", trusting) == "192.0.2.7"
    assert client_address("10.1.1.1", "6.6.6.6, 203.0.113.9", trusting) == "203.0.113.9"  # the hop the proxy saw
    app = create_app(project=make_study(tmp_path), security=SecuritySettings(max_failures=1,
                                                                             trusted_proxies=("testclient",)))
    client = TestClient(app)
    attempts = [client.post("/api/session", json={"username": f"n{n}", "password": "wrong pass"},
                            headers={"X-Forwarded-For": "203.0.113.9"}).status_code for n in range(5)]
    assert attempts == [401, 401, 401, 401, 429]
    other = client.post("/api/session", json={"username": "n9", "password": "wrong pass"},
                        headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 401  # a different client behind the same proxy is not locked out


def test_user_names_ignore_case_unique_sign_in_and_throttle(tmp_path: Path, database):
    import pytest

    from proctovision.reading.db import ReadingError

    project = make_study(tmp_path, db=database, readers=(("reader-c", "senior"),))
    with pytest.raises(ReadingError, match="exists already"):
        add_user(project, "Reader-C", "reader", PASSWORD)
    app = create_app(project=project, security=SecuritySettings(max_failures=3))
    assert login(TestClient(app), "READER-C").json()["name"] == "reader-c"
    client = TestClient(app)
    assert [login(client, name, "wrong password").status_code for name in ("Reader-C", "reader-c", "READER-c")] \
        == [401, 401, 401]
    assert login(TestClient(app), "reader-c").status_code == 429  # one account, one count, whatever the case


def test_an_older_database_gets_case_free_names_or_is_refused_naming_the_clash(tmp_path: Path):
    import pytest
    from alembic import command
    from sqlalchemy import text

    from proctovision.reading.db import ReadingError, alembic_config, current_revision
    from proctovision.reading.project import open_project

    project = make_study(tmp_path, readers=(("Reader-C", "senior"),))
    command.downgrade(alembic_config(project.engine), "0002")
    project.close()
    upgraded = open_project(project.root)
    assert current_revision(upgraded.engine) == "0004"
    assert login(TestClient(create_app(project=upgraded)), "reader-c").status_code == 200
    command.downgrade(alembic_config(upgraded.engine), "0002")
    with upgraded.engine.begin() as connection:
        connection.execute(text("INSERT INTO users (name, role, experience, password_hash, created_at) "
                                "VALUES ('reader-c', 'reader', '', 'x', '2026-01-01')"))
    upgraded.close()
    with pytest.raises(ReadingError, match="Reader-C / reader-c"):
        open_project(project.root)
