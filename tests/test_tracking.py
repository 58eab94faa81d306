"""MLflow tracking: train and evaluate land in one MLflow run of a local SQLite store, with metrics and CIs."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from conftest import TINY_BACKBONE
from proctovision.cli import app
from proctovision.workflows.tracking import tracking_for


def test_default_store_is_a_sqlite_file_beside_the_run(tmp_path: Path) -> None:
    tracking = tracking_for(tmp_path / "runs" / "r18")
    assert tracking.uri == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    assert tracking.artifact_location == (tmp_path / "runs" / "mlartifacts").resolve().as_uri()
    assert tracking_for(tmp_path / "r", enabled=False) is None
    assert tracking_for(tmp_path / "r", str(tmp_path / "other.db")).uri == f"sqlite:///{tmp_path / 'other.db'}"


def test_train_and_evaluate_are_found_in_the_local_store(tmp_path: Path, split_file: Path, monkeypatch) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()
    run_dir = tmp_path / "runs" / "tiny"
    trained = runner.invoke(app, [
        "train", str(split_file), "--task", "hemorrhoid", "--backbone", TINY_BACKBONE, "--mode", "scratch",
        "--weights", "none", "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--out", str(run_dir),
        "--track"])
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(app, ["evaluate", str(run_dir), "--resamples", "30", "--workers", "0", "--track"])
    assert evaluated.exit_code == 0, evaluated.output

    store = tmp_path / "runs" / "mlflow.db"
    assert store.is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("proctovision")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert json.loads((run_dir / "mlflow_run.json").read_text())["run_id"] == run.info.run_id
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]["metrics"]
    assert run.data.metrics["test/accuracy"] == metrics["accuracy"]["value"]
    assert run.data.metrics["test/accuracy_ci_low"] == metrics["accuracy"]["ci95"][0]
    assert run.data.metrics["test/roc_auc_ci_high"] == metrics["roc_auc"]["ci95"][1]
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(history) >= 2
    assert run.data.params["model.backbone"] == TINY_BACKBONE
    assert run.data.params["trainer.epochs"] == "2"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "model_card.json", "figures"} <= artifacts
    figures = {item.path for item in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/roc_test.png" in figures
    assert Path(experiment.artifact_location.removeprefix("file://")).parent == store.parent
