import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_run_config

from proctovision.data.manifest import read_manifest
from proctovision.workflows.evaluate import evaluate_run
from proctovision.workflows.training import train


@pytest.fixture
def trained_run(split_file: Path, tmp_path: Path) -> Path:
    return train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root


def test_evaluate_writes_metrics_and_predictions_as_designed(trained_run: Path, split_file: Path):
    entry = evaluate_run(trained_run, "test", n_resamples=50)
    saved = json.loads((trained_run / "metrics.json").read_text())
    assert saved["test"] == json.loads(json.dumps(entry))
    expected = read_manifest(split_file).query("split == 'test'")
    assert entry["n_images"] == len(expected) and entry["n_patients"] == expected["patient_id"].nunique()
    for name in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc"):
        metric = entry["metrics"][name]
        assert set(metric) >= {"value", "ci95"}
        assert len(metric["ci95"]) == 2
    assert entry["reading_time_s"] > 0 and entry["images_per_s"] > 0
    assert sum(map(sum, entry["confusion_matrix"])) == entry["n_images"]
    predictions = pd.read_csv(trained_run / "predictions.csv")
    assert {"path", "patient_id", "label", "predicted", "prob_normal", "prob_hemorrhoid"} <= set(predictions.columns)
    assert set(predictions["split"]) == {"test", "val"}, "validation rows, where the threshold was fitted, are kept"
    predictions = predictions[predictions["split"] == "test"]
    assert len(predictions) == entry["n_images"]
    assert not predictions["path"].str.startswith("/").any(), "the manifest's relative paths, not absolute ones"
    assert predictions[["prob_normal", "prob_hemorrhoid"]].sum(axis=1).round(4).eq(1).all()
    accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(accuracy, abs=1e-6)


def test_evaluating_two_splits_keeps_both(trained_run: Path):
    evaluate_run(trained_run, "val", n_resamples=10)
    evaluate_run(trained_run, "test", n_resamples=10)
    assert set(json.loads((trained_run / "metrics.json").read_text())) == {"val", "test"}
    assert set(pd.read_csv(trained_run / "predictions.csv")["split"]) == {"val", "test"}


def test_threshold_is_chosen_on_validation_and_applied_to_test(trained_run: Path):
    import numpy as np

    from proctovision.evaluation.calibration import choose_threshold

    entry = evaluate_run(trained_run, "test", n_resamples=10, threshold="sensitivity:0.9", temperature_scaling=True)
    assert entry["threshold"]["chosen_on"] == "val" and entry["calibration"]["fitted_on"] == "val"
    val = evaluate_run(trained_run, "val", n_resamples=10, threshold="0.5", temperature_scaling=True)
    predictions = pd.read_csv(trained_run / "predictions.csv")
    val_rows = predictions[predictions["split"] == "val"]
    y = (val_rows["label"] == "hemorrhoid").to_numpy().astype(int)
    expected = choose_threshold(y, val_rows["prob_hemorrhoid"].to_numpy(), "sensitivity:0.9")
    assert entry["threshold"]["value"] == pytest.approx(expected, abs=1e-4)
    test_rows = predictions[predictions["split"] == "test"]
    called = np.where(test_rows["prob_hemorrhoid"] >= entry["threshold"]["value"], "hemorrhoid", "normal")
    assert (called == test_rows["predicted"]).all()
    assert val["threshold"] == {"value": 0.5, "rule": "0.5", "chosen_on": "fixed"}
    for name in ("sensitivity", "specificity", "ppv", "npv", "average_precision", "brier", "ece"):
        assert name in entry["metrics"]


def test_confusion_matrix_and_figures_match_the_predictions(trained_run: Path):
    from sklearn.metrics import confusion_matrix

    entry = evaluate_run(trained_run, "test", n_resamples=10)
    rows = pd.read_csv(trained_run / "predictions.csv").query("split == 'test'")
    expected = confusion_matrix(rows["label"], rows["predicted"], labels=["normal", "hemorrhoid"]).tolist()
    assert entry["confusion_matrix"] == expected
    for name in ("roc_test.png", "pr_test.png", "confusion_test.png", "reliability_test.png"):
        assert (trained_run / "figures" / name).stat().st_size > 1000


def test_patient_metrics_use_each_patients_mean_probability(trained_run: Path):
    from sklearn.metrics import accuracy_score, roc_auc_score

    entry = evaluate_run(trained_run, "test", n_resamples=20, threshold="0.5")
    rows = pd.read_csv(trained_run / "predictions.csv").query("split == 'test'")
    per_patient = rows.groupby("patient_id").agg(label=("label", "first"), score=("prob_hemorrhoid", "mean"))
    truth = (per_patient["label"] == "hemorrhoid").astype(int)
    patient = entry["patient_metrics"]
    assert {item["unit"] for item in patient.values()} == {"patient"}
    assert {item["unit"] for item in entry["metrics"].values()} == {"image"}
    assert patient["accuracy"]["value"] == pytest.approx(accuracy_score(truth, per_patient["score"] >= 0.5), abs=1e-5)
    assert truth.nunique() == 2, "the fixture's test split holds patients of both classes"
    assert patient["roc_auc"]["value"] == pytest.approx(roc_auc_score(truth, per_patient["score"]), abs=1e-4)


def test_score_on_the_predictions_file_gives_evaluates_metrics_and_cis(trained_run: Path, tmp_path: Path):
    from proctovision.cli import app
    from typer.testing import CliRunner

    entry = evaluate_run(trained_run, "test", n_resamples=200, seed=3)
    result = CliRunner().invoke(app, ["score", str(trained_run / "predictions.csv"), "--resamples", "200",
                                      "--seed", "3", "--out", str(tmp_path / "scores")])
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "scores" / "metrics.json").read_text())["test"]
    assert scored["threshold"] == entry["threshold"]
    assert scored["metrics"] == entry["metrics"]
    assert scored["patient_metrics"] == entry["patient_metrics"]
    assert scored["confusion_matrix"] == entry["confusion_matrix"]


def test_score_reads_another_tools_predictions_with_a_truth_manifest(trained_run: Path, split_file: Path,
                                                                     tmp_path: Path):
    """A spreadsheet with paths and probabilities only: labels and patients come from the manifest."""
    from proctovision.evaluation.score import ScoreOptions
    from proctovision.workflows.score import score_file

    evaluate_run(trained_run, "test", n_resamples=10)
    rows = pd.read_csv(trained_run / "predictions.csv").query("split == 'test'")
    sheet = rows[["path", "prob_normal", "prob_hemorrhoid"]]
    sheet.to_csv(tmp_path / "other.csv", index=False)
    entry = score_file(tmp_path / "other.csv", tmp_path / "out", truth=split_file, split=None,
                       options=ScoreOptions(threshold="0.5", n_resamples=20))
    assert entry["n_images"] == len(rows)
    assert entry["n_patients"] == rows["patient_id"].nunique()
    expected = ((rows["prob_hemorrhoid"] >= 0.5).map({True: "hemorrhoid", False: "normal"}) == rows["label"]).mean()
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-6)


def test_evaluation_and_reporting_never_import_the_models():
    import subprocess
    import sys

    code = ("import sys; import proctovision.evaluation.score, proctovision.evaluation.compare, "
            "proctovision.reporting.report, proctovision.data.manifest; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'timm') or m.startswith('proctovision.models')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_a_moved_project_keeps_its_runs_usable(split_file: Path, tmp_path: Path):
    import os
    import shutil

    from conftest import tiny_run_config

    project = tmp_path / "project"
    shutil.copytree(split_file.parent.parent / "csvdata", project / "csvdata")
    shutil.copytree(split_file.parent, project / "work")
    run = train(tiny_run_config(project / "work" / "split.csv", project / "run", epochs=1), progress=False).root
    lineage = yaml_lineage(run)
    recorded = os.path.join("..", "work", "split.csv")
    assert lineage["split"] == recorded and len(lineage["split_sha256"]) == 64
    moved = tmp_path / "elsewhere"
    shutil.move(project, moved)
    entry = evaluate_run(moved / "run", "test", n_resamples=10)
    assert entry["n_images"] > 0 and entry["lineage"]["split"] == recorded


def yaml_lineage(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["resolved"]["lineage"]


def test_a_fold_run_refuses_to_treat_its_validation_fold_as_a_test_set(split_file: Path, tmp_path: Path):
    from conftest import tiny_run_config

    from proctovision.data.manifest import write_manifest
    from proctovision.data.split import kfold_split
    from proctovision.artefacts.runs import RunError

    folds = tmp_path / "folds.csv"
    write_manifest(kfold_split(read_manifest(split_file).drop(columns="split"), 3, 0), folds)
    run = train(tiny_run_config(folds, tmp_path / "fold_run", epochs=1, data__fold=0), progress=False).root
    with pytest.raises(RunError, match="k-fold"):
        evaluate_run(run, "test", n_resamples=10)
    with pytest.raises(RunError, match="k-fold"):
        evaluate_run(run, "val", n_resamples=10)


def test_subgroups_and_decision_curve_from_evaluate_and_from_score(split_file: Path, tmp_path: Path):
    """--by gives each level's metrics (the levels add up to the split) and a forest plot; binary tasks get a
    decision curve whose net benefit is TP/n - FP/n * t/(1-t) (Vickers & Elkin, 2006)."""
    import numpy as np
    from conftest import tiny_run_config

    from proctovision.data.manifest import write_manifest
    from proctovision.evaluation.score import ScoreOptions
    from proctovision.workflows.score import score_file

    frame = read_manifest(split_file)
    frame["site"] = ["A" if int(patient.split("-")[1]) % 2 else "B" for patient in frame["patient_id"]]
    with_sites = tmp_path / "work" / "split_sites.csv"
    write_manifest(frame, with_sites)
    run = train(tiny_run_config(with_sites, tmp_path / "run_sites", epochs=1), progress=False).root
    entry = evaluate_run(run, "test", n_resamples=20, by=["site"])
    levels = entry["subgroups"]["site"]["levels"]
    assert sorted(level["level"] for level in levels) == ["A", "B"]
    assert sum(level["n_images"] for level in levels) == entry["n_images"]
    assert all((run / "figures" / "subgroups_test" / name).is_file() for name in entry["subgroup_figures"].values())
    rows = pd.read_csv(run / "predictions.csv").query("split == 'test'")
    curve = entry["decision_curve"]
    index = curve["thresholds"].index(min(curve["thresholds"], key=lambda t: abs(t - 0.3)))
    t = curve["thresholds"][index]
    called = rows["prob_hemorrhoid"].to_numpy() >= t
    positive = (rows["label"] == "hemorrhoid").to_numpy()
    expected = (called & positive).mean() - (called & ~positive).mean() * t / (1 - t)
    assert curve["models"]["model"][index] == pytest.approx(expected, abs=1e-9)
    assert (run / "figures" / "decision_curve_test.png").is_file()
    rows[["path", "prob_normal", "prob_hemorrhoid"]].to_csv(tmp_path / "sheet.csv", index=False)
    scored = score_file(tmp_path / "sheet.csv", tmp_path / "scores", truth=with_sites, split=None,
                        options=ScoreOptions(threshold="0.5", n_resamples=20), by=["site"])
    assert sorted(level["level"] for level in scored["subgroups"]["site"]["levels"]) == ["A", "B"]
    assert (tmp_path / "scores" / "subgroups.md").read_text().startswith("# Subgroups")
    assert np.isfinite(scored["metrics"]["accuracy"]["value"])
