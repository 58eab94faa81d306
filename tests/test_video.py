"""Video: segments where the generated video has its lesion, burned-in text never copied, live frames dropped
when the model is slower than the source, smoothing and hysteresis, and the `video` command."""
from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner
from video_models import export_detector

from proctovision.cli import app
from proctovision.data.synthetic.video import write_demo_video
from proctovision.core.errors import UserError
from proctovision.inference.predictor import load_predictor
from proctovision.inference.video import (
    FrameModel, Hysteresis, Smoother, VideoOptions, run_file, run_live, segments,
)

SIZE = (320, 256)
LESIONS = [(1.0, 2.5), (4.0, 5.2)]


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("video")
    truth = write_demo_video(folder / "scope.mp4", size=SIZE, fps=30, seconds=6.0, segments=LESIONS, seed=3)
    return Path(truth.path), truth.to_dict()


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    return export_detector(tmp_path_factory.mktemp("model") / "detector")


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_file_mode_finds_the_lesion_where_the_video_has_it(demo_video, detector, tmp_path):
    path, truth = demo_video
    result = run_file(load_predictor(detector), str(path), tmp_path / "out", VideoOptions(batch_size=8))
    assert len(result.rows) == truth["n_frames"] == 180
    found = segments(result)
    lesions = found[found["class"] == "hemorrhoid"]
    assert len(lesions) == len(LESIONS)
    for (start, end), (_, row) in zip(LESIONS, lesions.iterrows()):
        assert abs(row["start_s"] - start) <= 0.5 and abs(row["end_s"] - end) <= 0.5
        assert row["peak_probability"] >= 0.5
    written = pd.read_csv(tmp_path / "out" / "segments.csv")
    assert written["class"].tolist() == found["class"].tolist()
    assert json.loads((tmp_path / "out" / "segments.json").read_text())[1]["class"] == "hemorrhoid"
    frames = pd.read_csv(tmp_path / "out" / "frames.csv")
    assert len(frames) == 180 and {"prob_hemorrhoid", "smoothed_hemorrhoid", "shown"} <= set(frames.columns)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames_seen"] == summary["frames_processed"] == 180 and summary["frames_dropped"] == 0
    assert summary["fps_achieved"] > 0 and summary["mode"] == "file"


def test_annotated_video_shows_no_burned_in_text(demo_video, detector, tmp_path):
    path, truth = demo_video
    run_file(load_predictor(detector), str(path), tmp_path / "out", VideoOptions(annotate_width=SIZE[0]))
    source, annotated = decoded(path), decoded(tmp_path / "out" / "annotated.mp4")
    assert len(annotated) == len(source)
    assert annotated[0].shape[1] == SIZE[0] and annotated[0].shape[0] >= SIZE[1]
    boxes = truth["text_boxes"]
    for frame_in, frame_out in zip(source[::10], annotated[::10]):
        for left, top, right, bottom in boxes:
            assert frame_in[top:bottom, left:right].max() > 200
            assert frame_out[top:bottom, left:right].max() < 40
        centre = frame_out[SIZE[1] // 2 - 20: SIZE[1] // 2 + 20, SIZE[0] // 2 + 30: SIZE[0] // 2 + 70]
        assert centre.mean() > 60


def test_the_model_sees_the_crop_only_when_its_spec_says_so(demo_video, tmp_path):
    path, _ = demo_video
    pixels = decoded(path)[0]
    cropped = load_predictor(export_detector(tmp_path / "cropped", crop="content"))
    whole = load_predictor(export_detector(tmp_path / "whole"))
    from proctovision.imaging.content_area import find_content_area

    area = find_content_area([pixels])
    assert np.array_equal(FrameModel(whole, area).to_array(pixels), whole.spec.to_array(Image.fromarray(pixels)))
    assert np.array_equal(FrameModel(cropped, area).to_array(pixels),
                          cropped.spec.prepared(Image.fromarray(area.crop_array(pixels))))
    assert np.allclose(FrameModel(cropped, area).to_array(pixels),
                       cropped.spec.to_array(Image.fromarray(pixels)), atol=0.2)


class SlowPredictor:
    """The detector behind a fixed delay per call: a model slower than a 30 frames/s source."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def raw_probabilities(self, batch):
        time.sleep(self.delay)
        return self.inner.raw_probabilities(batch)


def test_live_mode_drops_frames_when_the_model_is_slower_than_the_source(demo_video, detector, tmp_path):
    path, truth = demo_video
    options = VideoOptions(annotate=False, max_frames=60)
    slow = run_live(SlowPredictor(load_predictor(detector), 0.1), str(path), tmp_path / "slow", options)
    assert slow.frames_seen == 60
    assert slow.dropped > 20
    assert len(slow.rows) + slow.dropped == slow.frames_seen
    summary = json.loads((tmp_path / "slow" / "summary.json").read_text())
    assert summary["frames_dropped"] == slow.dropped and summary["mode"] == "live"
    assert summary["latency_ms_p95"] >= 100
    fast = run_live(load_predictor(detector), str(path), None, options)
    assert fast.dropped == 0 and len(fast.rows) == 60


def test_ema_and_window_smoothing():
    ema = Smoother("ema", 0.5, 3)
    values = [ema.update(np.array([1.0 - p, p]))[1] for p in (0.0, 1.0, 1.0, 1.0)]
    assert values == pytest.approx([0.0, 0.5, 0.75, 0.875])
    window = Smoother("window", 0.5, 3)
    values = [window.update(np.array([1.0 - p, p]))[1] for p in (0.0, 1.0, 1.0, 1.0)]
    assert values == pytest.approx([0.0, 0.5, 2 / 3, 1.0])
    with pytest.raises(UserError, match="ema or window"):
        Smoother("median", 0.5, 3)


def test_hysteresis_does_not_flicker_around_the_threshold():
    binary = Hysteresis(2, 0.5, 0.1)
    shown = [binary.update(np.array([1 - p, p])) for p in (0.3, 0.55, 0.45, 0.58, 0.62, 0.45, 0.42, 0.39, 0.5)]
    assert shown == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    three = Hysteresis(3, None, 0.1)
    shown = [three.update(np.array(p)) for p in ([0.6, 0.3, 0.1], [0.4, 0.45, 0.15], [0.3, 0.5, 0.2])]
    assert shown == [0, 0, 1]


def test_video_command_writes_outputs_and_refuses_bad_input(demo_video, detector, tmp_path):
    path, _ = demo_video
    runner = CliRunner()
    result = runner.invoke(app, ["video", str(detector), str(path), "--out", str(tmp_path / "cli"),
                                 "--smoothing", "window", "--no-annotate"])
    assert result.exit_code == 0, result.output
    assert "180 of 180 frame(s)" in result.output and "0 dropped" in result.output
    assert (tmp_path / "cli" / "segments.csv").is_file() and not (tmp_path / "cli" / "annotated.mp4").exists()
    live = runner.invoke(app, ["video", str(detector), str(path), "--out", str(tmp_path / "live"), "--live",
                               "--max-frames", "30", "--no-annotate"])
    assert live.exit_code == 0, live.output
    assert "of 30 frame(s)" in live.output and "latency p95" in live.output
    assert json.loads((tmp_path / "live" / "summary.json").read_text())["mode"] == "live"
    again = runner.invoke(app, ["video", str(detector), str(path), "--out", str(tmp_path / "cli")])
    assert again.exit_code == 1 and "--overwrite" in again.output
    missing = runner.invoke(app, ["video", str(detector), str(tmp_path / "none.mp4"), "--out", str(tmp_path / "x")])
    assert missing.exit_code != 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    from proctovision.inference.video import VideoError

    with pytest.raises(VideoError, match="broken.mp4"):
        run_file(load_predictor(detector), str(broken), None)
    cam = runner.invoke(app, ["video", str(detector), str(path), "--out", str(tmp_path / "y"), "--cam-every", "5"])
    assert cam.exit_code == 1 and "run folder" in cam.output


def test_grad_cam_overlay_every_nth_frame_from_a_run_folder(demo_video, run_dir, tmp_path):
    path, _ = demo_video
    predictor = load_predictor(run_dir)
    options = VideoOptions(max_frames=24, cam_every=8, annotate_width=SIZE[0], batch_size=8)
    run_file(predictor, str(path), tmp_path / "cam", options)
    run_file(predictor, str(path), tmp_path / "plain", VideoOptions(max_frames=24, annotate_width=SIZE[0]))
    with_cam, plain = decoded(tmp_path / "cam" / "annotated.mp4"), decoded(tmp_path / "plain" / "annotated.mp4")
    assert len(with_cam) == len(plain) == 24
    field = (slice(60, 200), slice(100, 220))
    difference = [np.abs(a[field].astype(int) - b[field].astype(int)).mean() for a, b in zip(with_cam, plain)]
    assert min(difference) > 5
    summary = json.loads((tmp_path / "cam" / "summary.json").read_text())
    assert summary["backend"] == "pytorch" and summary["frames_processed"] == 24


@pytest.mark.parametrize("name, codec, decoder", [("scope.avi", "mjpeg", "mjpeg"), ("scope.mkv", "h264", "h264"),
                                                   ("scope.mov", "h264", "h264"), ("scope.mp4", "libx265", "hevc")])
def test_other_containers_and_codecs_decode_every_frame(detector, tmp_path, name, codec, decoder):
    video = write_demo_video(tmp_path / name, size=(160, 128), fps=10, seconds=1.0, segments=[], codec=codec)
    result = run_file(load_predictor(detector), video.path, None, VideoOptions(batch_size=4))
    assert len(result.rows) == video.n_frames == 10
    with av.open(video.path) as container:
        assert container.streams.video[0].codec_context.name == decoder


def test_a_truncated_video_is_classified_up_to_the_damage_and_says_so(detector, tmp_path):
    video = write_demo_video(tmp_path / "whole.mkv", size=(160, 128), fps=10, seconds=3.0, segments=[])
    data = Path(video.path).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    result = run_file(load_predictor(detector), str(tmp_path / "cut.mkv"), tmp_path / "out",
                      VideoOptions(batch_size=4, annotate=False))
    assert 0 < len(result.rows) < video.n_frames
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames_processed"] == len(result.rows)


def test_frames_carry_the_ood_guard_and_each_answer_is_audited(demo_video, detector, tmp_path, monkeypatch):
    """A model with a detector: every frame gets its score and in_distribution flag (frames.csv, summary), and
    --audit-log gets one line per classified frame, naming no file."""
    from proctovision.serving.audit import AuditLog, model_identity

    class Detector:
        threshold = 0.5

        @staticmethod
        def scores(features: np.ndarray) -> np.ndarray:
            return features[:, 0]

    predictor = load_predictor(detector)
    monkeypatch.setattr(type(predictor), "ood_detector", property(lambda self: Detector()))
    monkeypatch.setattr(type(predictor), "raw_outputs",
                        lambda self, batch: (self.raw_probabilities(batch), batch.mean(axis=(2, 3))[:, :1]))
    options = VideoOptions(annotate=False, max_frames=40, audit=AuditLog(tmp_path / "audit.log",
                                                                         model_identity(predictor)))
    result = run_file(predictor, str(demo_video[0]), tmp_path / "out", options)
    options.audit.close()
    frames = pd.read_csv(tmp_path / "out" / "frames.csv")
    assert len(frames) == 40 and frames["ood_score"].notna().all()
    assert (frames["in_distribution"] == (frames["ood_score"] <= 0.5)).all()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames_out_of_distribution"] == int((frames["ood_score"] > 0.5).sum())
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert len(lines) == len(result.rows) == 40 and {line["source"] for line in lines} == {"video"}
    assert [line["frame"] for line in lines] == list(range(40))
    assert "scope" not in (tmp_path / "audit.log").read_text(), "no file name in the audit trail"


def test_frames_decoded_small_give_the_model_what_full_size_frames_give(demo_video, tmp_path):
    path, _ = demo_video
    from proctovision.imaging.content_area import find_content_area

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        pixels = frame.to_ndarray(format="rgb24")
        area = find_content_area([pixels])
        for name, crop in (("whole", None), ("cropped", "content")):
            model = FrameModel(load_predictor(export_detector(tmp_path / name, crop=crop)), area)
            factor, _ = model.reduction(frame.width, frame.height)
            assert factor >= 2, "a 320x256 frame for a 64 px model is reduced before the resize"
            reduced, full = model.to_array(frame), model.to_array(pixels)
            assert reduced.shape == full.shape == (3, 64, 64)
            assert np.abs(reduced - full).mean() < 0.05, name


def test_a_video_whose_frames_are_over_the_pixel_budget_is_refused_before_decoding(demo_video, monkeypatch):
    from proctovision.inference.video import open_source

    monkeypatch.setenv("PROCTOVISION_PIXEL_BUDGET", str(SIZE[0] * SIZE[1] * 3 - 1))
    with pytest.raises(UserError, match=r"320 x 256 x 3 samples = 245,760 pixel values, over the budget"):
        open_source(str(demo_video[0]))
    monkeypatch.setenv("PROCTOVISION_PIXEL_BUDGET", str(SIZE[0] * SIZE[1] * 3))
    open_source(str(demo_video[0])).close()
