"""Durability: kill -9 `reading serve` in the middle of a study and restart it (no acknowledged answer lost, the
reader goes on at the next unanswered case), and an Alembic upgrade keeps the answers; SQLite and PostgreSQL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from alembic import command
from reading_fixtures import PASSWORD, database, free_port, make_study, postgres, read_all, wait_for  # noqa: F401
from sqlalchemy import select, text

from proctovision.reading.db import Answer, Item, alembic_config, current_revision
from proctovision.reading.project import open_project

ROOT = Path(__file__).resolve().parents[1]


def start_server(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "proctovision", "reading", "serve", str(folder), "--port",
                                str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/session", timeout=1).status_code == 401
        except httpx.TransportError:
            return False

    wait_for(up, timeout=60)
    return process


def signed_in(port: int) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    response = client.post("/api/session", json={"username": "alice", "password": PASSWORD})
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def test_kill_9_loses_no_acknowledged_answer_and_the_reader_resumes(tmp_path: Path, database):
    project = make_study(tmp_path, db=database, n=40)
    project.close()
    port = free_port()
    server = start_server(project.root, port)
    acknowledged, stop = [], threading.Event()

    def read() -> None:
        client = signed_in(port)
        while not stop.is_set():
            try:
                shown = client.get("/api/assignments/unaided/next").json()
                case = shown["case"]
                client.get("/" + shown["image"])
                response = client.post(f"/api/cases/{case}/answers",
                                       json={"arm": "unaided", "label": "normal", "confidence": 50})
            except (httpx.TransportError, ValueError):
                return
            if response.status_code == 201:
                acknowledged.append(case)

    reader = threading.Thread(target=read)
    try:
        reader.start()
        wait_for(lambda: len(acknowledged) >= 8, timeout=60, step=0.01)
        os.kill(server.pid, signal.SIGKILL)  # in the middle of the study, requests in flight
        server.wait(10)
        stop.set()
        reader.join(20)
        server = start_server(project.root, port)
        reopened = open_project(project.root)
        with reopened.session() as session:
            stored = set(session.scalars(select(Item.token).join(Answer, Answer.item_id == Item.id)))
        reopened.close()
        assert set(acknowledged) <= stored and len(stored) - len(acknowledged) <= 1
        client = signed_in(port)
        resumed = client.get("/api/assignments/unaided/next").json()
        assert resumed["case"] not in stored and resumed["position"] == len(stored) + 1
    finally:
        stop.set()
        server.kill()
        server.wait(10)


def test_alembic_upgrade_keeps_the_answers(tmp_path: Path, database):
    project = make_study(tmp_path, db=database)
    read_all(project, "alice", "unaided")
    command.downgrade(alembic_config(project.engine), "0001")
    assert current_revision(project.engine) == "0001"
    with project.engine.begin() as connection:  # without the trigger of 0002, rows could be changed
        connection.execute(text("UPDATE audit_events SET event = event"))
    project.close()
    upgraded = open_project(project.root)
    assert current_revision(upgraded.engine) == "0004"
    with upgraded.session() as session:
        assert session.query(Answer).count() == 8
    with upgraded.engine.connect() as connection:
        try:
            connection.execute(text("UPDATE audit_events SET event = event"))
            raise AssertionError("the upgrade did not make the audit table append-only")
        except Exception as error:
            assert "append-only" in str(error)
