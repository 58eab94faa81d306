"""The live page under serve --monitor: answers recorded per second and per procedure (never per frame, never an id,
a file name or pixels); Stop gives the procedure's prediction id, once, and feedback on it is recorded and counts,
under --auth with the session's CSRF token."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from reading_fixtures import PASSWORD, clinician_accounts  # noqa: F401
from proctovision.inference.recording import FrameNumbers
from proctovision.monitoring.feedback import confirmed_cases, team_figures
from proctovision.monitoring.folder import open_folder
from proctovision.serving.app import create_app
from proctovision.serving.live import LiveSession
from proctovision.serving.live_record import LiveRecording


def jpeg(colour: tuple[int, int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None] + rng.normal(0, 10, (120, 160, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


PURPLE, GREEN, BLACK = jpeg((130, 50, 120)), jpeg((90, 170, 90)), jpeg((0, 0, 0))


class ListRecorder:
    def __init__(self) -> None:
        self.answers: list = []

    def record(self, answers: list) -> list[str]:
        start = len(self.answers)
        self.answers.extend(answers)
        return [f"id{start + index + 1}" for index in range(len(answers))]


def test_seconds_and_the_procedure_are_pooled_as_video_is_and_the_procedure_is_recorded_once() -> None:
    recorder = ListRecorder()
    recording = LiveRecording(recorder, ("normal", "hemorrhoid"), lambda p: ("normal", "hemorrhoid")[int(p[1] >= .5)])
    frames = [FrameNumbers(np.array([0.9, 0.1]), 1.0, 0.01, True, {"too_dark": False}),
              FrameNumbers(np.array([0.6, 0.4]), 3.0, 0.03, False, {"too_dark": False}),
              FrameNumbers(np.array([0.1, 0.9]), 9.0, 0.02, False, {"too_dark": False}),
              FrameNumbers(None, None, 0.01, None, {"too_dark": True})]  # no content area: no numbers, dark
    for frame, second in zip(frames, (0, 0, 1, 1)):
        recording.add(frame, second)
    procedure = recording.end()
    assert [(a.unit, a.frames, a.decision) for a in recorder.answers] == [
        ("second", 2, "normal"), ("second", 2, "hemorrhoid"), ("procedure", 4, "normal")]
    first, second, whole = recorder.answers
    assert first.probabilities == pytest.approx({"normal": 0.75, "hemorrhoid": 0.25})
    assert first.guard["in_distribution"] is True  # one of two frames out: not most
    assert second.guard["in_distribution"] is False and second.guard["ood_score"] == 9.0
    assert second.guard["quality"] == {"too_dark": False}  # one of two dark: not most
    assert whole.probabilities["hemorrhoid"] == pytest.approx(1.4 / 3)  # the three judged frames' mean
    assert whole.guard == {"in_distribution": False, "ood_score": 3.0, "quality": {"too_dark": False}}
    assert whole.latency_s == pytest.approx(0.015)
    assert procedure == {"prediction_id": "id3", "predicted": "normal", "frames": 4,
                         "probabilities": {"normal": 0.533333, "hemorrhoid": 0.466667}}
    assert recording.end() == procedure and len(recorder.answers) == 3, "a procedure ends once"


def test_live_answers_land_in_the_folder_per_second_and_per_procedure(evaluated_run: Path, monitor_dir: Path) -> None:
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir)
    ticks = iter([0.0, 0.1, 0.5, 0.9, 1.2, 1.7, 2.05])
    session = LiveSession(app.state.holder.predictor, recorder=app.state.live_recorder, clock=lambda: next(ticks))
    for data in (PURPLE, PURPLE, GREEN, PURPLE, PURPLE, BLACK):
        session.answer(data, app.state.holder.model_lock)
    procedure = session.end()
    assert session.end() == procedure
    with open_folder(monitor_dir) as monitor:
        answers = monitor.answers()
    assert answers["unit"].tolist() == ["second", "second", "second", "procedure"]
    assert answers["frames"].tolist() == [3, 2, 1, 6] and set(answers["source"]) == {"live"}
    assert answers["id"].iloc[-1] == procedure["prediction_id"]
    assert answers["decision"].iloc[-1] == procedure["predicted"] and procedure["predicted"] in ("normal", "hemorrhoid")
    assert answers["too_dark"].tolist() == [False, False, True, False]  # the black second; 1 of 6 frames overall
    assert answers["latency_s"].notna().all() and (answers["status"] == "answered").all()
    with open_folder(monitor_dir) as monitor, monitor.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT * FROM predictions").mappings().all()
        assert {row["model_sha256"] for row in stored} == {monitor.model_sha256}
    assert not any(session.seconds.procedure in str(value) for row in stored for value in row.values())


def stream(client: TestClient, frames: list[bytes]) -> dict | None:
    """One procedure through the socket: frames, then Stop; the procedure's answer, and the socket closed."""
    with client.websocket_connect("/ws/live") as socket:
        for data in frames:
            socket.send_bytes(data)
            assert "error" not in socket.receive_json()
        socket.send_text("end")
        procedure = socket.receive_json()["procedure"]
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 1000
    return procedure


def test_feedback_on_the_procedure_under_auth_is_recorded_and_counts(evaluated_run: Path, monitor_dir: Path,
                                                                      clinician_accounts) -> None:
    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir, auth=clinician_accounts)
    client = TestClient(app)
    signed = client.post("/auth/session", json={"username": "alice", "password": PASSWORD})
    csrf = signed.json()["csrf_token"]
    procedure = stream(client, [PURPLE] * 3)
    assert procedure["frames"] == 3
    other = "normal" if procedure["predicted"] == "hemorrhoid" else "hemorrhoid"
    body = {"prediction_id": procedure["prediction_id"], "verdict": "disagree", "label": other,
            "reason": "Clinical context"}
    assert client.post("/feedback", json=body).status_code == 403, "the session's CSRF token is required"
    answer = client.post("/feedback", json=body, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 201 and answer.json()["clinician"] == "alice"
    with open_folder(monitor_dir) as monitor:
        assert monitor.answers()["unit"].tolist() == ["second", "procedure"]
        confirmed = confirmed_cases(monitor)
        team = team_figures(monitor)
    assert confirmed.to_dict("records") == [{"prediction_id": procedure["prediction_id"], "label": other,
                                             "source": "feedback"}]
    assert team["n_feedback"] == 1 and team["by_clinician"]["alice"]["value"] == 1.0


def test_without_monitoring_nothing_is_recorded_and_stop_gives_no_id(evaluated_run: Path) -> None:
    client = TestClient(create_app(evaluated_run, load_in_background=False))
    assert stream(client, [PURPLE]) is None
    with client.websocket_connect("/ws/live") as socket:
        socket.send_text("hello")
        assert "binary" in socket.receive_json()["error"]


def test_a_procedure_the_folder_cannot_take_is_said_and_the_stream_was_answered(evaluated_run: Path,
                                                                                 monitor_dir: Path, caplog) -> None:
    class Failing:
        def record(self, answers: list) -> list[str]:
            raise OSError("disk full")

    app = create_app(evaluated_run, load_in_background=False, monitor=monitor_dir)
    app.state.live_recorder = Failing()
    with TestClient(app) as client:
        with client.websocket_connect("/ws/live") as socket:
            socket.send_bytes(PURPLE)
            assert socket.receive_json()["frame"] == 1
            socket.send_text("end")
            assert socket.receive_json() == {"procedure": None, "error": "the procedure was not recorded (OSError)"}
        with client.websocket_connect("/ws/live") as socket:  # a page that goes away without Stop: logged only
            socket.send_bytes(PURPLE)
            assert socket.receive_json()["frame"] == 1
    assert "a live procedure was not recorded for monitoring (OSError)" in caplog.text
