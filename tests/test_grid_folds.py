"""A study grid run under cross-validation (`folds: k` in the grid) through `reproduce`."""
from pathlib import Path

import yaml
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.synthetic.endoscopy import generate_endoscopy
from proctovision.workflows.grid import builtin_grid_path
from proctovision.core.tables import read_table


def tiny_grid(tmp_path: Path, split: dict) -> tuple[Path, Path]:
    """Generated data and the hemorrhoid grid cut to one tiny run, with the given split settings."""
    data = tmp_path / "data"
    generate_endoscopy(data, patients=16, images_per_patient=2)
    grid = yaml.safe_load(builtin_grid_path("hemorrhoid").read_text())
    grid["tasks"] = [task for task in grid["tasks"] if task["task"] == "hemorrhoid"]
    grid["split"] = split
    grid["runs"] = [{"name": "tiny", "overrides": {"model": {"backbone": "test_efficientnet", "mode": "scratch",
                                                             "weights": "none"}, "trainer": {"epochs": 1}}}]
    grid["quick"] = {"data": {"image_size": 32}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return data, path


def test_grid_with_folds_cross_validates_each_run(tmp_path: Path) -> None:
    data, path = tiny_grid(tmp_path, {"folds": 2, "val": 0.25, "seed": 0})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reproduce", str(path), "--data", str(data), "--out", str(out), "--quick",
                                      "--resamples", "20", "--no-track"])
    assert result.exit_code == 0, result.output
    assert "cross-validated (2 folds)" in result.output
    folds = read_table(out / "hemorrhoid" / "folds.csv")
    assert set(folds["fold"]) == {"0", "1"}
    cv = out / "hemorrhoid" / "runs" / "tiny"
    assert (cv / "cv_metrics.json").is_file() and (cv / "fold_0" / "DONE").is_file()
    assert len(read_table(cv / "oof_predictions.csv")) == len(folds)
    comparison = read_table(out / "hemorrhoid" / "comparison" / "comparison.csv")
    assert "tiny" in set(comparison.iloc[:, 0])
    assert "Cross-validation: tiny" in (out / "report.html").read_text()
    again = CliRunner().invoke(app, ["reproduce", str(path), "--data", str(data), "--out", str(out), "--quick",
                                     "--resamples", "20", "--no-track"])
    assert again.exit_code == 0 and "done before, skipped" in again.output


def test_grid_runs_as_submitit_jobs(tmp_path: Path) -> None:
    data, path = tiny_grid(tmp_path, {"val": 0.25, "test": 0.25, "seed": 0})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reproduce", str(path), "--data", str(data), "--out", str(out), "--quick",
                                      "--resamples", "20", "--no-track", "--executor", "submitit-local"])
    assert result.exit_code == 0, result.output
    assert "submitting 1 of 1 runs as jobs" in result.output and "done before, skipped" in result.output
    assert len(list((out / "jobs").glob("*_result.pkl"))) == 1
    assert (out / "hemorrhoid" / "runs" / "tiny" / "DONE").is_file()
