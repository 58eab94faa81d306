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
