"""Which MRMC analyses a readers table allows, from arrays (no model training)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proctovision.evaluation import mrmc, reader_study


def _readers(paths: list[str], truth: np.ndarray, classes: tuple[str, ...], names: tuple[str, ...],
             conditions: tuple[str, ...] = ("",), scores: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for condition in conditions:
        for name in names:
            for path, label in zip(paths, truth):
                read = label if rng.random() < 0.8 else (label + 1) % len(classes)
                rows.append({"path": path, "reader": name, "label": classes[read], "condition": condition,
                             "score": float(read * 2 + rng.integers(1, 3)) if scores else np.nan})
    return pd.DataFrame(rows)


def test_labels_only_on_three_classes_give_accuracy_against_the_model():
    classes = ("Rf0", "Rf1", "Rf2")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 40)
    paths = [f"i{index}" for index in range(40)]
    frame = _readers(paths, truth, classes, ("a", "b", "c"))
    model = np.where(rng.random(40) < 0.9, truth, (truth + 1) % 3)
    result = reader_study.analyse(frame, paths, truth, np.array(paths), {"net": (model, None)}, classes)
    assert [item["figure_of_merit"] for item in result["analyses"]] == ["accuracy"]
    analysis = result["analyses"][0]
    assert analysis["model_fom"] == pytest.approx(np.mean(model == truth))
    for name in ("a", "b", "c"):
        own = frame[frame["reader"] == name]
        assert analysis["reader_foms"][name] == pytest.approx(np.mean(own["label"].map(classes.index) == truth))
    assert result["resampled_unit"] == "image" and result["n_units"] == 40
    assert "model vs readers | accuracy" in reader_study.markdown(result)


def test_scores_and_two_conditions_give_auc_analyses_matching_the_library():
    classes = ("normal", "hemorrhoid")
    rng = np.random.default_rng(2)
    truth = np.repeat([0, 1], 30)
    paths = [f"i{index}" for index in range(60)]
    patients = np.array([f"P{index // 2}" for index in range(60)])
    frame = _readers(paths, truth, classes, ("a", "b"), ("unaided", "aided"), scores=True)
    probabilities = np.clip(truth * 0.6 + 0.2 + rng.normal(0, 0.2, 60), 0, 1)
    model = (np.column_stack([1 - probabilities, probabilities]).argmax(1),
             np.column_stack([1 - probabilities, probabilities]))
    result = reader_study.analyse(frame, paths, truth, patients, {"net": model}, classes)
    crossed = next(item for item in result["analyses"] if item["design"] == "conditions"
                   and item["figure_of_merit"] == "auc")
    ratings = np.stack([[frame[(frame["condition"] == condition) & (frame["reader"] == reader)]["score"].to_numpy()
                         for reader in ("a", "b")] for condition in ("aided", "unaided")])
    expected = mrmc.or_analysis(truth, ratings, groups=patients)
    assert crossed["rrrc"]["differences"][0]["ci95"] == pytest.approx(expected["rrrc"]["differences"][0]["ci95"])
    assert result["resampled_unit"] == "patient" and result["n_units"] == 30
    versus = [item for item in result["analyses"] if item["design"] == "model_vs_readers"]
    assert {(item["condition"], item["figure_of_merit"]) for item in versus} == {
        (c, f) for c in ("aided", "unaided") for f in ("auc", "sensitivity", "specificity")}


def test_one_reader_is_no_panel():
    classes = ("normal", "hemorrhoid")
    truth = np.repeat([0, 1], 5)
    paths = [f"i{index}" for index in range(10)]
    frame = _readers(paths, truth, classes, ("solo",))
    assert reader_study.analyse(frame, paths, truth, np.array(paths), {}, classes) is None
    assert reader_study.markdown(None) == ""


def _equal_sensitivity_readers() -> dict:
    """The demo's case: two readers with equal sensitivity who miss different positives, a model that misses none."""
    classes = ("normal", "hemorrhoid")
    truth = np.repeat([1, 0], 10)
    paths = [f"i{index}" for index in range(20)]
    rows = []
    for name, missed in (("a", {0, 1}), ("b", {2, 3})):
        for index, (path, label) in enumerate(zip(paths, truth)):
            rows.append({"path": path, "reader": name, "condition": "", "score": np.nan,
                         "label": classes[0 if index in missed else label]})
    return reader_study.analyse(pd.DataFrame(rows), paths, truth, np.array(paths), {"net": (truth.copy(), None)},
                                classes)


def test_a_degenerate_analysis_shows_the_estimate_and_the_reason_never_a_zero_width_interval(tmp_path):
    import json

    from proctovision.reporting.comparison import mrmc_rows
    from proctovision.reporting.report import build_report

    result = _equal_sensitivity_readers()
    sensitivity = next(item for item in result["analyses"] if item["figure_of_merit"] == "sensitivity")
    assert sensitivity["difference"]["ci95"] == [None, None] and "error term is 0" in sensitivity["difference"]["note"]
    line = next(line for line in reader_study.markdown(result).splitlines() if "| sensitivity |" in line)
    assert "| +0.200 | - | - |" in line and "error term is 0" in line
    row = next(row for row in mrmc_rows(result) if row["fom"] == "sensitivity")
    assert row["difference"] == "+0.200" and "error term is 0" in row["note"]
    folder = tmp_path / "cmp"
    folder.mkdir()
    (folder / "comparison.json").write_text(json.dumps({"split": "test", "n_images": 20, "table": [],
                                                         "mrmc": result}, allow_nan=False))
    html = build_report([], tmp_path / "report.html", comparison=folder, cams=False).read_text()
    cells = html[html.index('<table class="mrmc">'):].split("</table>")[0]
    assert "+0.200 (" not in cells and "+0.200</td>" in cells and "error term is 0" in cells


def test_an_old_comparison_with_a_zero_width_interval_is_shown_without_it():
    from proctovision.reporting.comparison import mrmc_rows

    old = {"analyses": [{"design": "model_vs_readers", "figure_of_merit": "sensitivity", "model_fom": 0.9,
                         "readers_mean": 0.95, "difference": {"a": "net", "difference": -0.05, "ci95": [-0.05, -0.05],
                                                              "df": None, "p_value": None}}]}
    row = mrmc_rows(old)[0]
    assert row["difference"] == "-0.050" and row["note"]
