from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import tiny_run_config

from proctovision.core.config import ConfigError, load_config
from proctovision.artefacts.runs import RunError, read_run
from proctovision.workflows.training import train


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_a_run_leaves_config_checkpoints_and_history(split_file: Path, tmp_path: Path):
    paths = train(tiny_run_config(split_file, tmp_path / "run"), progress=False)
    assert paths.best.is_file() and paths.last.is_file()
    history = pd.read_csv(paths.history)
    assert list(history["epoch"]) == [0, 1]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(history.columns)
    saved = yaml.safe_load(paths.config.read_text())
    assert saved["model"]["backbone"] == "test_efficientnet"
    assert saved["resolved"]["preprocessing"]["input_size"] == 32
    assert "torch" in saved["resolved"]["versions"] and "timm" in saved["resolved"]["versions"]
    assert read_run(paths.root).task.classes == ("normal", "hemorrhoid")
    assert not list(paths.root.rglob("*.tmp")), "no temporary files left behind"
    again = load_config(paths.config, {"trainer.epochs": 5})  # `train --config runs/x/config.yaml` trains its like
    assert again.model.backbone == "test_efficientnet" and again.trainer.epochs == 5


def test_same_seed_same_weights(split_file: Path, tmp_path: Path):
    first = train(tiny_run_config(split_file, tmp_path / "a", epochs=1), progress=False)
    second = train(tiny_run_config(split_file, tmp_path / "b", epochs=1), progress=False)
    third = train(tiny_run_config(split_file, tmp_path / "c", epochs=1, seed=7), progress=False)
    one, two, three = _weights(first.last), _weights(second.last), _weights(third.last)
    assert all(torch.equal(one[key], two[key]) for key in one)
    assert not all(torch.equal(one[key], three[key]) for key in one)


def test_resume_continues_from_last_checkpoint(split_file: Path, tmp_path: Path):
    out = tmp_path / "run"
    train(tiny_run_config(split_file, out, epochs=1), progress=False)
    with pytest.raises(RunError, match="--resume"):
        train(tiny_run_config(split_file, out, epochs=2), progress=False)
    paths = train(tiny_run_config(split_file, out, epochs=2), resume=True, progress=False)
    assert torch.load(paths.last, weights_only=False)["epoch"] == 1
    assert list(pd.read_csv(paths.history)["epoch"]) == [0, 1]


def test_frozen_mode_trains_the_head_only(split_file: Path, tmp_path: Path):
    import timm

    spec_weights = tmp_path / "backbone.pth"
    torch.manual_seed(3)
    torch.save(timm.create_model("test_efficientnet", num_classes=0).state_dict(), spec_weights)
    config = tiny_run_config(split_file, tmp_path / "frozen", mode="frozen")
    config.model.weights = str(spec_weights)
    paths = train(config, progress=False)
    start = torch.load(spec_weights)
    trained = _weights(paths.last)
    assert all(torch.equal(start[key], trained[f"backbone.{key}"]) for key in start)
    first_head = [key for key in trained if key.startswith("head.")][0]
    assert trained["head.0.weight"].shape[0] == 1024, "the study head starts with 1024 units"
    assert first_head


def test_finetune_changes_the_backbone(split_file: Path, tmp_path: Path):
    import timm

    weights = tmp_path / "backbone.pth"
    torch.save(timm.create_model("test_efficientnet", num_classes=0).state_dict(), weights)
    config = tiny_run_config(split_file, tmp_path / "ft", mode="finetune")
    config.model.weights = str(weights)
    trained = _weights(train(config, progress=False).last)
    start = torch.load(weights)
    assert any(not torch.equal(start[key], trained[f"backbone.{key}"]) for key in start if "weight" in key)


def test_finetune_without_pretrained_weights_is_refused(split_file: Path, tmp_path: Path):
    with pytest.raises(RunError, match="--mode scratch"):
        train(tiny_run_config(split_file, tmp_path / "x", mode="finetune"), progress=False)


def test_yaml_config_with_a_misspelt_key_is_an_error(tmp_path: Path, split_file: Path):
    path = tmp_path / "run.yaml"
    path.write_text(f"task: hemorrhoid\ndata:\n  split: {split_file}\nmodel:\n  backbon: resnet18\n")
    with pytest.raises(ConfigError, match=r"model.backbon: unknown key"):
        load_config(path)
    path.write_text(f"task: hemorrhoid\ndata:\n  split: {split_file}\nmodel:\n  mode: frozn\n")
    with pytest.raises(ConfigError, match=r"model.mode"):
        load_config(path)


def test_yaml_config_loads_with_overrides(tmp_path: Path, split_file: Path):
    path = tmp_path / "run.yaml"
    path.write_text(f"task: ldrf\ndata:\n  split: {split_file}\n  image_size: 331\nmodel:\n  backbone: convmixer\n")
    config = load_config(path, {"trainer.epochs": 3})
    assert config.data.image_size == 331 and config.trainer.epochs == 3
    assert config.optim.lr == 1e-4 and config.data.batch_size == 32 and config.optim.optimizer == "adam"


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(split_file: Path, tmp_path: Path):
    straight = train(tiny_run_config(split_file, tmp_path / "straight", epochs=3), progress=False)
    interrupted = tmp_path / "interrupted"
    train(tiny_run_config(split_file, interrupted, epochs=1), progress=False)
    resumed = train(tiny_run_config(split_file, interrupted, epochs=3), resume=True, progress=False)
    one, two = _weights(straight.last), _weights(resumed.last)
    assert all(torch.equal(one[key], two[key]) for key in one)
    assert pd.read_csv(straight.history)["val_loss"].tolist() == pd.read_csv(resumed.history)["val_loss"].tolist()


def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(split_file: Path, tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    straight = train(tiny_run_config(split_file, tmp_path / "straight", epochs=4), progress=False)
    out = tmp_path / "killed"
    script = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from pathlib import Path\nfrom conftest import tiny_run_config\nfrom proctovision.workflows.training import train\n"
        "train(tiny_run_config(Path(sys.argv[1]), Path(sys.argv[2]), epochs=400), progress=False)\n"
    )
    tests_dir = str(Path(__file__).parent)
    process = subprocess.Popen([sys.executable, "-c", script, str(split_file), str(out), tests_dir])
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.05)
    time.sleep(0.3)
    assert process.poll() is None, "training must still be running when it is killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert torch.load(last, weights_only=False)["epoch"] >= 0, "the checkpoint on disk is whole"
    config = tiny_run_config(split_file, out, epochs=4)
    assert torch.load(last, weights_only=False)["epoch"] < 3, "killed before the uninterrupted run's last epoch"
    resumed = train(config, resume=True, progress=False)
    assert not list(out.rglob("*.tmp")), "stale temporaries are cleared on resume"
    one, two = _weights(straight.last), _weights(resumed.last)
    assert all(torch.equal(one[key], two[key]) for key in one)


def test_unwritable_or_full_output_is_reported_before_any_work(split_file: Path, tmp_path: Path, monkeypatch):
    import os
    from types import SimpleNamespace

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    started = []
    monkeypatch.setattr("proctovision.workflows.training.load_split_frame", lambda *a: started.append(1))
    with pytest.raises(RunError, match="not writable"):
        train(tiny_run_config(split_file, blocker / "run"), progress=False)
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=10, f_frsize=4096))
    with pytest.raises(RunError, match="free on the output disk"):
        train(tiny_run_config(split_file, tmp_path / "full"), progress=False)
    assert not started, "no work may start before the output location is checked"


def test_atomic_writes_leave_ordinary_permissions(tmp_path: Path):
    import stat

    from proctovision.core import fileio

    path = fileio.write_text(tmp_path / "report.md", "hello")
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, "others can read what the tool writes"


def test_a_training_loader_never_ends_on_a_batch_of_one_and_evaluation_keeps_every_image():
    from torch.utils.data import TensorDataset

    from proctovision.workflows.training import make_loader

    five = TensorDataset(torch.arange(5.0))
    assert [len(batch[0]) for batch in make_loader(five, 2, shuffle=True, workers=0)] == [2, 2]
    assert [len(batch[0]) for batch in make_loader(five, 2, shuffle=False, workers=0)] == [2, 2, 1]
    six = TensorDataset(torch.arange(6.0))
    assert [len(batch[0]) for batch in make_loader(six, 4, shuffle=True, workers=0)] == [4, 2]
