"""Acceptance on the locked test set: criteria judged on compare's figures, leaks refused before anything runs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from proctovision.monitoring.acceptance import accept
from proctovision.monitoring.change_plan import load_plan
from proctovision.monitoring.leakage import LeakError, image_digests, overlap
from proctovision.monitoring.recalibration import recalibrate


def recorded(folder: Path, rows: pd.DataFrame) -> pd.DataFrame:
    from proctovision.monitoring.acceptance import predictions_of

    return predictions_of(folder, rows.assign(row=range(len(rows))))[0]


def test_the_same_model_passes_against_itself_with_compare_figures(change_world: dict, tmp_path: Path) -> None:
    record = accept(change_world["current"], change_world["current"], load_plan(change_world["plan"]),
                    tmp_path / "same", n_resamples=200)
    auc = record["criteria"][0]
    assert record["passed"] and record["failed"] == []
    assert auc["difference"]["difference"] == 0 and auc["difference"]["ci95"] == [0, 0]
    assert auc["value"] == auc["current"] and auc["ci"][0] <= auc["value"] <= auc["ci"][1]
    assert record["locked_test"]["n_images"] == 16 and record["locked_test"]["n_patients"] == 8
    written = json.loads((tmp_path / "same" / "acceptance.json").read_text())
    assert written["candidate"]["sha256"] == written["current"]["sha256"]
    assert (tmp_path / "same" / "comparison" / "comparison.md").is_file()


def test_a_candidate_on_shuffled_labels_fails_naming_criteria(change_world: dict, tmp_path: Path) -> None:
    record = accept(change_world["shuffled"], change_world["current"], load_plan(change_world["plan"]),
                    tmp_path / "shuffled", n_resamples=200)
    assert not record["passed"]
    # a model that learnt nothing gives every image about 0.5: its Brier score is near 0.25 whichever way it ranks
    assert any(failed.startswith("brier at_most 0.2 (observed 0.2") for failed in record["failed"])
    brier = record["criteria"][2]
    assert brier["current"] < 0.05 and not brier["passed"]


def test_a_candidate_trained_with_a_locked_patient_is_refused(change_world: dict, tmp_path: Path) -> None:
    with pytest.raises(LeakError) as error:
        accept(change_world["leaky"], change_world["current"], load_plan(change_world["plan"]), tmp_path / "leak")
    message = str(error.value)
    assert "refused" in message and "1 patient(s) (rows" in message and "2 image(s)" in message
    assert "hemorrhoid8" not in message  # overlap named by row, never by patient id
    assert not (tmp_path / "leak" / "acceptance.json").exists()


def test_without_patient_ids_the_overlap_is_found_by_image_hash(change_world: dict) -> None:
    root = change_world["root"]
    locked = pd.read_csv(change_world["locked"]).assign(patient_id="", row=lambda f: f.index + 2)
    locked["path"] = [str(root / path) for path in locked["path"]]
    training = locked.iloc[:3].assign(patient_id=["x", "y", "z"])
    found = overlap(training, locked)
    assert found["by"] == "image sha256" and found["patient_rows"] == [] and found["image_rows"] == [2, 3, 4]
    assert len(set(image_digests(locked))) == len(locked)


def test_recalibrated_current_passes_and_carries_its_lineage(change_world: dict, tmp_path: Path) -> None:
    from proctovision.monitoring.versions import model_card, version_sha256

    locked = pd.read_csv(change_world["root"] / "split.csv")
    rows = locked[locked["split"] == "val"].assign(path=lambda f: [str(change_world["root"] / p) for p in f["path"]])
    confirmed = recorded(change_world["current"], rows)
    new = tmp_path / "recalibrated"
    version = recalibrate(change_world["current"], confirmed, new, window={"from": "2026-01-01", "to": "2026-02-01"})
    card = model_card(new)
    assert card["version"]["parent_sha256"] == version_sha256(change_world["current"])
    assert card["version"]["method"] == "temperature" and card["version"]["window"]["n_confirmed"] == len(rows)
    assert card["threshold"]["chosen_on"] == "confirmed cases" and version["sha256"] != card["version"]["parent_sha256"]
    record = accept(new, change_world["current"], load_plan(change_world["plan"]), tmp_path / "acc", n_resamples=200)
    assert record["passed"], record["failed"]
    assert abs(record["criteria"][0]["difference"]["difference"]) < 1e-9  # temperature keeps the ranking
