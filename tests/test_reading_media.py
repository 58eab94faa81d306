"""What readers see: frames cropped to their content area where the manifest, --crop-content or the model says so
(burned-in border text never served), a warning for text-like borders shown whole, and a CAM that covers exactly
the image it is drawn over."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reading_fixtures import PASSWORD
from sqlalchemy import select
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.imaging.content_area import find_content_area
from proctovision.imaging.images import read_image
from proctovision.reading import media
from proctovision.reading.db import Case, ReadingError
from proctovision.reading.project import add_user, init_project


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 1280x1024 processor frames with fake names burned into the border, and one black frame."""
    root = tmp_path_factory.mktemp("frames")
    manifest = generate_endoscopy(root, patients=4, images_per_patient=1, seed=3)["hemorrhoid"]
    Image.new("RGB", (320, 256)).save(root / "images" / "black.png")
    rows = pd.read_csv(manifest)
    rows.to_csv(root / "plain.csv", index=False)
    rows.assign(crop="content").to_csv(root / "cropped.csv", index=False)
    black = pd.DataFrame([{"path": "images/black.png", "label": "normal", "patient_id": "SYN9999", "crop": "content"}])
    pd.concat([rows.assign(crop="content"), black]).to_csv(root / "with_black.csv", index=False)
    return root


def served(project) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per case: (the PNG readers get, the source frame)."""
    with project.session() as session:
        cases = session.scalars(select(Case)).all()
        return {case.id: (np.asarray(Image.open(media.image_file(project.root, case.id)).convert("RGB")),
                          np.asarray(read_image(case.path).convert("RGB"))) for case in cases}


def test_the_manifests_crop_column_shows_the_content_area_only(frames: Path, tmp_path: Path):
    project = init_project(tmp_path / "p", frames / "cropped.csv", "hemorrhoid", "study")
    shown = served(project)
    assert len(shown) == 4 and project.notes == []
    for image, frame in shown.values():
        area = find_content_area([frame])
        assert frame.shape == (1024, 1280, 3) and image.shape[1::-1] == (area.box[2] - area.box[0],
                                                                           area.box[3] - area.box[1])
        assert np.array_equal(image, area.crop_array(frame))  # the field, everything outside it black
        assert media.border_text_share(frame) > media.TEXT_SHARE and media.border_text_share(image) == 0


def test_a_frame_without_content_area_is_left_out_not_shown_whole(frames: Path, tmp_path: Path):
    project = init_project(tmp_path / "p", frames / "with_black.csv", "hemorrhoid", "study")
    assert len(served(project)) == 4
    assert len(project.notes) == 1 and "images/black.png: left out: every frame is dark" in project.notes[0]
    with pytest.raises(ReadingError, match="no case"):
        black_only = frames / "black_only.csv"
        pd.read_csv(frames / "with_black.csv").tail(1).to_csv(black_only, index=False)
        init_project(tmp_path / "q", black_only, "hemorrhoid", "study")


def test_init_warns_of_text_like_borders_and_crop_content_crops_any_frames(frames: Path, tmp_path: Path):
    runner = CliRunner()
    whole = runner.invoke(app, ["reading", "init", str(tmp_path / "whole"), "--manifest", str(frames / "plain.csv"),
                                "--task", "hemorrhoid", "--kind", "study"])
    assert whole.exit_code == 0, whole.output
    assert "4 of 4 frame(s) are shown whole" in whole.output and "--crop-content" in whole.output
    cropped = runner.invoke(app, ["reading", "init", str(tmp_path / "cropped"), "--manifest",
                                  str(frames / "plain.csv"), "--task", "hemorrhoid", "--kind", "study",
                                  "--crop-content"])
    assert cropped.exit_code == 0, cropped.output
    assert "shown whole" not in cropped.output
    from proctovision.reading.project import open_project

    for folder, cropped_size in (("whole", False), ("cropped", True)):
        project = open_project(tmp_path / folder)
        for image, frame in served(project).values():
            assert (image.shape != frame.shape) is cropped_size
        project.close()


def test_a_model_trained_on_the_content_area_crops_the_cases_and_its_cam_covers_them_exactly(
        frames: Path, tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    real = media.load_model

    def cropping_model(source: Path):
        predictor = real(source)
        predictor.card["preprocessing"]["crop"] = "content"  # as a run trained on `ingest --crop-content` says
        return predictor

    monkeypatch.setattr(media, "load_model", cropping_model)
    project = init_project(tmp_path / "p", frames / "plain.csv", "hemorrhoid", "study", arms=("aided",),
                           model=run_dir)
    add_user(project, "alice", "reader", PASSWORD)
    assert project.notes == []
    for case_id, (image, frame) in served(project).items():
        assert image.shape != frame.shape
        cam = Image.open(media.cam_file(project.root, case_id))
        assert cam.mode == "RGBA"
        assert abs(cam.width / cam.height - image.shape[1] / image.shape[0]) < 0.01  # the image's aspect ratio
        alpha = np.asarray(cam.getchannel("A"))
        assert alpha[0, 0] == 0 and alpha[cam.height // 2, cam.width // 2] == 255  # heat on the field only


def test_a_cam_of_the_whole_frame_is_cut_to_the_area_shown():
    """An overlay computed on the whole frame, shown over a cropped case: the canvas holds exactly the overlay's
    pixels of the shown box, at the box's aspect ratio."""
    width, height = 320, 256  # the overlay of a 1280x1024 frame at a quarter of its size
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    picture = np.stack([xx % 256, yy % 256, np.zeros_like(xx)], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    area = find_content_area([_field_frame()])
    shown = media.Rendered(area, (1280, 1024))
    canvas = Image.open(io.BytesIO(media.reframe_cam(buffer.getvalue(), (0, 0, 1280, 1024), shown)))
    left, top, right, bottom = area.box
    assert canvas.size == (round((right - left) / 4), round((bottom - top) / 4))
    pixels = np.asarray(canvas)
    y, x = canvas.height // 2, canvas.width // 2
    assert tuple(pixels[y, x, :2]) == ((left // 4 + x) % 256, (top // 4 + y) % 256)
    whole = media.Rendered(None, (1280, 1024))
    assert media.reframe_cam(buffer.getvalue(), (0, 0, 1280, 1024), whole) == buffer.getvalue()


def _field_frame() -> np.ndarray:
    """A black 1280x1024 frame with a bright disc (the field) off centre."""
    yy, xx = np.mgrid[:1024, :1280]
    frame = np.zeros((1024, 1280, 3), dtype=np.uint8)
    frame[(xx - 760) ** 2 + (yy - 512) ** 2 < 400 ** 2] = 150
    return frame
