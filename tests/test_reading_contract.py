"""The reading room's OpenAPI document matches what it does: schemathesis (``--checks all``, offline, seeded and
bounded) runs every operation but sign-out against a loopback server with a signed-in session, and finds no
undocumented status, no body that breaks its schema and no server error. Every refusal uses the shared error body."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from reading_fixtures import PASSWORD, make_study

from proctovision.reading.api import create_app
from proctovision.serving.background import running_server

pytest.importorskip("schemathesis")


def _schemathesis(url: str, user: str, folder: Path, max_examples: int, *selection: str) -> str:
    origin = url.rstrip("/")
    client = httpx.Client(base_url=url, headers={"Origin": origin})
    signed = client.post("api/session", json={"username": user, "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    shown = client.get("api/assignments/unaided/next")
    case = shown.json()["case"] if shown.status_code == 200 else "no-such-case"
    config = folder / f"{user}.toml"
    config.write_text(
        f'headers = {{ Cookie = "reading_session={signed.cookies["reading_session"]}", '
        f'"X-CSRF-Token" = "{signed.json()["csrf_token"]}", Origin = "{origin}" }}\n'
        f'[parameters]\n"path.arm" = "unaided"\n"path.case" = "{case}"\n')
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", url + "openapi.json",
               "--checks", "all", "--exclude-operation-id-regex", "sign_out", "--max-examples", str(max_examples),
               "--seed", "7", "--workers", "1", "--request-timeout", "20", *selection]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Server error" not in output and "generated" in output and " passed" in output, output[-3000:]
    return output


def test_schemathesis_finds_no_mismatch_and_no_server_error(tmp_path: Path):
    project = make_study(tmp_path)
    with running_server(create_app(project=project)) as url:
        _schemathesis(url, "alice", tmp_path, 15)
        _schemathesis(url, "admin", tmp_path, 5, "--include-path-regex", "^/api/admin/")


def test_every_operation_documents_its_refusals_with_the_shared_error_body(tmp_path: Path):
    from fastapi.testclient import TestClient

    schema = TestClient(create_app(project=make_study(tmp_path))).get("/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            refusals = {code: answer for code, answer in operation["responses"].items() if code.startswith("4")}
            assert "401" in refusals or path == "/api/session" and method == "post", (method, path)
            for code, answer in refusals.items():
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    sign_in = schema["paths"]["/api/session"]["post"]["responses"]
    assert {"401", "403", "413", "422", "429"} <= set(sign_in)
    answer = schema["paths"]["/api/cases/{case}/answers"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(answer)
