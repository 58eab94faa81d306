"""The command line end to end on tiny data, and its one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY_BACKBONE
from typer.testing import CliRunner

from proctovision.cli import app

runner = CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proctovision", *args], capture_output=True, text=True, timeout=300,
    )


def test_ingest_split_train_evaluate(csv_source: Path, tmp_path: Path):
    manifest, split, run = tmp_path / "m.csv", tmp_path / "s.csv", tmp_path / "run"
    result = runner.invoke(app, ["ingest", str(csv_source), "--task", "hemorrhoid", "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "60 images, 20 patients" in result.output
    result = runner.invoke(app, ["split", str(manifest), "--val", "0.2", "--test", "0.2", "--out", str(split)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["train", str(split), "--task", "hemorrhoid", "--backbone", TINY_BACKBONE, "--mode", "scratch",
         "--weights", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--out", str(run)],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run), "--split", "test", "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "images/s" in result.output
    assert "test" in json.loads((run / "metrics.json").read_text())


def test_kfold_split_from_the_cli(csv_source: Path, tmp_path: Path):
    manifest = tmp_path / "m.csv"
    runner.invoke(app, ["ingest", str(csv_source), "--out", str(manifest)])
    result = runner.invoke(app, ["split", str(manifest), "--folds", "5", "--out", str(tmp_path / "f.csv")])
    assert result.exit_code == 0, result.output
    assert "fold" in (tmp_path / "f.csv").read_text().splitlines()[0]


def test_bad_inputs_give_one_line_errors_not_tracebacks(tmp_path: Path, csv_source: Path):
    cases = [
        ["ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.csv")],
        ["ingest", str(csv_source), "--task", "polyp", "--out", str(tmp_path / "m2.csv")],
        ["split", str(tmp_path / "missing.csv")],
        ["train", "--config", str(tmp_path / "none.yaml")],
        ["evaluate", str(tmp_path)],
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().startswith("error:"), result.stderr


def test_split_refusal_says_why(tmp_path: Path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,patient_id\na.png,normal,p1\nb.png,normal,p2\nc.png,hemorrhoid,p3\n")
    result = run_cli("split", str(manifest), "--out", str(tmp_path / "s.csv"))
    assert result.returncode == 1
    assert "at least 3 patients" in result.stderr and "hemorrhoid: 1" in result.stderr


def test_every_command_has_help_with_an_example():
    for command in ("ingest", "split", "train", "evaluate", "demo"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command


def test_invalid_values_name_the_field_and_what_it_accepts(split_file: Path, tmp_path: Path):
    for flags, field, allowed in (
        (["--mode", "frozn"], "model.mode", "'frozen', 'finetune' or 'scratch'"),
        (["--image-size", "16"], "data.image_size", "greater than or equal to 32"),
        (["--augmentation", "heavy"], "data.augmentation", "'none', 'basic' or 'colour'"),
        (["--precision", "17"], "trainer.precision", "'16-mixed'"),
    ):
        result = run_cli("train", str(split_file), "--out", str(tmp_path / "r"), *flags)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (flags, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert field in lines[0] and allowed in lines[0], lines[0]
        assert "Traceback" not in result.stderr


def test_readers_file_errors_name_the_row(tmp_path: Path):
    import pytest

    from proctovision.evaluation.readers import ReadersError, read_readers

    classes = ("normal", "hemorrhoid")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffpath,reader,label\na.png,r1,normal\n".encode())
    frame, _ = read_readers(bom, classes)
    assert list(frame["reader"]) == ["r1"]
    cases = {
        "path,reader\na.png,r1\n": "missing column(s) label",
        "path,reader,label\na.png,r1,normal\nb.png,r1,normal,extra\n": "row 2 (line 3) is malformed",
        "path,reader,label\na.png,r1,normal\nb.png,,normal\n": "row 2 has no reader",
        "path,reader,label\na.png,r1,normal\nb.png,r1,polyp\n": "row 2: label 'polyp'",
    }
    for number, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{number}.csv"
        path.write_text(text)
        with pytest.raises(ReadersError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            read_readers(path, classes)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_train_into_a_log_file_writes_one_line_per_epoch(split_file: Path, tmp_path: Path):
    """Outside a terminal (CI, nohup, SLURM) Lightning's live bar would redraw each epoch over several lines."""
    import os
    import re

    log = tmp_path / "train.log"
    with open(log, "w") as stream:
        done = subprocess.run(
            [sys.executable, "-m", "proctovision", "train", str(split_file), "--task", "hemorrhoid", "--backbone",
             TINY_BACKBONE, "--mode", "scratch", "--weights", "none", "--epochs", "3", "--image-size", "32",
             "--batch-size", "8", "--out", str(tmp_path / "run"), "--no-track"],
            stdout=stream, stderr=subprocess.STDOUT, timeout=300, env={**os.environ, "COLUMNS": "80"},
        )
    text = log.read_text()
    assert done.returncode == 0, text
    pattern = re.compile(r"^epoch (\d)/3  train_loss \d+\.\d{4}  val_loss \d+\.\d{4}  val_accuracy \d\.\d{4}  "
                         r"\d+\.\d s$")
    epochs = [int(match.group(1)) for line in text.splitlines() if (match := pattern.match(line))]
    assert epochs == [1, 2, 3], text
    assert "\r" not in text and "Epoch" not in text and "━" not in text, "no progress bar in a log file"


def test_a_terminal_keeps_the_live_progress_bar(split_file: Path, tmp_path: Path, monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from conftest import tiny_run_config
    from proctovision.artefacts.runs import RunPaths
    from proctovision.workflows.training import EpochLines, build_trainer

    config = tiny_run_config(split_file, tmp_path / "run")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    trainer = build_trainer(config, RunPaths(tmp_path / "run"), progress=True)
    assert isinstance(trainer.progress_bar_callback, RichProgressBar)
    assert not any(isinstance(callback, EpochLines) for callback in trainer.callbacks)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    trainer = build_trainer(config, RunPaths(tmp_path / "run"), progress=True)
    assert trainer.progress_bar_callback is None
    assert any(isinstance(callback, EpochLines) for callback in trainer.callbacks)
