"""Subgroup metrics, their homogeneity test (pinned to metafor's published BCG example) and forest plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, roc_auc_score

from proctovision.evaluation import subgroups
from proctovision.reporting.split_figures import forest_plots

CLASSES = ("normal", "hemorrhoid")

# BCG vaccine trials (Colditz et al. 1994; metafor's dat.bcg): TB cases/non-cases, vaccinated then control arm.
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619], [33, 5036, 47, 5761],
    [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892], [29, 7470, 45, 7232],
    [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338], [27, 16886, 29, 17825],
])


def test_homogeneity_reproduces_metafors_q_for_the_bcg_trials():
    """metafor (Viechtbauer 2010, J Stat Softw 36(3)) reports Q(df = 12) = 152.2330 for the log risk ratios."""
    tpos, tneg, cpos, cneg = BCG.T.astype(float)
    effect = np.log((tpos / (tpos + tneg)) / (cpos / (cpos + cneg)))
    se = np.sqrt(1 / tpos - 1 / (tpos + tneg) + 1 / cpos - 1 / (cpos + cneg))
    levels = [{"level": f"trial {index}", "metrics": {"log_rr": {
        "value": value, "ci95": [value - subgroups.Z_975 * s, value + subgroups.Z_975 * s]}}}
        for index, (value, s) in enumerate(zip(effect, se))]
    test = subgroups.homogeneity(levels, "log_rr")
    assert test["q"] == pytest.approx(152.2330, abs=5e-5)
    assert test["df"] == 12 and test["p_value"] < 1e-20


def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(40):
        site = "A" if patient < 20 else "B"
        label = int(rng.random() < 0.5)
        for shot in range(2):
            noise = 0.25 if site == "A" else 0.6
            probability = float(np.clip(label * 0.7 + 0.15 + rng.normal(0, noise), 0.01, 0.99))
            rows.append({"path": f"p{patient}_{shot}.png", "patient_id": f"P{patient}", "label": CLASSES[label],
                         "prob_normal": 1 - probability, "prob_hemorrhoid": probability,
                         "predicted": CLASSES[int(probability >= 0.5)], "site": site,
                         "device": "scope1" if shot == 0 else "scope2"})
    return pd.DataFrame(rows)


def test_every_level_gets_metrics_with_cis_and_a_heterogeneity_test():
    frame = _predictions()
    result = subgroups.subgroup_metrics(frame, subgroups.split_columns("site, device"), CLASSES, n_resamples=200)
    assert set(result) == {"site", "device"}
    site = result["site"]
    assert [level["level"] for level in site["levels"]] == ["A", "B"]
    for level in site["levels"]:
        rows = frame[frame["site"] == level["level"]]
        accuracy = level["metrics"]["accuracy"]
        assert accuracy["value"] == pytest.approx(accuracy_score(rows["label"], rows["predicted"]))
        assert accuracy["ci95"][0] <= accuracy["value"] <= accuracy["ci95"][1]
        assert level["metrics"]["roc_auc"]["value"] == pytest.approx(
            roc_auc_score(rows["label"] == "hemorrhoid", rows["prob_hemorrhoid"]))
        assert level["n_patients"] == 20
    assert site["heterogeneity"]["roc_auc"]["df"] == 1
    assert site["heterogeneity"]["accuracy"]["p_value"] < 0.05, "site B's noisier model is less accurate"
    assert site["patients_in_several_levels"] == 0
    assert result["device"]["patients_in_several_levels"] == 40
    text = subgroups.markdown(result)
    assert "## By site" in text and "heterogeneity" in text and "several levels" in text


def test_forest_plots_are_drawn(tmp_path: Path):
    result = subgroups.subgroup_metrics(_predictions(), ["site"], CLASSES, n_resamples=50)
    files = forest_plots(result, tmp_path, overall={"accuracy": 0.8})
    assert set(files) == {"site:accuracy", "site:roc_auc"}
    for path in files.values():
        with Image.open(path) as figure:
            assert np.asarray(figure).std() > 5


def test_unknown_column_and_bad_predictions_are_explained():
    frame = _predictions()
    with pytest.raises(subgroups.SubgroupError, match="no column.*sex.*available: path"):
        subgroups.subgroup_metrics(frame, ["sex"], CLASSES)
    with pytest.raises(subgroups.SubgroupError, match="prob_hemorrhoid"):
        subgroups.subgroup_metrics(frame.drop(columns="prob_hemorrhoid"), ["site"], CLASSES)


def test_missing_levels_are_a_level_of_their_own():
    frame = _predictions()
    frame.loc[:9, "site"] = ""
    result = subgroups.subgroup_metrics(frame, ["site"], CLASSES, n_resamples=20)
    assert [level["level"] for level in result["site"]["levels"]] == ["(missing)", "A", "B"]
    assert result["site"]["levels"][0]["n_images"] == 10
