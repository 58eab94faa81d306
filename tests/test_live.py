"""The live WebSocket: one JSON answer per frame, per-connection smoothing, token checked, bad frames named."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

import av
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect
from conftest import own_run
from video_models import export_detector, fit_blur_cut, jpeg_frames

from proctovision.data.synthetic.video import write_demo_video
from proctovision.serving.app import create_app
from proctovision.serving.live import LiveDecision, LiveSession


@pytest.fixture(scope="module")
def frames_and_model(tmp_path_factory) -> tuple[list[bytes], Path]:
    folder = tmp_path_factory.mktemp("live")
    video = write_demo_video(folder / "v.mp4", size=(320, 256), fps=10, seconds=4.0, segments=[(1.0, 2.5)], seed=3)
    # the detector's "training" frames: the same scene sampled at other moments (7 frames a second, not 10)
    training = write_demo_video(folder / "t.mp4", size=(320, 256), fps=7, seconds=6.0, segments=[(1.0, 2.5)], seed=3)
    model = export_detector(folder / "model")
    fit_blur_cut(model, jpeg_frames(training.path))
    return jpeg_frames(video.path), model


def test_frames_get_a_smoothed_class_that_follows_the_lesion(frames_and_model):
    encoded, model = frames_and_model
    with TestClient(create_app(model, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        answers = []
        for data in encoded:
            ws.send_bytes(data)
            answers.append(ws.receive_json())
    shown = [answer["shown"] for answer in answers]
    named = [name for name in shown if name]
    assert named[0] == "normal" and "hemorrhoid" in shown[10:26] and named[-1] == "normal"
    assert sum(answer["withheld"] for answer in answers) <= 2, "the model's own blur cut flags about 1% of its frames"
    assert [answer["frame"] for answer in answers] == list(range(1, len(encoded) + 1))
    left, top, right, bottom = answers[-1]["content_box"]
    assert 0 < left < right < 1 and 0 <= top < bottom <= 1
    assert answers[0]["heatmap_png_base64"] is None
    for answer in answers:  # the label never names a class /predict's rule would not give the smoothed numbers
        if answer["shown"] == "hemorrhoid":
            assert answer["smoothed"]["hemorrhoid"] >= answer["threshold"]
        elif answer["shown"] == "normal":
            assert answer["smoothed"]["hemorrhoid"] < answer["threshold"]


def test_a_broken_frame_is_answered_and_the_stream_goes_on(frames_and_model):
    encoded, model = frames_and_model
    with TestClient(create_app(model, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        ws.send_bytes(b"not an image")
        assert "unreadable frame" in ws.receive_json()["error"]
        ws.send_bytes(encoded[0])
        assert ws.receive_json()["shown"] == "normal"


def test_the_token_is_required_when_set(frames_and_model):
    encoded, model = frames_and_model
    with TestClient(create_app(model, token="s3cret", load_in_background=False)) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws/live?token=wrong") as ws:
            ws.receive_json()
        assert refused.value.code == 1008
        with client.websocket_connect("/ws/live?token=s3cret") as ws:
            ws.send_bytes(encoded[0])
            assert ws.receive_json()["shown"] in {"normal", "hemorrhoid"}
        assert "assets/live.js" in client.get("/live").text and "getUserMedia" in client.get("/assets/live.js").text


def test_a_camera_that_starts_black_keeps_its_stream(frames_and_model, tmp_path):
    """A content-cropping model: black first frames are answered (too dark, no class) and the stream goes on to
    judge the lit frames that follow (a black first frame used to drop the socket with 1006)."""
    encoded, _ = frames_and_model
    model = export_detector(tmp_path / "cropping", crop="content")
    black = io.BytesIO()
    Image.new("RGB", (320, 256)).save(black, format="JPEG")
    with TestClient(create_app(model, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        answers = []
        for data in [black.getvalue()] * 3 + encoded[:3] + [black.getvalue()] + encoded[3:5]:
            ws.send_bytes(data)
            answers.append(ws.receive_json())
    assert all(answer["shown"] is None and answer["quality"]["too_dark"] for answer in answers[:3])
    assert "dark" in answers[0]["warning"]
    lit = answers[3:6] + answers[7:]  # judged after the black start (the guard may still withhold a class)
    assert all(answer["content_box"] is not None and not answer["quality"]["too_dark"] for answer in lit)
    assert all("No content area" not in (answer["warning"] or "") for answer in lit)
    assert [answer["frame"] for answer in answers] == list(range(1, 10))




def test_the_decision_rule_is_predicts_with_a_band_where_no_class_is_shown():
    decision = LiveDecision(2, threshold=0.514, margin=0.1)
    probabilities = [0.3, 0.55, 0.62, 0.50, 0.46, 0.40, 0.55]
    shown = [decision.update(np.array([1 - p, p])) for p in probabilities]
    # on at 0.614, off below 0.414; between, where /predict's rule and the last label disagree (0.55 after
    # "normal", 0.50 and 0.46 after "hemorrhoid"), no class: never "hemorrhoid 0.46" at threshold 0.514
    assert shown == [0, None, 1, None, None, 0, None]


def test_a_frame_scores_as_the_same_upload_does_on_predict(frames_and_model):
    encoded, model = frames_and_model
    with TestClient(create_app(model, load_in_background=False)) as client:
        single = client.post("/predict", files={"file": ("f.jpg", encoded[12], "image/jpeg")}).json()
        with client.websocket_connect("/ws/live") as ws:
            ws.send_bytes(encoded[12])
            live = ws.receive_json()
    assert live["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)
    assert live["smoothed"] == pytest.approx(single["probabilities"], abs=1e-4), "the first frame is not smoothed yet"
    assert live["threshold"] == single["threshold"]


def test_a_dark_start_is_no_failure_and_dark_frames_are_withheld(frames_and_model):
    encoded, model = frames_and_model
    dark = io.BytesIO()
    Image.new("RGB", (320, 256)).save(dark, format="JPEG")
    with TestClient(create_app(model, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        answers = []
        for data in (dark.getvalue(), dark.getvalue(), *encoded[:3], dark.getvalue()):
            ws.send_bytes(data)
            answers.append(ws.receive_json())
    for answer in answers[:2]:
        assert answer["withheld"] and answer["shown"] is None and answer["probabilities"] is None
        assert answer["quality"]["too_dark"] and answer["content_box"] is None and answer["warning"]
    assert [answer["shown"] for answer in answers[2:5]] == ["normal"] * 3
    assert answers[2]["content_box"] is not None, "the content area comes from the first frames that are not dark"
    assert answers[5]["withheld"] and answers[5]["quality"]["too_dark"] and answers[5]["content_box"] is not None


def test_a_noise_frame_is_flagged_out_of_distribution_as_on_predict(run_dir: Path, tmp_path: Path):
    from proctovision.workflows.ood import fit_run_ood

    run = own_run(run_dir, tmp_path)
    fit_run_ood(run)
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 320, 3), dtype=np.uint8)).save(noise, "JPEG")
    with TestClient(create_app(run, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        ws.send_bytes(noise.getvalue())
        answer = ws.receive_json()
        single = client.post("/predict?heatmap=false", files={"file": ("n.jpg", noise.getvalue(), "image/jpeg")}).json()
    assert answer["in_distribution"] is False and answer["ood_score"] == pytest.approx(single["ood_score"], rel=1e-4)
    assert answer["withheld"] and answer["shown"] is None and answer["probabilities"] is None
    assert "does not look like the images the model was trained on" in answer["warning"]


def test_live_answers_are_audited_per_procedure_and_per_second(frames_and_model, tmp_path: Path):
    encoded, model = frames_and_model
    app = create_app(model, load_in_background=False, audit_log=tmp_path / "audit.log")
    ticks = iter([0.0] + [0.1, 0.5, 0.9, 1.2, 1.7, 2.05] * 2)
    with TestClient(app) as client:
        session = LiveSession(app.state.holder.predictor, app.state.holder.audit, clock=lambda: next(ticks))
        for data in encoded[:6]:
            session.answer(data, app.state.holder.model_lock)
        session.close()
        with client.websocket_connect("/ws/live") as ws:  # a second procedure, through the socket
            ws.send_bytes(encoded[0])
            ws.receive_json()
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    first = [line for line in lines if line["procedure"] == session.seconds.procedure]
    assert [(line["second"], line["frames"]) for line in first] == [(0, 3), (1, 2), (2, 1)]
    assert all(line["source"] == "live" and line["input_sha256"] is None for line in lines)
    assert first[0]["decision"] == "normal" and abs(sum(first[0]["probabilities"].values()) - 1) < 1e-4
    assert set(first[0]["quality"]) == {"too_dark", "overexposed", "blurred"}
    assert len({line["procedure"] for line in lines}) == 2


def test_a_foreign_page_cannot_open_the_socket(frames_and_model):
    _, model = frames_and_model
    with TestClient(create_app(model, load_in_background=False)) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
                "/ws/live", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
        assert refused.value.code == 1008
