from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_run_config
from PIL import Image
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.workflows.explain import build_cam, vit_reshape
from proctovision.models.module import ClassifierModule
from proctovision.workflows.training import train

runner = CliRunner()
STUDY_SIZES = {"xception": 96, "resnet50v2": 64, "efficientnetv2_s": 64, "vit_s16": 64, "convmixer_768_32": 32,
               "resnet18": 64, "resnet34": 64, "densenet121": 64}


def test_vit_tokens_become_a_patch_grid():
    tokens = torch.arange(2 * 17 * 4, dtype=torch.float32).reshape(2, 17, 4)
    grid = vit_reshape(1)(tokens)
    assert grid.shape == (2, 4, 4, 4)
    assert torch.equal(grid[0, :, 0, 0], tokens[0, 1])


@pytest.mark.parametrize("backbone", list(STUDY_SIZES))
def test_cams_for_all_eight_study_backbones(backbone: str):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    size = STUDY_SIZES[backbone]
    torch.manual_seed(0)
    module = ClassifierModule(backbone, 2, mode="scratch", image_size=size).eval()
    maps = build_cam(module, "gradcam")(input_tensor=torch.randn(1, 3, size, size), targets=[ClassifierOutputTarget(1)])
    assert maps.shape == (1, size, size) and np.isfinite(maps).all()


def _blob_split(root: Path, count: int = 64, size: int = 128) -> Path:
    """Noise images; class 'hemorrhoid' has one bright blob in a random quadrant, 'normal' has none."""
    rng = np.random.default_rng(0)
    lines = ["path,label,patient_id,blob_row,blob_col"]
    for index in range(count):
        pixels = rng.normal(90, 20, (size, size, 3))
        label, row, col = "normal", -1, -1
        if index % 2:
            label = "hemorrhoid"
            row, col = (int(rng.integers(14, size // 2 - 14)) + size // 2 * int(rng.integers(0, 2)) for _ in range(2))
            yy, xx = np.mgrid[:size, :size]
            pixels[(yy - row) ** 2 + (xx - col) ** 2 < 100] = (250, 240, 60)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / f"{index}.png")
        split = "train" if index < count - 16 else ("val" if index < count - 8 else "test")
        lines.append(f"{index}.png,{label},p{index},{row},{col},{split}")
    lines[0] += ",split"
    (root / "split.csv").write_text("\n".join(lines) + "\n")
    return root / "split.csv"


def test_heatmap_peaks_on_the_planted_blob(tmp_path: Path):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from proctovision.core.config import DataConfig, ModelConfig, RunConfig, TrainerConfig
    from proctovision.data.transforms import eval_transform
    from proctovision.models.module import load_module
    from proctovision.artefacts.runs import read_run

    split = _blob_split(tmp_path)
    config = RunConfig(
        task="hemorrhoid", data=DataConfig(split=split, image_size=128, batch_size=16, augmentation="none"),
        model=ModelConfig(backbone="efficientnet_lite0", mode="finetune", weights="imagenet", head="linear"),
        optim={"lr": 1e-3}, trainer=TrainerConfig(epochs=6, seed=0), out=tmp_path / "run",
    )
    run = read_run(train(config, progress=False).root)
    frame = pd.read_csv(split)
    frame = frame[frame["label"] == "hemorrhoid"].reset_index(drop=True)
    module = load_module(run)
    transform = eval_transform(run.preprocessing)
    images = torch.stack([transform(Image.open(tmp_path / name).convert("RGB")) for name in frame["path"]])
    maps = build_cam(module, "gradcam")(input_tensor=images, targets=[ClassifierOutputTarget(1)] * len(images))
    at_blob = maps[np.arange(len(maps)), frame["blob_row"], frame["blob_col"]]
    yy, xx = np.mgrid[:128, :128]
    inside = [(yy - r) ** 2 + (xx - c) ** 2 < 100 for r, c in zip(frame["blob_row"], frame["blob_col"])]
    ratio = np.array([heat[mask].mean() / max(heat[~mask].mean(), 1e-6) for heat, mask in zip(maps, inside)])
    assert (at_blob >= 0.5).mean() >= 0.85, f"heat at the blob centre: {np.round(at_blob, 2)}"
    assert np.median(ratio) > 2, f"heat inside / outside the blob: {np.round(ratio, 2)}"


def test_explain_command_writes_three_panel_figures_grid_and_faithfulness(split_file: Path, tmp_path: Path):
    run = train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root
    images = Path(split_file).parent.parent / "csvdata" / "img"
    files = sorted(images.glob("*.png"))[:5]
    (tmp_path / "bad.png").write_text("nope")
    out = tmp_path / "cams"
    result = runner.invoke(app, ["explain", str(run), *map(str, files), str(tmp_path / "bad.png"),
                                 "--method", "gradcam++", "--target", "hemorrhoid", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "cams.csv")
    assert len(table) == 5 and set(table["target"]) == {"hemorrhoid"}
    with Image.open(out / table["png"].iloc[0]) as strip:
        assert strip.size == (3 * 32, 32)
    result = runner.invoke(app, ["explain", str(run), str(files[0]), "--target", "polyp", "--out", str(out)])
    assert result.exit_code != 0
    result = runner.invoke(app, ["explain", str(run), str(files[0]), "--layer", "blocks.-2", "--out", str(tmp_path / "l")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["explain", str(run), str(files[0]), "--layer", "nope.3", "--out", str(tmp_path / "l")])
    assert result.exit_code != 0
    result = runner.invoke(app, ["explain", str(run), "--split", "test", "--faithfulness", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "t" / "cams.csv")
    assert scored["road"].notna().all() and "ROAD faithfulness" in result.output
    assert (tmp_path / "t" / "grid.png").stat().st_size > 2000


def test_cams_work_for_a_frozen_backbone(split_file: Path, tmp_path: Path):
    import timm

    weights = tmp_path / "w.pth"
    torch.save(timm.create_model("test_efficientnet", num_classes=0).state_dict(), weights)
    config = tiny_run_config(split_file, tmp_path / "frozen", mode="frozen", epochs=1)
    config.model.weights = str(weights)
    run = train(config, progress=False).root
    result = runner.invoke(app, ["explain", str(run), "--split", "test", "--out", str(tmp_path / "cams")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "cams" / "cams.csv")) > 0
