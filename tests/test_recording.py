"""What recorders receive: video pooled per second and per procedure (never per frame); `video --monitor`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from monitoring_fixtures import evaluated_run, monitor_dir, monitor_template  # noqa: F401
from proctovision.inference.recording import video_answers
from proctovision.inference.video.options import FrameRow, VideoResult


def decide(probabilities: np.ndarray) -> str:
    return ("normal", "hemorrhoid")[int(probabilities[1] >= 0.5)]


def test_video_is_pooled_per_second_and_per_procedure() -> None:
    rows = [FrameRow(index, index / 30, np.array([0.8, 0.2]) if index < 30 else np.array([0.1, 0.9]),
                     np.zeros(2), 0, 0.01, 2000.0 if index >= 45 else 1.0) for index in range(60)]
    answers = video_answers(VideoResult(rows=rows, classes=("normal", "hemorrhoid"), ood_threshold=100.0), decide)
    assert [answer.unit for answer in answers] == ["second", "second", "procedure"]
    assert [answer.frames for answer in answers] == [30, 30, 60]
    assert [answer.decision for answer in answers] == ["normal", "hemorrhoid", "hemorrhoid"]
    assert answers[2].probabilities["hemorrhoid"] == pytest.approx(0.55)
    assert answers[0].guard["in_distribution"] and answers[1].guard["in_distribution"]  # 15 of 30 frames flagged
    assert video_answers(VideoResult(rows=[], classes=("a", "b")), decide) == []


def test_frames_with_the_guards_own_verdicts_pool_by_majority_and_without_judged_frames_give_no_class() -> None:
    from proctovision.inference.recording import FrameNumbers, pooled_answer

    dark = FrameNumbers(None, None, 0.02, None, {"too_dark": True, "blurred": False})
    seen = FrameNumbers(np.array([0.4, 0.6]), 7.0, 0.04, False, {"too_dark": False, "blurred": False})
    unjudged = pooled_answer([dark, dark], ("normal", "hemorrhoid"), decide, None, "second")
    assert (unjudged.probabilities, unjudged.decision, unjudged.frames) == ({}, None, 2)
    assert unjudged.guard == {"in_distribution": None, "ood_score": None,
                              "quality": {"too_dark": True, "blurred": False}}
    mixed = pooled_answer([dark, dark, seen], ("normal", "hemorrhoid"), decide, 100.0, "procedure")
    assert mixed.decision == "hemorrhoid" and mixed.probabilities == pytest.approx({"normal": 0.4, "hemorrhoid": 0.6})
    assert mixed.guard == {"in_distribution": False, "ood_score": 7.0,  # the guard's verdict, not 7 > 100
                           "quality": {"too_dark": True, "blurred": False}}
    assert mixed.latency_s == pytest.approx(0.02)


def test_video_command_records_seconds_not_frames(evaluated_run: Path, monitor_dir: Path, tmp_path: Path) -> None:
    from proctovision.cli import app
    from proctovision.data.synthetic.video import write_demo_video
    from proctovision.monitoring.folder import open_folder

    video = write_demo_video(tmp_path / "scope.mp4", size=(160, 128), fps=10, seconds=2.0, segments=[(0.5, 1.0)],
                             seed=1)
    result = CliRunner().invoke(app, ["video", str(evaluated_run), str(video.path), "--out", str(tmp_path / "out"),
                                      "--no-annotate", "--monitor", str(monitor_dir)])
    assert result.exit_code == 0, result.output
    with open_folder(monitor_dir) as monitor:
        answers = monitor.answers()
    assert answers["unit"].tolist() == ["second", "second", "procedure"]
    assert answers["frames"].tolist() == [10, 10, 20] and set(answers["source"]) == {"video"}
