"""serve's contract and its browser-facing defences: the OpenAPI document says every status it answers (with the
shared error body), Schemathesis finds no 5xx and no undocumented answer under a signed-in session, every page
sends the shared security headers and runs no inline script, and /docs needs no public CDN (and a session)."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from reading_fixtures import PASSWORD, make_study

from proctovision.core.api_errors import ErrorBody
from proctovision.reading.accounts import ProjectAccounts
from proctovision.serving.app import create_app
from proctovision.serving.background import running_server


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> ProjectAccounts:
    from proctovision.reading.project import add_user

    project = make_study(tmp_path_factory.mktemp("contract"))
    add_user(project, "carol", "clinician", PASSWORD)
    yield ProjectAccounts(project)
    project.close()


@pytest.fixture(scope="module")
def signed_app(run_dir: Path, accounts: ProjectAccounts):
    return create_app(run_dir, load_in_background=False, auth=accounts)


def test_every_route_documents_its_refusals_with_the_shared_error_body(signed_app):
    schema = signed_app.openapi()
    assert "ErrorBody" in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == set(ErrorBody.model_fields)
    expected = {("/predict", "post"): {"400", "401", "403", "413", "415", "422", "503"},
                ("/model", "get"): {"401", "503"}, ("/auth/session", "post"): {"401", "403", "422", "429"},
                ("/answers/{answer_id}/shown", "post"): {"401", "403", "404", "422"}}
    for (path, method), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, set(responses))
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_refusals_answer_the_documented_body(signed_app):
    client = TestClient(signed_app)
    refused = client.post("/predict", files={"file": ("a.png", b"x", "image/png")})
    assert refused.status_code == 401 and set(refused.json()) == {"detail"}
    malformed = client.post("/auth/session", json={"username": 3})
    assert malformed.status_code == 422 and malformed.json()["fields"] and "detail" in malformed.json()


# An upload valid by its schema may still be refused for what it holds: empty (400), over the limit (413), not an
# image (415); each is documented. Everything else Schemathesis checks as it comes.
CONFIG = """
[[operations]]
include-path = "/predict"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "413", "415"]
"""


def test_schemathesis_finds_no_server_error_and_nothing_undocumented(signed_app, tmp_path: Path):
    """All of Schemathesis' checks against the live server, signed in, sign-out excluded, bounded in time."""
    with running_server(signed_app) as url, httpx.Client() as http:
        signed = http.post(url + "auth/session", json={"username": "carol", "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        (tmp_path / "schemathesis.toml").write_text(CONFIG)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", url + "openapi.json", "--checks", "all",
             "--max-examples", "8", "--seed", "1", "--exclude-method", "DELETE", "--no-shrink",
             "--request-timeout", "20", "--header", f"Cookie: {cookie}",
             "--header", f"X-CSRF-Token: {signed.json()['csrf_token']}"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        seconds = time.monotonic() - started
        still = http.get(url + "auth/session")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert not re.search(r"\b5\d\d\b.*Server error", done.stdout)
    assert still.status_code == 200, "the session outlived the run (sign-out was excluded)"
    assert seconds < 60, seconds


def test_pages_send_the_shared_security_headers_and_no_inline_script(signed_app, run_dir: Path):
    open_app = TestClient(create_app(run_dir, load_in_background=False))
    signed = TestClient(signed_app)
    pages = [open_app.get("/"), open_app.get("/live"), signed.get("/"), signed.get("/live?lang=zh-CN")]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        scripts = re.findall(r"<script([^>]*)>", page.text)
        assert all("src=" in tag or 'type="application/json"' in tag for tag in scripts), scripts
        assert "<style" not in page.text and " style=" not in page.text
    api = open_app.get("/health")
    assert api.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in api.headers


def test_docs_are_served_from_the_package_and_need_a_session(signed_app, run_dir: Path):
    open_app = TestClient(create_app(run_dir, load_in_background=False))
    docs = open_app.get("/docs")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(not asset.startswith(("http:", "https:", "//")) for asset in assets)
    for asset in assets:
        assert open_app.get("/" + asset).status_code == 200, asset
    assert "SwaggerUIBundle" in open_app.get("/docs/assets/swagger-ui-bundle.js").text
    client = TestClient(signed_app)
    assert client.get("/docs").status_code == 401 and 'name="password"' in client.get("/docs").text
    client.post("/auth/session", json={"username": "carol", "password": PASSWORD})
    assert client.get("/docs").status_code == 200


def test_docs_render_offline_under_the_pages_policy(run_dir: Path):
    from conftest import CHROMIUM, browser_page

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium")
    with browser_page(create_app(run_dir, load_in_background=False)) as (page, url):
        refused = []
        page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
                else None)
        outside = []
        page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(url) else None)
        page.goto(url + "docs")
        page.wait_for_selector("text=/predict", timeout=30_000)
        assert outside == [] and refused == []
