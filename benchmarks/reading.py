"""The reading room under load: 30 simulated readers answering at once, on SQLite and PostgreSQL, loopback only.

Usage: python benchmarks/reading.py [--readers 30] [--cases 20] [--db sqlite,postgresql] [--think-ms 1000]
       python benchmarks/reading.py --admin-cases 200 --db sqlite   (the admin's progress page, 30 x 200)
For each database it makes a reader study of generated images, starts `proctovision reading serve` as its own
process, and lets every reader sign in and read ``--cases`` cases as fast as the server answers (next, then
the image, answer). It prints the errors (goal 0) and the p50/p95 latency of `next` and of `answer` (goal p95 < 150 ms on
2 cores); each reader's first `next`, which also makes their seeded order, is reported on its own. Then the readers go on while the server is killed with SIGKILL; after a restart it counts the
acknowledged (201) answers that are missing from the database (goal 0). Bounded in count and time.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
PASSWORD = "benchmark password"
TIME_LIMIT_S = 300


def make_project(folder: Path, readers: int, cases: int, db: str | None) -> Path:
    from reading_fixtures import tiny_manifest

    from proctovision.reading.project import add_user, init_project

    project = init_project(folder / "project", tiny_manifest(folder / "data", cases), "hemorrhoid", "study",
                           split="test", db=db)
    for index in range(readers):
        add_user(project, f"reader{index:02d}", "reader", PASSWORD, "senior" if index % 2 else "junior")
    project.close()
    return folder / "project"


def serve(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "proctovision", "reading", "serve", str(folder), "--port",
                                str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/session", timeout=1).status_code == 401:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("reading serve did not start")


class Reader(threading.Thread):
    def __init__(self, port: int, name: str, limit: int, start_gate: threading.Barrier, think_s: float) -> None:
        super().__init__(daemon=True)
        self.port, self.name_, self.limit, self.gate, self.think_s = port, name, limit, start_gate, think_s
        self.next_ms, self.answer_ms, self.errors, self.acknowledged = [], [], [], []
        self.first_next_ms: float | None = None  # a reader's first next also makes their seeded order
        self.stop = threading.Event()

    def run(self) -> None:
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        try:
            response = client.post("/api/session", json={"username": self.name_, "password": PASSWORD})
        except httpx.TransportError as error:
            self.errors.append(f"sign-in {type(error).__name__}")
            self.gate.abort()
            return
        if response.status_code != 200:
            self.errors.append(f"sign-in {response.status_code}")
            self.gate.abort()
            return
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        try:
            self.gate.wait()
        except threading.BrokenBarrierError:
            return
        deadline = time.time() + TIME_LIMIT_S
        while len(self.acknowledged) < self.limit and not self.stop.is_set() and time.time() < deadline:
            try:
                start = time.perf_counter()
                shown = client.get("/api/assignments/unaided/next")
                elapsed = 1000 * (time.perf_counter() - start)
                if self.first_next_ms is None:
                    self.first_next_ms = elapsed
                else:
                    self.next_ms.append(elapsed)
                if shown.status_code == 204:
                    return
                if shown.status_code != 200:
                    self.errors.append(f"next {shown.status_code}")
                    continue
                case = shown.json()["case"]
                client.get("/" + shown.json()["image"])  # as the page does: the answer needs the image served
                self.stop.wait(self.think_s)
                start = time.perf_counter()
                answered = client.post(f"/api/cases/{case}/answers",
                                       json={"arm": "unaided", "label": "normal", "confidence": 50})
                self.answer_ms.append(1000 * (time.perf_counter() - start))
                if answered.status_code == 201:
                    self.acknowledged.append(case)
                else:
                    self.errors.append(f"answer {answered.status_code}")
            except httpx.TransportError as error:
                if not self.stop.is_set():
                    self.errors.append(type(error).__name__)
                return


def p(values: list[float], quantile: float) -> float:
    return statistics.quantiles(values, n=100)[int(quantile) - 1] if len(values) > 1 else float("nan")


def stored_answers(folder: Path) -> set[tuple[str, str]]:
    from sqlalchemy import select

    from proctovision.reading.db import Answer, Item, User
    from proctovision.reading.project import open_project

    project = open_project(folder)
    with project.session() as session:
        rows = set(session.execute(select(User.name, Item.token).join(Answer, Answer.item_id == Item.id)
                                   .join(User, Answer.user_id == User.id)).all())
    project.close()
    return {(name, case) for name, case in rows}


def run_one(label: str, db: str | None, readers: int, cases: int, work: Path, think_s: float) -> None:
    from proctovision.serving.background import free_port

    folder = make_project(work / label, readers, 2 * cases, db)
    port = free_port()
    server = serve(folder, port)
    try:
        gate = threading.Barrier(readers)
        team = [Reader(port, f"reader{index:02d}", cases, gate, think_s) for index in range(readers)]
        start = time.perf_counter()
        for reader in team:
            reader.start()
        for reader in team:
            reader.join(TIME_LIMIT_S)
        seconds = time.perf_counter() - start
        next_ms = [value for reader in team for value in reader.next_ms]
        answer_ms = [value for reader in team for value in reader.answer_ms]
        errors = [error for reader in team for error in reader.errors]
        answered = sum(len(reader.acknowledged) for reader in team)
        print(f"{label}: {readers} readers, {think_s:g} s between showing and answering, {answered} answers in "
              f"{seconds:.1f} s ({answered / seconds:.0f}/s, sign-in included); errors {len(errors)}{' ' + str(sorted(set(errors))) if errors else ''}")
        first = [reader.first_next_ms for reader in team if reader.first_next_ms is not None]
        print(f"  next   p50 {p(next_ms, 50):6.1f} ms  p95 {p(next_ms, 95):6.1f} ms   (each reader's first next, "
              f"which makes their order, all {readers} at once: p50 {p(first, 50):.0f} ms, max {max(first):.0f} ms)")
        print(f"  answer p50 {p(answer_ms, 50):6.1f} ms  p95 {p(answer_ms, 95):6.1f} ms")
        gate = threading.Barrier(readers)
        team = [Reader(port, f"reader{index:02d}", cases, gate, think_s) for index in range(readers)]
        for reader in team:
            reader.start()
        deadline = time.time() + 60  # kill once every reader is signed in and answers are flowing
        while sum(len(reader.acknowledged) for reader in team) < readers and time.time() < deadline:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        for reader in team:
            reader.stop.set()
            reader.join(30)
        acknowledged = {(reader.name_, case) for reader in team for case in reader.acknowledged}
        server = serve(folder, port)  # the restart itself must work after the kill
        lost = acknowledged - stored_answers(folder)
        print(f"  kill -9 after {len(acknowledged)} acknowledged answers in the second round: {len(lost)} lost")
    finally:
        server.kill()
        server.wait(10)


def fill_answers(folder: Path, seed: int = 0) -> int:
    """Every reader answers every case of their order, written straight to the database (a finished study)."""
    import random

    from sqlalchemy import select

    from proctovision.reading import assignments
    from proctovision.reading.db import Answer, Item, User, now
    from proctovision.reading.project import open_project

    rng, count = random.Random(seed), 0
    project = open_project(folder)
    with project.session() as session:
        study = project.study(session)
        for user in session.scalars(select(User).where(User.role == "reader")).all():
            for assignment in assignments.ensure_assignments(session, study, user):
                for item in session.scalars(select(Item).where(Item.assignment_id == assignment.id)):
                    item.shown_at = item.first_shown_at = now()
                    session.add(Answer(item_id=item.id, user_id=user.id, case_id=item.case_id, arm=assignment.arm,
                                       label=rng.choice(study.classes), confidence=50.0,
                                       reading_time_s=round(rng.uniform(2, 20), 3)))
                    count += 1
            session.commit()
    project.close()
    return count


def run_admin(label: str, db: str | None, readers: int, cases: int, work: Path, calls: int = 20) -> None:
    """The admin's progress page on a finished study of ``readers`` x ``cases``: its first call (agreement
    computed) and the calls after it while no answer comes in (agreement from the cache)."""
    from proctovision.reading.project import add_user, open_project
    from proctovision.serving.background import free_port

    folder = make_project(work / ("admin-" + label), readers, cases, db)
    project = open_project(folder)
    add_user(project, "admin", "admin", PASSWORD)
    project.close()
    answers = fill_answers(folder)
    port = free_port()
    server = serve(folder, port)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        client.post("/api/session", json={"username": "admin", "password": PASSWORD}).raise_for_status()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            client.get("/api/admin/progress").raise_for_status()
            times.append(1000 * (time.perf_counter() - start))
        print(f"{label}: admin progress, {readers} readers x {cases} cases ({answers} answers): first call "
              f"{times[0]:.0f} ms; the next {calls - 1}: p50 {p(times[1:], 50):.1f} ms, p95 {p(times[1:], 95):.1f} ms")
    finally:
        server.kill()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=30)
    parser.add_argument("--cases", type=int, default=20, help="cases each reader answers in the timed round")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="time each reader looks at a case before answering (0: as fast as the server goes)")
    parser.add_argument("--admin-cases", type=int, default=0,
                        help="instead: time the admin's progress page on a finished study of this many cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pv-reading-bench-") as work:
        for kind in [name.strip() for name in args.db.split(",") if name.strip()]:
            if kind == "sqlite":
                if args.admin_cases:
                    run_admin("SQLite (WAL)", None, args.readers, args.admin_cases, Path(work))
                    continue
                run_one("SQLite (WAL)", None, args.readers, args.cases, Path(work), args.think_ms / 1000)
                continue
            from reading_fixtures import PostgresServer

            try:
                server = PostgresServer()
            except BaseException as error:  # pytest.skip outside pytest: no PostgreSQL binaries here
                print(f"PostgreSQL: skipped ({error})")
                continue
            try:
                if args.admin_cases:
                    run_admin("PostgreSQL", server.url(), args.readers, args.admin_cases, Path(work))
                    continue
                run_one("PostgreSQL", server.url(), args.readers, args.cases, Path(work), args.think_ms / 1000)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
