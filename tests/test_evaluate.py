import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_run_config

from proctovision.data.manifest import read_manifest
from proctovision.evaluation.evaluate import evaluate_run
from proctovision.training import train


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
    assert len(predictions) == entry["n_images"]
    assert predictions[["prob_normal", "prob_hemorrhoid"]].sum(axis=1).round(4).eq(1).all()
    accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(accuracy, abs=1e-6)


def test_evaluating_two_splits_keeps_both(trained_run: Path):
    evaluate_run(trained_run, "val", n_resamples=10)
    evaluate_run(trained_run, "test", n_resamples=10)
    assert set(json.loads((trained_run / "metrics.json").read_text())) == {"val", "test"}
    assert set(pd.read_csv(trained_run / "predictions.csv")["split"]) == {"val", "test"}
