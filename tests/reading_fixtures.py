"""Shared pieces of the reading-room tests: tiny manifests, projects, a PostgreSQL server of their own."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import solid_image

PASSWORD = "correct horse battery"
COLOURS = {"normal": (90, 170, 90), "hemorrhoid": (130, 50, 120)}


def tiny_manifest(root: Path, n: int = 8, classes: tuple[str, ...] = ("normal", "hemorrhoid"),
                  split: str = "test") -> Path:
    """``n`` images with telling file names and patient ids (so blinding tests can look for them)."""
    lines = ["path,label,patient_id,split,centre"]
    for index in range(n):
        label = classes[(index // 2) % len(classes)]
        name = f"img/SECRETFILE_{index:03d}.png"
        solid_image(root / name, COLOURS.get(label, (120, 120, 120)), noise_seed=index)
        _with_identifying_metadata(root / name, index)
        lines.append(f"{name},{label},PATIENT-{index // 2:04d},{split},site_a")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _with_identifying_metadata(path: Path, index: int) -> None:
    """A PNG text chunk naming the file and the patient, as exports from some systems carry."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", f"SECRETFILE_{index:03d} PATIENT-{index // 2:04d}")
    with Image.open(path) as image:
        image.load()
        image.save(path, pnginfo=info)


def login(client, name: str, password: str = PASSWORD, **headers):
    """Sign in through the API; returns the response (the client keeps the cookies)."""
    return client.post("/api/session", json={"username": name, "password": password}, headers=headers)


def signed_in_client(app, name: str, base_url: str = "http://testserver"):
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url=base_url)
    response = login(client, name)
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """initdb + pg_ctl in a temporary folder on a free loopback port; ``url(name)`` makes a fresh database."""

    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            pytest.skip("needs Debian's postgresql (initdb, pg_ctl); .ci/run installs it")
        self.bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="pv-pg-"))
        self.port = free_port()
        env = {**os.environ, "LC_ALL": "C"}
        self.prefix = self._unprivileged()
        subprocess.run([*self.prefix, str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8"], check=True, capture_output=True, env=env)
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                        "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on",
                        "-w", "start"], check=True, capture_output=True, env=env)
        self.count = 0

    def _unprivileged(self) -> list[str]:
        """PostgreSQL refuses to run as root: as root, run it as the postgres user the package made."""
        if os.geteuid() != 0:
            return []
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres user to run PostgreSQL as")
        os.chown(self.folder, account.pw_uid, account.pw_gid)
        return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]

    def url(self) -> str:
        import psycopg

        self.count += 1
        name = f"reading{self.count}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                        "stop"],
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    """None (SQLite inside the project) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").url()


def make_study(root: Path, db: str | None = None, readers: tuple[tuple[str, str], ...] = (("alice", "senior"),
               ("bob", "junior")), n: int = 8, **settings):
    """A reader study project with an admin and the given readers (all with PASSWORD)."""
    from proctovision.reading.project import add_user, init_project

    manifest = tiny_manifest(root / "data", n)
    settings.setdefault("kind", "study")
    project = init_project(root / "project", manifest, settings.pop("task", "hemorrhoid"), split="test", db=db,
                           **settings)
    add_user(project, "admin", "admin", PASSWORD)
    for name, experience in readers:
        add_user(project, name, "reader", PASSWORD, experience)
    return project


@pytest.fixture(scope="module")
def clinician_accounts(tmp_path_factory):
    """The accounts of a reading project with one clinician, alice, that ``serve --auth`` signs in against."""
    from proctovision.reading.accounts import ProjectAccounts
    from proctovision.reading.project import add_user

    project = make_study(tmp_path_factory.mktemp("clinician-accounts"), readers=())
    add_user(project, "alice", "clinician", PASSWORD)
    yield ProjectAccounts(project)
    project.close()


def read_all(project, name: str, arm: str, labels=None, confidence: float = 80.0) -> int:
    """Answer every case of ``arm`` for reader ``name`` (each after its image is served): the first class, or
    ``labels(case id)``."""
    from sqlalchemy import select

    from proctovision.reading import assignments
    from proctovision.reading.db import User

    with project.session() as session:
        study, user = project.study(session), session.scalar(select(User).where(User.name == name))
        count = 0
        while (shown := assignments.next_case(session, study, user, arm)) is not None:
            case_id = assignments.open_image(session, study, user, shown["case"])  # the reader sees the image
            label = labels(case_id) if labels else study.classes[0]
            assignments.answer(session, study, user, shown["case"], arm, label, confidence)
            count += 1
        return count


def read(client, arm: str = "unaided", label: str = "normal", confidence: float = 50, **extra):
    """One showing through the API as the page does it: next, the image, the answer. Returns (next, answer), or
    (the 204 of next, None) when the arm is done."""
    shown = client.get(f"/api/assignments/{arm}/next")
    if shown.status_code != 200:
        return shown, None
    case = shown.json()
    assert client.get("/" + case["image"]).status_code == 200
    return shown, client.post(f"/api/cases/{case['case']}/answers",
                              json={"arm": arm, "label": label, "confidence": confidence, **extra})


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(step)
