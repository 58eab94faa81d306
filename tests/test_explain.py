from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_run_config
from PIL import Image
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.explain import build_cam, vit_reshape
from proctovision.models.module import ClassifierModule
from proctovision.training import train

runner = CliRunner()


def test_vit_tokens_become_a_patch_grid():
    tokens = torch.arange(2 * 17 * 4, dtype=torch.float32).reshape(2, 17, 4)
    grid = vit_reshape(1)(tokens)
    assert grid.shape == (2, 4, 4, 4)
    assert torch.equal(grid[0, :, 0, 0], tokens[0, 1])


@pytest.mark.parametrize("backbone, size", [("vit_s16", 64), ("convmixer_768_32", 32), ("densenet121", 64)])
def test_cams_for_transformer_and_mixer_backbones(backbone: str, size: int):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = ClassifierModule(backbone, 2, mode="scratch", image_size=size).eval()
    maps = build_cam(module, "gradcam")(input_tensor=torch.randn(1, 3, size, size), targets=[ClassifierOutputTarget(1)])
    assert maps.shape == (1, size, size) and np.isfinite(maps).all()


def test_explain_command_writes_three_panel_figures(split_file: Path, tmp_path: Path):
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
