"""The content area of endoscopy frames: found despite burned-in text, applied by the preprocessing spec."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from proctovision.imaging.content_area import ContentAreaError, crop_content, find_content_area, mark_content_crop
from proctovision.data.synthetic.video import octagon_mask
from proctovision.imaging.preprocessing import Preprocessing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def endoscopy_frame(size=(320, 256), shape="octagon", seed=0, text=True) -> tuple[np.ndarray, np.ndarray]:
    """A textured pink field on black, text in every corner; returns the frame and the true field mask."""
    width, height = size
    radius = min(size) * 0.46
    if shape == "octagon":
        mask = np.asarray(octagon_mask(size, radius)) > 0
    else:
        grid_y, grid_x = np.mgrid[:height, :width]
        mask = (grid_x - width / 2) ** 2 + (grid_y - height / 2) ** 2 <= radius ** 2
    rng = np.random.default_rng(seed)
    field = np.clip(np.array([200, 110, 110]) + rng.normal(0, 25, (height, width, 3)), 0, 255)
    pixels = np.where(mask[..., None], field, 0).astype(np.uint8)
    if text:
        picture = Image.fromarray(pixels)
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default(size=12)
        for x, y in ((4, 2), (4, height - 16), (width - 110, 2), (width - 110, height - 16)):
            draw.text((x, y), "DOE^JANE 1234567", fill=(240, 240, 240), font=font)
        pixels = np.asarray(picture)
    return pixels, mask


@pytest.mark.parametrize("shape", ["octagon", "circle"])
def test_the_field_is_found_and_the_text_left_out(shape):
    pixels, truth = endoscopy_frame(shape=shape)
    area = find_content_area([pixels])
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    expected = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    assert all(abs(got - want) <= 5 for got, want in zip(area.box, expected))
    kept = area.black_outside(pixels)
    text_pixels = (~truth) & (pixels.min(axis=2) > 200)
    assert text_pixels.sum() > 100
    assert kept[text_pixels].max() == 0
    left, top, right, bottom = area.box
    full_mask = np.zeros_like(truth)
    full_mask[top:bottom, left:right] = area.mask
    assert (full_mask & truth).sum() / truth.sum() > 0.97


def test_several_frames_are_averaged_and_a_dark_lumen_inside_stays_in_the_field():
    frames = []
    for seed in range(4):
        pixels, truth = endoscopy_frame(seed=seed)
        pixels = pixels.copy()
        pixels[100:150, 140:180] = 5
        frames.append(pixels)
    area = find_content_area(frames)
    left, top, _, _ = area.box
    assert area.mask[120 - top, 160 - left]


def test_a_dark_frame_has_no_content_area():
    with pytest.raises(ContentAreaError):
        find_content_area([np.zeros((64, 80, 3), dtype=np.uint8)])


def test_the_spec_crops_before_resizing_and_remembers_the_rule():
    pixels, _ = endoscopy_frame()
    image = Image.fromarray(pixels)
    spec = Preprocessing(32, MEAN, STD, crop="content")
    whole = Preprocessing(32, MEAN, STD)
    assert np.array_equal(spec.to_array(image), whole.to_array(crop_content(image)))
    assert not np.array_equal(spec.to_array(image), whole.to_array(image))
    assert Preprocessing.from_dict(spec.to_dict()) == spec
    assert Preprocessing.from_dict({"input_size": 32, "mean": MEAN, "std": STD}).crop is None
    with pytest.raises(ValueError, match="crop rule"):
        whole.with_crop("sideways")


def test_ingest_crop_marks_rows_and_leaves_out_an_image_without_a_field(tmp_path):
    pixels, _ = endoscopy_frame()
    Image.fromarray(pixels).save(tmp_path / "good.png")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "dark.png")
    manifest = pd.DataFrame({"path": [str(tmp_path / "good.png"), str(tmp_path / "dark.png")],
                             "label": ["normal", "normal"], "patient_id": ["a", "b"]})
    marked, failures = mark_content_crop(manifest)
    assert marked["path"].tolist() == [str(tmp_path / "good.png")]
    assert marked["crop"].tolist() == ["content"]
    assert failures[0][0] == str(tmp_path / "dark.png") and "content area" in failures[0][1]


def test_training_refuses_a_split_mixing_cropped_and_whole_images():
    from proctovision.artefacts.runs import RunError
    from proctovision.workflows.training import manifest_crop

    assert manifest_crop(pd.DataFrame({"crop": ["content", "content"]})) == "content"
    assert manifest_crop(pd.DataFrame({"path": ["a"]})) is None
    with pytest.raises(RunError, match="mixes content crops"):
        manifest_crop(pd.DataFrame({"crop": ["content", "square"]}))


def test_crop_recorded_at_ingest_travels_to_the_run_and_its_card(tmp_path):
    from conftest import tiny_run_config
    from typer.testing import CliRunner

    from proctovision.cli import app
    from proctovision.data.manifest import read_manifest, write_manifest
    from proctovision.data.split import holdout_split
    from proctovision.inference.predictor import load_predictor
    from proctovision.workflows.training import train

    for label, tint in (("normal", 0), ("hemorrhoid", 1)):
        for index in range(6):
            pixels, _ = endoscopy_frame(seed=index + 10 * tint)
            pixels = pixels.copy()
            pixels[..., 2] = np.where(pixels[..., 0] > 0, 60 + 60 * tint, 0)
            folder = tmp_path / "stills" / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"P{tint}{index:02d}_{index}.png")
    manifest = tmp_path / "work" / "manifest.csv"
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "stills"), "--crop-content", "--out", str(manifest),
                                      "--patient-regex", r"^(P\d+)_"])
    assert result.exit_code == 0, result.output
    frame = read_manifest(manifest)
    assert set(frame["crop"]) == {"content"}
    write_manifest(holdout_split(frame, 0.2, 0.2, seed=0), tmp_path / "work" / "split.csv")
    run = train(tiny_run_config(tmp_path / "work" / "split.csv", tmp_path / "run", epochs=1), progress=False).root
    predictor = load_predictor(run)
    assert predictor.spec.crop == "content" and predictor.card["preprocessing"]["crop"] == "content"
    image = Image.fromarray(endoscopy_frame(seed=99)[0])
    assert np.array_equal(predictor.prepare(image), predictor.spec.prepared(crop_content(image)))


@pytest.mark.parametrize("size", [(1280, 1024), (1920, 1080), (720, 576), (300, 240), (4000, 3000)])
def test_the_video_reduction_is_the_one_jpeg_dct_scaling_picks_for_stills(size, tmp_path):
    path = tmp_path / "frame.jpg"
    Image.new("RGB", size, (120, 60, 90)).save(path, quality=90)
    with Image.open(path) as still:
        still.draft("RGB", (224, 224))
        assert still.size[0] == size[0] // Preprocessing(224, (0.5,) * 3, (0.5,) * 3).reduction(*size)


def test_a_scaled_area_covers_the_same_field_on_the_reduced_frame():
    pixels = np.zeros((1024, 1280, 3), dtype=np.uint8)
    pixels[np.asarray(octagon_mask((1280, 1024), 440)) > 0] = 180
    area = find_content_area([pixels])
    quarter = area.scaled(4)
    assert quarter.frame_size == (320, 256)
    assert all(abs(a - b / 4) <= 1 for a, b in zip(quarter.box, area.box))
    assert quarter.mask.shape == (quarter.box[3] - quarter.box[1], quarter.box[2] - quarter.box[0])
    assert abs(quarter.mask.mean() - area.mask.mean()) < 0.02
    reduced = np.asarray(Image.fromarray(pixels).reduce(4))
    inside = reduced[quarter.box[1]:quarter.box[3], quarter.box[0]:quarter.box[2]][quarter.mask]
    assert (inside.min(axis=1) > 100).mean() > 0.99, "the scaled mask stays on the field"
    assert area.scaled(1) is area


def test_the_search_runs_on_a_bounded_copy_whatever_the_frame_size(monkeypatch):
    """Its cost does not grow with the frame: a 9000x9000 frame is searched on at most WORK_SIDE pixels a side (a
    quarter-size copy, 2250 px with a 91 px disk, took 24 s), and the field is still found where it is."""
    from scipy import ndimage

    from proctovision.imaging import content_area

    seen = []
    opening = ndimage.binary_opening
    monkeypatch.setattr(content_area.ndimage, "binary_opening",
                        lambda image, **kwargs: seen.append(image.shape) or opening(image, **kwargs))
    frame = np.zeros((9000, 9000, 3), dtype=np.uint8)
    frame[1000:8000, 2000:7000] = 150
    area = find_content_area([frame])
    assert max(seen[0]) <= content_area.WORK_SIDE
    assert all(abs(got - want) <= 2 * content_area.work_step(9000, 9000) for got, want in zip(area.box, (2000, 1000, 7000, 8000)))
    with pytest.raises(ContentAreaError):
        find_content_area([np.zeros((9000, 9000, 3), dtype=np.uint8)])
    assert content_area.work_step(1024, 1280) == content_area.STEP, "ordinary frames are searched as before"
