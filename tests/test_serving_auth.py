"""`serve --auth DIR`: the clinician page and API behind the reading room's accounts (serving never imports
reading; the CLI hands it the project's accounts)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from reading_fixtures import PASSWORD, make_study

from proctovision.reading.accounts import ProjectAccounts
from proctovision.serving.app import create_app


def png_bytes(colour=(130, 50, 120)) -> bytes:
    """One colour with mild noise (a flat picture is rightly flagged as blurred and its class withheld)."""
    import numpy as np

    noise = np.random.default_rng(0).normal(0, 12, (96, 96, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> ProjectAccounts:
    from proctovision.reading.project import add_user

    project = make_study(tmp_path_factory.mktemp("accounts"), readers=(("reader-ann", "senior"),))
    add_user(project, "alice", "clinician", PASSWORD)
    yield ProjectAccounts(project)
    project.close()


@pytest.fixture(scope="module")
def app(run_dir: Path, accounts: ProjectAccounts):
    return create_app(run_dir, load_in_background=False, auth=accounts)


def upload(client: TestClient, **headers):
    return client.post("/predict?heatmap=false", files={"file": ("x.png", png_bytes(), "image/png")},
                       headers=headers)


def sign_in(client: TestClient, name: str = "alice", password: str = PASSWORD, **headers):
    return client.post("/auth/session", json={"username": name, "password": password}, headers=headers)


def test_without_a_session_the_api_is_401_and_the_page_is_a_sign_in_form(app):
    client = TestClient(app)
    assert upload(client).status_code == 401
    assert client.get("/model").status_code == 401
    page = client.get("/")
    assert page.status_code == 401 and 'action="auth/login"' in page.text and 'name="password"' in page.text
    assert "Drop an endoscopic image" not in page.text, "the clinician page itself is not served"
    assert client.get("/live").status_code == 401
    assert client.get("/health").json()["sign_in_required"] is True
    assert sign_in(client, password="wrong password").status_code == 401
    assert upload(client).status_code == 401


def test_a_reading_room_account_signs_in_and_predicts_with_the_session_csrf_token(app):
    client = TestClient(app)
    signed = sign_in(client)
    assert signed.status_code == 200, signed.text
    csrf = signed.json()["csrf_token"]
    cookie = "; ".join(signed.headers.get_list("set-cookie")).lower()
    assert "reading_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/model").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "Drop an endoscopic image" in page.text and "alice" in page.text
    answer = upload(client, **{"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["probabilities"]) == {"normal", "hemorrhoid"}
    assert client.delete("/auth/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert upload(client, **{"X-CSRF-Token": csrf}).status_code == 401, "signing out ends the session"


def test_a_missing_or_wrong_csrf_token_or_a_foreign_origin_is_refused(app):
    client = TestClient(app)
    csrf = sign_in(client).json()["csrf_token"]
    assert upload(client).status_code == 403
    assert upload(client, **{"X-CSRF-Token": "forged"}).status_code == 403
    client.cookies.set("csrf_token", "forged")  # a planted cookie (double submit) is not enough
    assert upload(client, **{"X-CSRF-Token": "forged"}).status_code == 403
    assert upload(client, **{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}).status_code == 403
    assert upload(client, **{"X-CSRF-Token": csrf, "Origin": "null"}).status_code == 403
    assert sign_in(TestClient(app), Origin="http://evil.example").status_code == 403
    other = TestClient(app)
    other_csrf = sign_in(other).json()["csrf_token"]
    assert upload(client, **{"X-CSRF-Token": other_csrf}).status_code == 403, "a token of another session fails"
    assert upload(client, **{"X-CSRF-Token": csrf, "Origin": "http://testserver"}).status_code == 200


def test_the_sign_in_form_sets_the_session_and_returns_to_the_page(app):
    client = TestClient(app, follow_redirects=False)
    wrong = client.post("/auth/login", data={"username": "alice", "password": "wrong password"})
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    zh = client.post("/auth/login?lang=zh-CN", data={"username": "<b>x</b>", "password": "wrong password"},
                     headers={"Accept-Language": "zh-CN"})
    assert "<b>x</b>" not in zh.text and 'lang="zh-Hans"' in zh.text
    done = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "../"
    assert client.get("/").status_code == 200


def test_repeated_failed_sign_ins_are_throttled(run_dir: Path, tmp_path: Path):
    from proctovision.reading.security import SecuritySettings

    project = make_study(tmp_path, readers=(("carol", "senior"),))
    try:
        app = create_app(run_dir, load_in_background=False,
                         auth=ProjectAccounts(project, SecuritySettings(max_failures=2)))
        client = TestClient(app)
        assert [sign_in(client, "carol", "wrong password").status_code for _ in range(2)] == [401, 401]
        refused = sign_in(client, "carol")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    finally:
        project.close()


def test_without_auth_the_service_is_open_as_before(run_dir: Path):
    client = TestClient(create_app(run_dir, load_in_background=False))
    assert upload(client).status_code == 200
    assert "Drop an endoscopic image" in client.get("/").text
    assert "sign_in_required" not in client.get("/health").json()
    assert client.post("/auth/session", json={"username": "a", "password": "b"}).status_code in (404, 405)


def test_serving_does_not_import_the_reading_room():
    import ast

    package = Path(__import__("proctovision.serving", fromlist=["_"]).__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(name.startswith("proctovision.reading") for name in names), path


def test_the_cli_opens_the_reading_project_and_hands_its_accounts_to_serve(run_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    import uvicorn
    from typer.testing import CliRunner

    from proctovision.cli import app as cli

    from proctovision.reading.project import add_user

    project = make_study(tmp_path, readers=(("reader-eve", "senior"),))
    add_user(project, "dora", "clinician", PASSWORD)
    project.close()
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    result = CliRunner().invoke(cli, ["serve", str(run_dir), "--auth", str(tmp_path / "project")])
    assert result.exit_code == 0, result.output
    assert "sign-in required" in result.output and served["host"] == "127.0.0.1"
    client = TestClient(served["app"])
    assert upload(client).status_code == 401
    csrf = sign_in(client, "dora").json()["csrf_token"]
    assert upload(client, **{"X-CSRF-Token": csrf}).status_code in (200, 503), "signed in: served (or loading)"
    refused = CliRunner().invoke(cli, ["serve", str(run_dir), "--auth", str(tmp_path / "project"), "--workers", "2"])
    assert refused.exit_code != 0 and "--auth" in refused.output
    missing = CliRunner().invoke(cli, ["serve", str(run_dir), "--auth", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and "not a reading project" in missing.output


def test_readers_of_a_study_cannot_sign_in_to_the_clinician_service(app, accounts: ProjectAccounts):
    """Blinding: a reader (or a reading-room session the browser carries over) never reaches the model's output."""
    from sqlalchemy import select

    from proctovision.reading.db import User
    from proctovision.reading.security import open_session

    client = TestClient(app)
    refused = sign_in(client, name="reader-ann")
    assert refused.status_code == 403, "the password is right: the account may not use this service"
    assert refused.json()["detail"] == "this account may not use the clinician service"
    form = client.post("/auth/login", data={"username": "reader-ann", "password": PASSWORD, "lang": "zh-CN"})
    assert form.status_code == 403 and "此账户不能使用临床服务" in form.text and 'name="password"' in form.text
    assert "用户名或密码错误" not in form.text
    assert upload(client).status_code == 401
    with accounts.project.session() as session:
        reader = session.scalar(select(User).where(User.name == "reader-ann"))
        token, _ = open_session(session, reader, accounts.security)
    client.cookies.set(ProjectAccounts.cookie_name, token)
    assert client.get("/model").status_code == 401, "a reading-room session of a reader is no way in"


def test_the_language_and_the_page_survive_sign_in(app):
    client = TestClient(app)
    form = client.get("/live?lang=zh-CN")
    assert form.status_code == 401 and 'name="lang" value="zh-CN"' in form.text and 'name="next" value="live"' in form.text
    signed = client.post("/auth/login", data={"username": "alice", "password": PASSWORD, "lang": "zh-CN",
                                               "next": "live"}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "../live?lang=zh-CN"
    assert client.post("/auth/login", data={"username": "alice", "password": PASSWORD, "next": "//evil.example"},
                       follow_redirects=False).headers["location"] == "../"
    wrong = client.post("/auth/login", data={"username": "alice", "password": "nope", "lang": "zh-CN"})
    assert wrong.status_code == 401 and 'name="lang" value="zh-CN"' in wrong.text and 'lang="zh-CN"' in wrong.text


def test_an_ended_session_is_said_on_the_sign_in_form(app):
    page = TestClient(app).get("/?session=ended&lang=zh-CN")
    assert page.status_code == 401 and "会话已结束" in page.text
