import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_run_config
from PIL import Image
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.data.manifest import read_manifest
from proctovision.evaluation.evaluate import evaluate_run
from proctovision.evaluation.readers import ReadersError, read_readers, simulate_readers
from proctovision.training import train


@pytest.fixture
def two_runs(split_file: Path, tmp_path: Path) -> list[Path]:
    runs = []
    for seed in (0, 1):
        run = train(tiny_run_config(split_file, tmp_path / f"model{seed}", epochs=1, seed=seed), progress=False).root
        evaluate_run(run, "test", n_resamples=20)
        runs.append(run)
    return runs


def test_compare_models_and_readers_writes_table_tests_and_figures(two_runs, split_file: Path, tmp_path: Path):
    test_rows = read_manifest(split_file).query("split == 'test'")
    readers = simulate_readers(test_rows, ("normal", "hemorrhoid"), tmp_path / "readers.csv", seed=3)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", *map(str, two_runs), "--readers", str(readers), "--out", str(out),
                                      "--resamples", "50"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["participant"]) == ["model0", "model1", "junior", "senior"]
    assert set(table["kind"]) == {"model", "reader"}
    assert table.loc[table["kind"] == "reader", "roc_auc"].isna().all(), "readers give labels, not scores"
    assert table.loc[table["kind"] == "reader", "reading_time_s"].gt(0).all()
    payload = json.loads((out / "comparison.json").read_text())
    pairs = {(test["a"], test["b"]) for test in payload["tests"]}
    assert len(pairs) == 6
    model_pair = next(test for test in payload["tests"] if {test["a"], test["b"]} == {"model0", "model1"})
    delong = model_pair["delong"]
    assert delong is not None and (delong["p_value"] is None or 0 <= delong["p_value"] <= 1)
    assert delong["auc_a"] == pytest.approx(table.set_index("participant").loc[model_pair["a"], "roc_auc"], abs=1e-6)
    reader_pair = next(test for test in payload["tests"] if {test["a"], test["b"]} == {"junior", "senior"})
    assert reader_pair["delong"] is None and 0 <= reader_pair["mcnemar"]["p_value"] <= 1
    for name in ("metrics.png", "reading_time.png", "roc.png"):
        with Image.open(out / "figures" / name) as figure:
            assert np.asarray(figure).std() > 5, name
    truth = test_rows.set_index("path")["label"]
    readers_frame, _ = read_readers(readers, ("normal", "hemorrhoid"))
    senior = readers_frame[readers_frame["reader"] == "senior"].set_index("path")["label"]
    expected = (senior == truth.loc[senior.index]).mean()
    assert table.set_index("participant").loc["senior", "accuracy"] == pytest.approx(expected)


def test_bad_readers_file_and_unevaluated_run_are_explained(two_runs, tmp_path: Path, split_file: Path):
    bad = tmp_path / "r.csv"
    bad.write_text("path,reader,label\na.png,x,polyp\n")
    with pytest.raises(ReadersError, match="polyp"):
        read_readers(bad, ("normal", "hemorrhoid"))
    fresh = train(tiny_run_config(split_file, tmp_path / "fresh", epochs=1), progress=False).root
    result = CliRunner().invoke(app, ["compare", str(fresh), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
