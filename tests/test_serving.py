"""Export with parity, predictors on PyTorch and on ONNX Runtime alone, and the predict command."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import solid_image, tiny_run_config
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.transforms import eval_transform, train_transform
from proctovision.imaging.preprocessing import Preprocessing
from proctovision.deploy.export import Probabilities, parity, to_onnx
from proctovision.workflows.training import train

runner = CliRunner()


@pytest.fixture
def trained_run(split_file: Path, tmp_path: Path) -> Path:
    return train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root


def test_one_spec_builds_training_and_torch_free_inputs_as_torchvision_would(tmp_path: Path):
    """The spec's numpy path is what training evaluates with and what ONNX serving runs; both equal the
    conventional torchvision pipeline (PIL bilinear resize, ToTensor, Normalize)."""
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    image = Image.open(solid_image(tmp_path / "a.png", (120, 40, 200), size=(97, 61)))
    pre = Preprocessing(48, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    reference = v2.Compose([v2.Resize((48, 48), antialias=True), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(list(pre.mean), list(pre.std))])(image).numpy()
    assert np.abs(pre.to_array(image) - reference).max() < 1e-5
    assert np.array_equal(eval_transform(pre)(image).numpy(), pre.to_array(image))
    assert np.array_equal(train_transform(pre, "none")(image).numpy(), pre.to_array(image))
    assert train_transform(pre, "colour")(image).shape == (3, 48, 48)
    assert Preprocessing.from_dict(pre.with_window([40, 400]).to_dict()) == pre.with_window([40, 400])


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_onnx_parity_for_study_and_demo_backbones(backbone: str, tmp_path: Path):
    from proctovision.models.module import ClassifierModule

    model = Probabilities(ClassifierModule(backbone, 3, mode="finetune", image_size=64)).eval()
    to_onnx(model, 64, tmp_path / "m.onnx")
    check = parity(model, tmp_path / "m.onnx", 64)
    assert check["max_abs_diff"] < 1e-4


def test_export_predict_and_torch_free_onnx(trained_run: Path, split_file: Path, tmp_path: Path):
    export_dir = tmp_path / "export"
    result = runner.invoke(app, ["export", str(trained_run), "--format", "onnx", "--out", str(export_dir)])
    assert result.exit_code == 0, result.output
    card = json.loads((export_dir / "model_card.json").read_text())
    assert card["classes"] == ["normal", "hemorrhoid"] and card["preprocessing"]["input_size"] == 32
    assert card["onnx_parity"]["max_abs_diff"] < 1e-4
    images = Path(split_file).parent.parent / "csvdata" / "img"
    (images / "junk.png").write_text("not an image")
    by_torch, by_onnx = tmp_path / "t.csv", tmp_path / "o.csv"
    result = runner.invoke(app, ["predict", str(trained_run), str(images), "--out", str(by_torch)])
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['timm'] = None\n"
        "from proctovision.cli import main; sys.argv = ['proctovision', 'predict', sys.argv[1], sys.argv[2], "
        "'--out', sys.argv[3]]; main()"
    )
    done = subprocess.run([sys.executable, "-c", script, str(export_dir), str(images), str(by_onnx)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    torch_rows, onnx_rows = pd.read_csv(by_torch), pd.read_csv(by_onnx)
    assert len(torch_rows) == len(onnx_rows) == 60
    assert np.abs(torch_rows["prob_hemorrhoid"] - onnx_rows["prob_hemorrhoid"]).max() < 1e-4
    assert (torch_rows["predicted"] == onnx_rows["predicted"]).all()


def test_predict_json_lists_errors(trained_run: Path, tmp_path: Path):
    good = solid_image(tmp_path / "in" / "ok.png", (90, 170, 90))
    bad = tmp_path / "in" / "bad.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["predict", str(trained_run), str(good), str(bad), str(tmp_path / "nope.png"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert [row["path"] for row in payload["predictions"]] == [str(good)]
    reasons = {Path(item["path"]).name: item["reason"] for item in payload["errors"]}
    assert reasons == {"bad.jpg": "empty file (0 bytes)", "nope.png": "file not found"}
    assert abs(sum(v for k, v in payload["predictions"][0].items() if k.startswith("prob_")) - 1) < 1e-4


def test_predict_and_export_decide_as_evaluation_did(trained_run: Path, split_file: Path, tmp_path: Path):
    """Threshold and temperature fitted by evaluate travel in the card: predict reproduces predictions.csv."""
    from proctovision.workflows.evaluate import evaluate_run
    from proctovision.deploy.export import export_run

    evaluate_run(trained_run, "test", n_resamples=10, threshold="0.5", temperature_scaling=True)
    scaled = pd.read_csv(trained_run / "predictions.csv").query("split == 'test'")["prob_hemorrhoid"].to_numpy()
    cuts = (np.sort(scaled)[1:] + np.sort(scaled)[:-1]) / 2
    moved = [cut for cut in cuts if 0 < (scaled >= cut).sum() != (scaled >= 0.5).sum()]
    assert moved, "the test split needs spread-out probabilities"
    entry = evaluate_run(trained_run, "test", n_resamples=10, threshold=f"{moved[0]:.8f}", temperature_scaling=True)
    reference = pd.read_csv(trained_run / "predictions.csv").query("split == 'test'")
    reference["path"] = [str((split_file.parent / path).resolve()) for path in reference["path"]]
    reference = reference.set_index("path")
    export_run(trained_run, tmp_path / "export")
    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    assert card["threshold"]["value"] == pytest.approx(entry["threshold"]["value"])
    assert card["temperature"] == pytest.approx(entry["calibration"]["temperature"])
    assert abs(card["temperature"] - 1) > 0.05, "a temperature of 1 would leave the scaling untested"
    assert "Decision: hemorrhoid when its probability is at least" in (tmp_path / "export" / "MODEL_CARD.md").read_text()
    by_torch, by_onnx = tmp_path / "t.csv", tmp_path / "o.csv"
    paths = [str(path) for path in reference.index]
    result = runner.invoke(app, ["predict", str(trained_run), *paths, "--out", str(by_torch)])
    assert result.exit_code == 0, result.output
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['timm'] = None\n"
        "from proctovision.cli import main; sys.argv = ['proctovision', 'predict', *sys.argv[1:]]; main()"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "export"), *paths, "--out", str(by_onnx)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for written in (by_torch, by_onnx):
        got = pd.read_csv(written).set_index("path").loc[reference.index]
        assert np.abs(got["prob_hemorrhoid"] - reference["prob_hemorrhoid"]).max() < 1e-4
        assert (got["predicted"] == reference["predicted"]).all()
        assert np.allclose(got["threshold"], entry["threshold"]["value"])


def test_temperature_in_the_card_rescales_probabilities():
    from proctovision.evaluation.calibration import scale
    from proctovision.inference.predictor import Predictor

    class Fixed(Predictor):
        classes = ("normal", "hemorrhoid")

        def __init__(self, card: dict) -> None:
            self.card = card

        def prepare(self, image: object) -> np.ndarray:
            return np.zeros(1)

        def raw_probabilities(self, batch: np.ndarray) -> np.ndarray:
            return np.tile([0.2, 0.8], (len(batch), 1))

    raw = Fixed({"classes": ["normal", "hemorrhoid"]})
    warm = Fixed({"classes": ["normal", "hemorrhoid"], "temperature": 2.0, "threshold": {"value": 0.7}})
    assert raw.predict_images([None])[0] == pytest.approx([0.2, 0.8]) and raw.threshold == 0.5
    assert warm.predict_images([None])[0] == pytest.approx(scale(np.array([[0.2, 0.8]]), 2.0)[0])
    assert warm.threshold == 0.7 and warm.decide(warm.predict_images([None])[0]) == "normal"


def test_card_records_the_dicom_window_of_the_run(trained_run: Path, tmp_path: Path):
    import yaml

    from proctovision.artefacts.runs import read_run
    from proctovision.artefacts.card import build_card, write_card

    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    config["resolved"]["window"] = [40, 400]
    (trained_run / "config.yaml").write_text(yaml.safe_dump(config))
    write_card(tmp_path, build_card(read_run(trained_run)))
    assert json.loads((tmp_path / "model_card.json").read_text())["preprocessing"]["window"] == [40, 400]
    assert "training window [40, 400]" in (tmp_path / "MODEL_CARD.md").read_text()
