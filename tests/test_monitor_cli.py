"""monitor outcomes / ack / status from the command line, their refusals, and kill -9 of serve --monitor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from monitoring_fixtures import answer, evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.cli import app
from proctovision.monitoring.folder import open_folder
from reading_fixtures import free_port, wait_for

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def record(folder: Path, answers: list) -> list[str]:
    with open_folder(folder) as monitor:
        recorder = monitor.recorder("serve", monitor.model_sha256)
        ids = recorder.record(answers)
        recorder.close()
    return ids


def test_outcomes_skip_bad_rows_by_name_and_import_idempotently(monitor_dir: Path, tmp_path: Path) -> None:
    ids = record(monitor_dir, [answer(0.9), answer(0.8), answer(0.1), answer(0.2)])
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("prediction_id,label,source\n"
                        f"{ids[0]},hemorrhoid,pathology\n{ids[1]},normal,pathology\n{ids[2]},normal,report\n"
                        f"{ids[3]},fissure,pathology\nnot-an-id,normal,pathology\n{ids[3]},normal,lab\n")
    first = runner.invoke(app, ["monitor", "outcomes", str(monitor_dir), str(outcomes)])
    assert first.exit_code == 0, first.output
    assert "3 added" in first.output and "3 skipped" in first.output
    assert "'fissure' is not a class" in first.output and "not-an-id" in first.output and "'lab'" in first.output
    again = runner.invoke(app, ["monitor", "outcomes", str(monitor_dir), str(outcomes)])
    assert "0 added, 0 changed, 3 already there" in again.output
    status_file = tmp_path / "status.json"
    shown = runner.invoke(app, ["monitor", "status", str(monitor_dir), "--json", str(status_file)])
    assert shown.exit_code == 0, shown.output
    document = json.loads(status_file.read_text())
    assert document["predictions"] == 4 and document["alarms"] == []
    confirmed = document["confirmed"]
    assert confirmed["n"] == 3 and confirmed["accuracy"]["value"] == pytest.approx(2 / 3)
    assert confirmed["accuracy"]["ci"] == pytest.approx([0.2077, 0.9385], abs=1e-4)  # Wilson 2/3 (statsmodels)
    assert confirmed["sensitivity"]["value"] == 1.0 and confirmed["specificity"]["value"] == 0.5
    assert document["estimated"]["accuracy"] == pytest.approx((0.9 + 0.8 + 0.9 + 0.8) / 4)
    assert "calibrated" in document["estimated"]["assumptions"]


def test_missing_columns_and_folders_are_one_line_errors(monitor_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,diagnosis\nx,normal\n")
    result = runner.invoke(app, ["monitor", "outcomes", str(monitor_dir), str(bad)])
    assert result.exit_code != 0 and "missing column(s) prediction_id, label" in str(result.exception)
    result = runner.invoke(app, ["monitor", "status", str(tmp_path)])
    assert result.exit_code != 0 and "not a monitoring folder" in str(result.exception)


def test_alarm_in_status_until_acknowledged(monitor_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    record(monitor_dir, [answer(float(p)) for p in rng.random(150)] + [answer(0.3, ood=True) for _ in range(40)])
    status_file = tmp_path / "s.json"
    runner.invoke(app, ["monitor", "status", str(monitor_dir), "--json", str(status_file)])
    alarms = json.loads(status_file.read_text())["alarms"]
    ood = next(alarm for alarm in alarms if alarm["signal"] == "ood_share")
    assert set(ood) >= {"signal", "first_at", "after_predictions"} and 150 < ood["after_predictions"] <= 190
    result = runner.invoke(app, ["monitor", "ack", str(monitor_dir), str(ood["id"]), "--note", "lamp replaced"])
    assert result.exit_code == 0, result.output
    runner.invoke(app, ["monitor", "status", str(monitor_dir), "--json", str(status_file)])
    after = json.loads(status_file.read_text())
    assert ood["id"] not in [alarm["id"] for alarm in after["alarms"]]
    assert [alarm["note"] for alarm in after["acknowledged"]] == ["lamp replaced"]


def test_kill_9_of_serve_loses_no_acknowledged_answer(evaluated_run: Path, monitor_dir: Path) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (130, 50, 120)).save(buffer, format="PNG")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen([sys.executable, "-m", "proctovision", "serve", str(evaluated_run), "--port", str(port),
                               "--monitor", str(monitor_dir)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)

    def up() -> bool:
        if server.poll() is not None:
            raise RuntimeError(server.stderr.read().decode())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["status"] == "ok"
        except httpx.TransportError:
            return False

    acknowledged, stop = [], threading.Event()

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict?heatmap=false", files={"file": ("a.png", buffer.getvalue())})
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged.append(response.json()["prediction_id"])

    senders = [threading.Thread(target=send) for _ in range(3)]
    try:
        wait_for(up, timeout=60)
        for sender in senders:
            sender.start()
        wait_for(lambda: len(acknowledged) >= 12, timeout=60, step=0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
    finally:
        stop.set()
        for sender in senders:
            sender.join(20)
        if server.poll() is None:
            server.kill()
    with open_folder(monitor_dir) as monitor:
        stored = set(monitor.answers()["id"])
    assert set(acknowledged) <= stored and len(stored) - len(acknowledged) <= 3


def test_the_monitor_group_is_in_its_own_help_panel() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "After go-live" in result.output and "monitor" in result.output
    for command in ("init", "outcomes", "ack", "status", "serve", "report"):
        shown = runner.invoke(app, ["monitor", command, "--help"])
        assert shown.exit_code == 0 and "Example: proctovision monitor" in shown.output
