"""The live WebSocket: one JSON answer per frame, per-connection smoothing, token checked, bad frames named."""
from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect
from video_models import export_detector

from proctovision.data.synthetic.video import write_demo_video
from proctovision.serving.app import create_app


@pytest.fixture(scope="module")
def frames_and_model(tmp_path_factory) -> tuple[list[bytes], Path]:
    folder = tmp_path_factory.mktemp("live")
    video = write_demo_video(folder / "v.mp4", size=(320, 256), fps=10, seconds=4.0, segments=[(1.0, 2.5)], seed=3)
    encoded = []
    with av.open(video.path) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            frame.to_image().save(buffer, format="JPEG", quality=90)
            encoded.append(buffer.getvalue())
    return encoded, export_detector(folder / "model")


def test_frames_get_a_smoothed_class_that_follows_the_lesion(frames_and_model):
    encoded, model = frames_and_model
    with TestClient(create_app(model, load_in_background=False)) as client, client.websocket_connect("/ws/live") as ws:
        answers = []
        for data in encoded:
            ws.send_bytes(data)
            answers.append(ws.receive_json())
    shown = [answer["shown"] for answer in answers]
    assert shown[0] == "normal" and "hemorrhoid" in shown[10:26] and shown[-1] == "normal"
    assert [answer["frame"] for answer in answers] == list(range(1, len(encoded) + 1))
    left, top, right, bottom = answers[-1]["content_box"]
    assert 0 < left < right < 1 and 0 <= top < bottom <= 1
    assert answers[0]["heatmap_png_base64"] is None
    assert all(0 <= answer["smoothed_probability"] <= 1 for answer in answers)


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
        assert "getUserMedia" in client.get("/live").text


def test_a_camera_that_starts_black_keeps_its_stream(frames_and_model, tmp_path):
    """A content-cropping model: black first frames are answered (too dark, no class) and the stream goes on to
    classify the lit frames that follow (a black first frame used to drop the socket with 1006)."""
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
    assert "too dark" in answers[0]["warning"]
    assert all(answer["shown"] in {"normal", "hemorrhoid"} for answer in answers[3:6] + answers[7:])
    assert [answer["frame"] for answer in answers] == list(range(1, 10))
