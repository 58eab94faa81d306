"""Cross-validation on generated data: folds, out-of-fold predictions, pooled metrics, resumption, executors."""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import tiny_run_config
from proctovision.data.manifest import read_manifest, write_manifest
from proctovision.data.split import kfold_split
from proctovision.workflows.crossval import CrossvalSettings, crossval, fold_split
from proctovision.core.tables import read_table
from proctovision.workflows.tracking import sqlite_uri, tracking_for

RESAMPLES = 40


@pytest.fixture
def folds_file(tmp_path: Path, manifest_file: Path) -> Path:
    folds = tmp_path / "work" / "folds.csv"
    write_manifest(kfold_split(read_manifest(manifest_file), 2, seed=0), folds)
    return folds


def settings(**changes) -> CrossvalSettings:
    return CrossvalSettings(**{"val": 0.25, "resamples": RESAMPLES, "batch_size": 16, **changes})


def test_fold_split_tests_the_fold_and_validates_on_a_patient_slice_of_the_rest(folds_file: Path) -> None:
    frame = read_manifest(folds_file)
    split = fold_split(frame, 1, 0.25, seed=3)
    assert (split.loc[split["fold"].astype(int) == 1, "split"] == "test").all()
    assert set(split.loc[split["fold"].astype(int) != 1, "split"]) == {"train", "val"}
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    val = split[split["split"] == "val"]
    assert set(val["label"]) == {"normal", "hemorrhoid"}


def test_two_fold_crossval_through_submitit_local_jobs(tmp_path: Path, folds_file: Path) -> None:
    from proctovision.workflows.executor import ExecutorSettings, make_executor

    out = tmp_path / "cv"
    base = tiny_run_config(folds_file, tmp_path / "unused", epochs=1)
    executor = make_executor(ExecutorSettings(kind="submitit-local", folder=tmp_path / "jobs", time_min=10))
    tracking = tracking_for(out, sqlite_uri(tmp_path / "mlflow.db"))
    result = crossval(folds_file, base, out, settings(), executor=executor, tracking=tracking,
                      announce=lambda line: None)
    assert len(list((tmp_path / "jobs").glob("*_result.pkl"))) == 2

    truth = read_manifest(folds_file)
    oof = read_table(out / "oof_predictions.csv")
    assert len(oof) == len(truth)
    assert not oof[["path", "frame"]].duplicated().any()
    manifest_paths = {str(Path(p).resolve()) for p in truth["path"]}
    assert {str((out / p).resolve()) for p in oof["path"]} == manifest_paths
    fold_of = dict(zip((str(Path(p).resolve()) for p in truth["path"]), truth["fold"].astype(int)))
    for path, fold in zip(oof["path"], oof["fold"].astype(int)):
        assert fold_of[str((out / path).resolve())] == fold
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1

    test_sets = []
    for fold in range(2):
        split = read_manifest(out / "splits" / f"fold_{fold}.csv")
        test_sets.append(set(split.loc[split["split"] == "test", "path"]))
        assert split.groupby("patient_id")["split"].nunique().max() == 1
        run_metrics = json.loads((out / f"fold_{fold}" / "metrics.json").read_text())["test"]
        assert run_metrics["threshold"]["chosen_on"] == "val"
        fold_rows = oof[oof["fold"].astype(int) == fold]
        assert set(fold_rows["threshold"].astype(float)) == {run_metrics["threshold"]["value"]}
    assert all(not (a & b) for i, a in enumerate(test_sets) for b in test_sets[i + 1:])
    assert set().union(*test_sets) == manifest_paths

    from typer.testing import CliRunner

    from proctovision.cli import app

    command = ["score", str(out / "oof_predictions.csv"), "--resamples", str(RESAMPLES), "--out", str(tmp_path / "sc")]
    printed = CliRunner().invoke(app, command)
    assert printed.exit_code == 0, printed.output
    assert "threshold per row" in printed.output
    scored = json.loads((tmp_path / "sc" / "metrics.json").read_text())["test"]
    pooled = json.loads((out / "cv_metrics.json").read_text())["pooled"]
    assert scored["metrics"] == pooled["metrics"]
    assert scored["confusion_matrix"] == pooled["confusion_matrix"]
    assert pooled["n_images"] == len(truth)
    assert pooled["threshold"]["chosen_on"] == "threshold column"

    written = json.loads((out / "cv_metrics.json").read_text())
    assert len(written["folds"]) == 2 and "stratified" in written["validation"]
    accuracies = [fold["metrics"]["accuracy"]["value"] for fold in written["folds"]]
    assert written["mean_sd"]["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2, abs=1e-6)
    assert written["mean_sd"]["accuracy"]["sd"] == pytest.approx(pd.Series(accuracies).std(ddof=1), abs=1e-6)
    assert (out / "figures" / "roc_folds.png").stat().st_size > 1000

    client = mlflow.MlflowClient(tracking_uri=tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("proctovision").experiment_id])
    assert len(runs) == 3
    parent = next(run for run in runs if run.data.tags.get("proctovision.kind") == "crossval")
    assert parent.data.metrics["pooled/accuracy"] == pooled["metrics"]["accuracy"]["value"]
    assert parent.data.metrics["pooled/accuracy_ci_low"] == pooled["metrics"]["accuracy"]["ci95"][0]
    assert parent.data.metrics["mean/accuracy"] == written["mean_sd"]["accuracy"]["mean"]
    children = [run for run in runs if run.info.run_id != parent.info.run_id]
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in children)
    assert all("test/roc_auc" in run.data.metrics and "train_loss" in run.data.metrics for run in children)

    from proctovision.reporting.report import build_report

    html = build_report([], tmp_path / "cv_report.html", crossval=[out], cams=False).read_text()
    section = html[html.index("Cross-validation: cv"):]
    assert f"{written['mean_sd']['accuracy']['mean']:.3f}" in section and "ROC per fold" in section
    from test_paper import assert_in_paper

    for name in ("roc_folds", "roc_oof", "pr_oof", "confusion_oof", "reliability_oof"):
        assert_in_paper(tmp_path / "paper", name, "single")  # the report's cross-validation figures, for a paper

    stamps = {fold: (out / f"fold_{fold}" / "DONE").stat().st_mtime_ns for fold in range(2)}
    lines: list[str] = []
    crossval(folds_file, base, out, settings(), announce=lines.append)
    assert all("finished before" in line for line in lines) and len(lines) == 2
    assert stamps == {fold: (out / f"fold_{fold}" / "DONE").stat().st_mtime_ns for fold in range(2)}


def test_a_folds_file_without_folds_is_refused(tmp_path: Path, split_file: Path) -> None:
    from proctovision.data.split import SplitError

    with pytest.raises(SplitError, match="no fold column"):
        crossval(split_file, tiny_run_config(split_file, tmp_path / "r"), tmp_path / "cv", settings(),
                 announce=lambda line: None)




def test_crossval_and_external_evaluate_commands_refuse_bad_input_in_one_line(tmp_path: Path, split_file: Path) -> None:
    import subprocess
    import sys

    cases = [
        (["crossval", str(split_file), "--out", str(tmp_path / "cv"), "--no-track"], "no fold column"),
        (["evaluate", str(tmp_path), "--data", str(split_file), "--no-track"], "--data and --name go together"),
    ]
    for args, reason in cases:
        result = subprocess.run([sys.executable, "-m", "proctovision", *args], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.strip().startswith("error:") and reason in result.stderr, result.stderr


def test_repeats_redraw_the_folds_and_each_repeat_tests_every_image_once(tmp_path: Path, folds_file: Path) -> None:
    from proctovision.workflows.crossval import plan

    jobs = plan(folds_file, tiny_run_config(folds_file, tmp_path / "r"), tmp_path / "cv", settings(repeats=2))
    assert [(job.repeat, job.fold) for job in jobs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    total = len(read_manifest(folds_file))
    tested = {}
    for job in jobs:
        split = read_manifest(job.config.data.split)
        assert job.run_dir == (tmp_path / "cv" / f"repeat_{job.repeat}" / f"fold_{job.fold}").resolve()
        tested.setdefault(job.repeat, []).append(frozenset(split.loc[split["split"] == "test", "path"]))
    for sets in tested.values():
        assert sum(len(part) for part in sets) == total and len(frozenset().union(*sets)) == total
    assert set(tested[0]) != set(tested[1]), "repeat 1 should draw other folds"
