"""Agreement figures pinned to published worked examples, and the `agreement` command end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from typer.testing import CliRunner

from proctovision.cli import app
from proctovision.evaluation import agreement
from proctovision.evaluation.readers import read_readers

# Fleiss (1971), Table 1: 30 patients, 6 psychiatrists, 5 diagnoses (coded 1-5), as statsmodels' and irr's
# `diagnoses` data hold it. Fleiss reports kappa = .430.
FLEISS_1971 = np.array([
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4], [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4], [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]) - 1

# SAS PROC FREQ's agreement example as statsmodels' tests document it: 19 subjects, 3 categories.
SAS_TABLE = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]


def _raters(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    a = [i for i, row in enumerate(table) for j, count in enumerate(row) for _ in range(count)]
    b = [j for i, row in enumerate(table) for j, count in enumerate(row) for _ in range(count)]
    return np.array(a), np.array(b)


def test_fleiss_kappa_of_fleiss_1971():
    result = agreement.fleiss(FLEISS_1971, 5, n_resamples=300)
    assert result["kappa"] == pytest.approx(0.430, abs=5e-4)
    low, high = result["ci95"]
    assert low < result["kappa"] < high and high - low < 0.4
    assert result["p_value"] < 1e-10 and result["n_readers"] == 6 and result["n_images"] == 30


def test_fleiss_kappa_of_the_wikipedia_worked_example():
    """Ten subjects, fourteen raters, five categories: kappa = 0.210 (the example statsmodels tests against)."""
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    ratings = np.array([np.repeat(np.arange(5), row) for row in counts])
    assert agreement.fleiss(ratings, 5, n_resamples=50)["kappa"] == pytest.approx(0.210, abs=5e-4)


def test_fleiss_null_standard_error_matches_raters_drawn_at_random():
    """Under no agreement, kappa's spread over random panels with Fleiss 1971's category shares is the
    Fleiss-Nee-Landis standard error."""
    counts, _ = aggregate_raters(FLEISS_1971, n_cat=5)
    shares = counts.sum(axis=0) / counts.sum()
    rng = np.random.default_rng(0)
    draws = [agreement.fleiss(rng.choice(5, size=(30, 6), p=shares), 5, n_resamples=0)["kappa"]
             for _ in range(600)]
    assert agreement.fleiss_se0(counts) == pytest.approx(np.std(draws), rel=0.12)


def test_cohen_kappa_matches_the_sas_example():
    a, b = _raters(SAS_TABLE)
    simple = agreement.cohen(a, b, 3)
    assert simple["kappa"] == pytest.approx(0.4842, abs=5e-5)
    assert simple["se"] == pytest.approx(0.1380, abs=5e-5)
    assert simple["ci95"] == pytest.approx([0.2137, 0.7547], abs=5e-5)
    assert simple["p_value"] == pytest.approx(0.0011, abs=5e-5)
    linear = agreement.cohen(a, b, 3, "linear")
    assert linear["kappa"] == pytest.approx(0.4701, abs=5e-5)
    assert linear["ci95"] == pytest.approx([0.1845, 0.7558], abs=5e-5)
    quadratic = agreement.cohen(a, b, 3, "quadratic")
    assert quadratic["kappa"] == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))


def _readers_csv(folder: Path, conditions: bool = False) -> Path:
    rows = []
    grades = ("Rf0", "Rf1", "Rf2")
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 24)
    for reader, error in (("a", 0.1), ("b", 0.3), ("c", 0.5)):
        for image, grade in enumerate(truth):
            read = grade if rng.random() > error else min(2, grade + 1)
            rows.append({"path": f"img{image}.png", "reader": reader, "label": grades[read],
                         "condition": "aided" if conditions and reader != "c" else "unaided"})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "readers.csv", index=False)
    pd.DataFrame({"path": [f"img{index}.png" for index in range(24)], "label": [grades[g] for g in truth],
                  "patient_id": [f"P{index // 2}" for index in range(24)]}).to_csv(folder / "manifest.csv",
                                                                                   index=False)
    return folder / "readers.csv"


def test_agreement_command_writes_pairs_panel_and_reference(tmp_path: Path):
    readers = _readers_csv(tmp_path / "study")
    out = tmp_path / "agreement"
    result = CliRunner().invoke(app, ["agreement", str(readers), "--task", "ldrf", "--truth",
                                      str(tmp_path / "study" / "manifest.csv"), "--out", str(out),
                                      "--resamples", "200"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "agreement.json").read_text())
    block = payload["conditions"]["unaided"]
    assert payload["ordinal"] is True and len(block["pairs"]) == 3 and len(block["vs_reference"]) == 3
    frame = pd.read_csv(readers)
    table = frame.pivot(index="path", columns="reader", values="label")
    pair = next(item for item in block["pairs"] if (item["a"], item["b"]) == ("a", "b"))
    assert pair["unweighted"]["kappa"] == pytest.approx(cohen_kappa_score(table["a"], table["b"]))
    grade = {"Rf0": 0, "Rf1": 1, "Rf2": 2}
    assert pair["quadratic"]["kappa"] == pytest.approx(
        cohen_kappa_score(table["a"].map(grade), table["b"].map(grade), weights="quadratic"))
    assert "patient" in block["fleiss"]["ci_method"]
    manifest = pd.read_csv(tmp_path / "study" / "manifest.csv").set_index("path")["label"]
    best = next(item for item in block["vs_reference"] if item["reader"] == "a")
    assert best["unweighted"]["kappa"] == pytest.approx(cohen_kappa_score(table["a"], manifest.loc[table.index]))
    worst = next(item for item in block["vs_reference"] if item["reader"] == "c")
    assert best["unweighted"]["kappa"] > worst["unweighted"]["kappa"]
    assert "Fleiss' kappa" in (out / "agreement.md").read_text()
    assert len(pd.read_csv(out / "agreement.csv")) == 6


def test_agreement_is_given_per_condition(tmp_path: Path):
    readers = _readers_csv(tmp_path / "study", conditions=True)
    frame, _ = read_readers(readers, ("Rf0", "Rf1", "Rf2"))
    result = agreement.agreement(frame, ("Rf0", "Rf1", "Rf2"), n_resamples=20)
    assert set(result["conditions"]) == {"aided", "unaided"}
    assert result["conditions"]["unaided"]["fleiss"] is None, "one reader is no panel"
    assert result["conditions"]["aided"]["readers"] == ["a", "b"]


def test_bad_inputs_are_one_line_errors(tmp_path: Path):
    readers = _readers_csv(tmp_path / "study")
    result = CliRunner().invoke(app, ["agreement", str(readers), "--task", "hemorrhoid", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "is not a class" in result.output
    result = CliRunner().invoke(app, ["agreement", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "file not found" in result.output
    bad_truth = tmp_path / "truth.csv"
    bad_truth.write_text("path,grade\nimg0.png,Rf0\n")
    result = CliRunner().invoke(app, ["agreement", str(readers), "--truth", str(bad_truth), "--out",
                                      str(tmp_path / "o")])
    assert result.exit_code == 1 and "missing column(s) label" in result.output
