"""The blur flag's cut: the generic one flags a fifth of the demo's own in-distribution frames; a model's own cut,
the 1st percentile of its training images' sharpness (as the OOD threshold is a quantile of its own data), does not."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import own_run

from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.imaging.images import read_image
from proctovision.imaging.quality import BLUR_QUANTILE, MEASURE_WIDTH, QualityLimits, assess_quality, blur_cut


@pytest.fixture(scope="module")
def demo_sharpness(tmp_path_factory) -> dict[str, np.ndarray]:
    """The demo's 80 frames (20 patients x 4, seed 0), measured as /predict measures them, by patient half."""
    folder = tmp_path_factory.mktemp("demo")
    generate_endoscopy(folder, patients=20, images_per_patient=4, seed=0)
    files = sorted((folder / "images").glob("*.jpg"))
    sharpness = {path.name: assess_quality(read_image(path, min_size=MEASURE_WIDTH)).sharpness for path in files}
    shutil.rmtree(folder)
    train = np.array([value for name, value in sharpness.items() if int(name[3:7]) < 10])
    other = np.array([value for name, value in sharpness.items() if int(name[3:7]) >= 10])
    return {"all": np.array(list(sharpness.values())), "train": train, "other": other}


def test_the_generic_cut_flags_18_of_the_demos_80_frames(demo_sharpness):
    assert int((demo_sharpness["all"] < QualityLimits().blur_variance).sum()) == 18


def test_a_cut_from_the_training_patients_flags_about_one_percent_of_the_others(demo_sharpness):
    cut = blur_cut(demo_sharpness["train"])
    assert cut == pytest.approx(np.quantile(demo_sharpness["train"], 0.01))
    assert cut <= np.sort(demo_sharpness["train"])[1], "at most one training frame of 40 is below it"
    assert (demo_sharpness["other"] < cut).sum() <= 1


def test_blur_cut_ignores_missing_measures():
    assert blur_cut([]) is None
    assert blur_cut([float("nan"), None, 3.0]) == 3.0


def test_fit_run_ood_stores_the_cut_and_the_guard_uses_it(run_dir: Path, tmp_path: Path):
    from proctovision.inference.predictor import load_predictor
    from proctovision.workflows.ood import fit_run_ood

    run = own_run(run_dir, tmp_path)
    summary = fit_run_ood(run)
    cut = summary["quality"]["blur_variance"]
    assert summary["quality"]["quantile"] == BLUR_QUANTILE and cut > 0
    predictor = load_predictor(run)
    assert predictor.blur_variance == pytest.approx(cut)
    measured = {"too_dark": False, "overexposed": False, "blurred": True, "sharpness": cut * 1.01}
    assert predictor.guard(None, measured)["quality"]["blurred"] is False, "sharp enough for this model"
    assert predictor.guard(None, {**measured, "sharpness": cut * 0.99})["quality"]["blurred"] is True


def test_channel_means_are_those_of_the_lit_area_not_of_the_black_border():
    from PIL import Image

    from proctovision.imaging.quality import channel_means

    pixels = np.zeros((200, 320, 3), dtype=np.uint8)
    pixels[40:160, 80:240] = (180, 90, 60)  # the view; the border (75% of the frame) stays black
    means = channel_means(Image.fromarray(pixels))
    assert means == pytest.approx((180, 90, 60), abs=0.5)
    assert assess_quality(Image.fromarray(pixels)).to_dict()["red"] == pytest.approx(means[0], abs=1e-3)
