import json
from pathlib import Path

import pandas as pd
import pytest

from proctovision.data.demo import generate_endoscopy
from proctovision.data.manifest import read_manifest
from proctovision.demo_pipeline import run_demo
from proctovision.runs import RunError


def test_generator_writes_patients_with_several_images(tmp_path: Path):
    sources = generate_endoscopy(tmp_path, patients=8, images_per_patient=3, seed=1)
    frame = read_manifest(sources["hemorrhoid"])
    assert len(frame) == 24 and frame["patient_id"].nunique() == 8
    assert set(frame["label"]) == {"normal", "hemorrhoid"}
    assert set(read_manifest(sources["ldrf"])["label"]) == {"Rf0", "Rf1", "Rf2"}
    assert "SYNTHETIC" in (tmp_path / "README.txt").read_text()


def test_demo_end_to_end_learns_its_data(tmp_path: Path):
    """A shortened demo with the real offline ImageNet backbone reaches the accuracy the full demo promises."""
    summary = run_demo(tmp_path / "demo", task="hemorrhoid", epochs=12, patients=28, images_per_patient=3)
    metrics = json.loads(Path(summary["paths"]["metrics"]).read_text())
    assert metrics["test"]["metrics"]["accuracy"]["value"] >= 0.85
    assert (tmp_path / "demo" / "data" / "qc.md").is_file()
    comparison = tmp_path / "demo" / "comparison"
    table = pd.read_csv(comparison / "comparison.csv")
    assert sorted(table["kind"]) == ["model", "simulated reader", "simulated reader"]
    readers = set(table.loc[table["kind"] == "simulated reader", "participant"])
    assert readers == {"senior (simulated)", "junior (simulated)"}
    assert table[["accuracy_ci_low", "accuracy_ci_high"]].notna().all().all()
    assert len(pd.read_csv(comparison / "tests.csv")) == 3
    for name in ("metrics.png", "reading_time.png", "roc.png", "pr.png"):
        assert (comparison / "figures" / name).stat().st_size > 1000, name


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(RunError, match="not made by the demo"):
        run_demo(tmp_path, epochs=1, patients=8)
    assert (tmp_path / "mine.txt").read_text() == "precious"
