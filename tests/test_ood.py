"""The out-of-distribution guard and the image-quality flags, on a real ImageNet backbone trained in the test.

In-distribution images come from the demo generator; out-of-distribution ones are real photographs bundled with
scikit-image (read from the installed package's folder, never fetched).
"""
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image, ImageEnhance, ImageFilter

from proctovision.core.config import DataConfig, ModelConfig, RunConfig, TrainerConfig
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.data.ingest import ingest, write_outputs
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.split import holdout_split
from proctovision.inference.ood import fit_detector, load_detector
from proctovision.workflows.ood import fit_run_ood
from proctovision.inference.predictor import load_predictor
from proctovision.imaging.quality import assess_quality
from proctovision.core.tasks import load_task
from proctovision.workflows.training import train

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
NOT_ENDOSCOPY = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png", "coins.png", "moon.png",
                 "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "motorcycle_left.png", "page.png",
                 "text.png", "ihc.png", "cell.png", "clock_motion.png", "color.png", "logo.png", "retina.jpg")


@pytest.fixture(scope="module")
def guarded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """efficientnet_lite0 (packaged ImageNet weights, frozen) with a head trained on demo images at 96 px."""
    root = tmp_path_factory.mktemp("ood")
    task = load_task("hemorrhoid")
    source = generate_endoscopy(root / "data", patients=36, images_per_patient=2, seed=3)["hemorrhoid"]
    write_outputs(ingest(source, task), task, source, root / "manifest.csv")
    write_manifest(holdout_split(read_manifest(root / "manifest.csv"), 0.3, 0.3, seed=0), root / "split.csv")
    config = RunConfig(
        task="hemorrhoid",
        data=DataConfig(split=root / "split.csv", image_size=96, batch_size=32, augmentation="none"),
        model=ModelConfig(backbone="efficientnet_lite0", mode="frozen", weights="imagenet", head="linear"),
        trainer=TrainerConfig(epochs=3, seed=0),
        out=root / "run",
    )
    run = train(config, progress=False).root
    fit_run_ood(run)
    return run, root / "split.csv", load_predictor(run)


def test_detector_flags_photographs_and_passes_endoscopy(guarded_run: tuple):
    run, split, predictor = guarded_run
    photographs = [SKIMAGE_DATA / name for name in NOT_ENDOSCOPY if (SKIMAGE_DATA / name).is_file()]
    assert len(photographs) >= 15
    outside = predictor.predict_files(photographs)
    assert not outside.errors
    flagged = [item.guard["in_distribution"] is False for item in outside.predictions]
    assert np.mean(flagged) >= 0.90, [(Path(i.path).name, i.guard["ood_score"]) for i in outside.predictions]
    rows = read_manifest(split)
    test_paths = [Path(path) for path in rows.loc[rows["split"] == "test", "path"]]
    assert len(test_paths) >= 20
    inside = predictor.predict_files(test_paths)
    flagged_inside = [item.guard["in_distribution"] is False for item in inside.predictions]
    assert len(flagged_inside) == len(test_paths)
    assert np.mean(flagged_inside) <= 0.05


def test_threshold_is_the_validation_quantile_and_summary_describes_splits(guarded_run: tuple):
    import json

    run = guarded_run[0]
    summary = json.loads((run / "ood.json").read_text())
    detector = load_detector(run)
    assert "Lee et al. 2018" in summary["method"] and summary["quantile"] == 0.99
    val_scores = np.array(summary["splits"]["val"]["scores"])
    assert detector.threshold == pytest.approx(np.quantile(val_scores, 0.99), rel=1e-3)
    assert set(summary["splits"]) == {"train", "val", "test"}
    assert (run / "figures" / "ood_scores.png").stat().st_size > 1000


def test_onnx_export_carries_the_guard(guarded_run: tuple, tmp_path: Path):
    from proctovision.deploy.export import export_run

    run, _, torch_predictor = guarded_run
    export_run(run, tmp_path / "export")
    onnx = load_predictor(tmp_path / "export")
    files = [SKIMAGE_DATA / "astronaut.png", SKIMAGE_DATA / "coffee.png"]
    rows = read_manifest(guarded_run[1])
    files += [Path(path) for path in rows.loc[rows["split"] == "test", "path"][:3]]
    from_onnx = onnx.predict_files(files).predictions
    from_torch = torch_predictor.predict_files(files).predictions
    assert [p.guard["in_distribution"] for p in from_onnx] == [p.guard["in_distribution"] for p in from_torch]
    for a, b in zip(from_onnx, from_torch):
        assert a.guard["ood_score"] == pytest.approx(b.guard["ood_score"], rel=1e-3)
    assert onnx.card["ood"]["available"] and onnx.card["ood"]["threshold"] == pytest.approx(
        torch_predictor.ood_detector.threshold)


def test_mahalanobis_score_matches_its_definition():
    """Lee et al.'s score: the smallest squared Mahalanobis distance to a class mean under the shared covariance."""
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))])
    labels = np.array([0] * 200 + [1] * 200)
    detector = fit_detector(features, labels, rng.normal(0, 1, (100, 3)), quantile=0.99)
    from scipy.spatial.distance import mahalanobis

    pooled = np.cov(np.concatenate([features[:200] - features[:200].mean(0), features[200:] - features[200:].mean(0)]).T,
                    bias=True)
    point = np.array([0.5, -1.0, 2.0])
    expected = min(mahalanobis(point, mean, np.linalg.inv(pooled)) ** 2 for mean in detector.means)
    assert detector.scores(point[None])[0] == pytest.approx(expected, rel=0.03)  # shrinkage is slight at n = 400
    assert np.allclose(detector.means, [features[:200].mean(0), features[200:].mean(0)])
    assert detector.in_distribution(detector.scores(np.array([[0.0, 0.0, 0.0], [40.0, -40.0, 40.0]]))).tolist() == [
        True, False]
    with pytest.raises(ValueError, match="quantile"):
        fit_detector(features, labels, features, quantile=1.5)


def demo_picture(tmp_path: Path) -> Image.Image:
    source = generate_endoscopy(tmp_path, patients=1, images_per_patient=1)["hemorrhoid"]
    return Image.open(source.parent / read_manifest(source)["path"].iloc[0]).convert("RGB")


def test_quality_flags_each_problem_on_its_own(tmp_path: Path):
    image = demo_picture(tmp_path)
    good = assess_quality(image)
    assert not (good.too_dark or good.overexposed or good.blurred)
    dark = assess_quality(ImageEnhance.Brightness(image).enhance(0.15))
    assert dark.too_dark and not dark.overexposed
    bright = assess_quality(ImageEnhance.Brightness(image).enhance(3.0))
    assert bright.overexposed and not bright.too_dark and not bright.blurred
    blurred = assess_quality(image.filter(ImageFilter.GaussianBlur(5)))
    assert blurred.blurred and not blurred.too_dark and not blurred.overexposed
    assert blurred.sharpness < good.sharpness / 3


def test_report_shows_the_score_distributions(guarded_run: tuple, tmp_path: Path):
    from proctovision.reporting.report import build_report

    report = build_report([guarded_run[0]], tmp_path / "report.html")
    assert "Out-of-distribution scores (validation, test)" in Path(report).read_text()
