"""Sample size and power pinned to published figures.

Buderer (1996), Acad Emerg Med 3:895, worked example; MKmisc's ``power.diagnostic.test`` examples (Flahault et al.
2005, Chu & Cole 2007); Hanley & McNeil (1982), Radiology 143:29, Table; pROC's ``power.roc.test`` example; RJafroc
``tests/testthat/test-SsSampleSizeRoc.R`` on the Van Dyke data (tests/data/van_dyke.csv, as in test_mrmc.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from proctovision.evaluation import power

VAN_DYKE = Path(__file__).parent / "data" / "van_dyke.csv"
PUBLISHED = power.Components(k_star=114, var_tr=0.00020040252, cov1=0.00034661371, cov2=0.00034407483,
                             cov3=0.00023902837, var=0.00080228827)
OBSERVED_EFFECT = 0.043800322


@pytest.fixture(scope="module")
def pilot():
    frame = pd.read_csv(VAN_DYKE, comment="#").sort_values(["modality", "reader", "case"])
    truth = frame[(frame.reader == 1) & (frame.modality == 1)]["truth"].to_numpy()
    return power.pilot_components(truth, frame["rating"].to_numpy(float).reshape(2, 5, 114))


def test_buderer_worked_example():
    result = power.buderer(0.90, 0.85, 0.20, 0.10)
    assert (result["n_sensitivity"], result["n_specificity"], result["n"]) == (173, 62, 173)


def test_buderer_case_control_gives_the_groups_directly():
    result = power.buderer(0.90, 0.85, None, 0.10, design="case-control")
    # 1.96² · 0.09 / 0.01 = 34.6 and 1.96² · 0.1275 / 0.01 = 49.0, before any prevalence
    assert (result["n_diseased"], result["n_non_diseased"]) == (35, 49)


@pytest.mark.parametrize("sensitivity, delta, expected", [(0.99, 0.14, 40), (0.99, 0.13, 43), (0.99, 0.12, 47),
                                                          (0.95, 0.10, 102)])
def test_exact_binomial_sample_size_matches_mkmisc(sensitivity, delta, expected):
    result = power.exact_sample_size(sensitivity, delta, 0.95)
    assert result["n"] == expected
    assert result["power"] >= 0.95


def test_exact_binomial_power_is_saw_toothed_so_the_first_crossing_is_not_enough():
    result = power.exact_sample_size(0.95, 0.10, 0.95)
    assert result["first_n_reaching_power"] == 93 and result["n"] == 102
    assert power.exact_power(np.arange(94, 102), 0.95, 0.10).min() < 0.95


@pytest.mark.parametrize("cases, se", [(40, 0.0437), (60, 0.0356)])
def test_hanley_mcneil_standard_error(cases, se):
    assert power.hanley_mcneil_se(0.85, cases, cases) == pytest.approx(se, abs=5e-5)


def test_proc_power_roc_test_significance_level():
    assert power.auc_significance(0.73, 41, 72, 0.95) == pytest.approx(0.009238584, abs=5e-10)


def test_auc_power_and_sample_size_invert_each_other():
    at = power.auc_power(0.73, 41, 72, alpha=0.009238584)
    assert at["power"] == pytest.approx(0.95, abs=1e-6)
    sized = power.auc_sample_size(0.73, 0.95, ratio=72 / 41, alpha=0.009238584)
    assert sized["cases"] == 41 and sized["controls"] == 72
    assert sized["se"] == pytest.approx(power.hanley_mcneil_se(0.73, 41, 72))


def test_pilot_components_are_rjafroc_s_on_van_dyke(pilot):
    components, details = pilot
    expected = PUBLISHED.as_dict()
    for key, value in components.as_dict().items():
        assert value == pytest.approx(expected[key], abs=5e-11), key
    assert details["observed_effect"] == pytest.approx(OBSERVED_EFFECT, abs=5e-9)


def test_power_at_the_observed_effect_with_6_readers_and_111_cases(pilot):
    components, details = pilot
    result = power.reader_study_power(components, details["observed_effect"], 6, 111)
    assert result["power"] == pytest.approx(0.5526116, abs=5e-8)


def test_cases_for_power_08_at_the_observed_effect_with_6_readers(pilot):
    components, details = pilot
    assert power.reader_study_cases(components, details["observed_effect"], 6, 0.8)["cases"] == 251


@pytest.mark.parametrize("analysis, cases, expected", [("rrrc", 165, 0.80541995), ("frrc", 131, 0.80091813),
                                                       ("rrfc", 53, 0.80496663)])
def test_power_by_analysis_with_10_readers(analysis, cases, expected):
    result = power.reader_study_power(PUBLISHED, -OBSERVED_EFFECT, 10, cases, analysis)
    assert result["power"] == pytest.approx(expected, abs=1e-8)  # published to 8 decimals
    sized = power.reader_study_cases(PUBLISHED, -OBSERVED_EFFECT, 10, 0.8, analysis)
    below = power.reader_study_power(PUBLISHED, -OBSERVED_EFFECT, 10, sized["cases"] - 1, analysis)["power"]
    assert sized["power"] >= 0.8 > below and sized["cases"] <= cases


def test_non_inferiority_is_the_two_sided_power_at_effect_plus_margin():
    plain = power.reader_study_power(PUBLISHED, 0.01 + 0.03, 6, 200)
    sized = power.reader_study_power(PUBLISHED, 0.01, 6, 200, margin=0.03)
    assert sized["power"] == pytest.approx(plain["power"])
    assert "non-inferiority" in sized["design"] and sized["one_sided_alpha"] == 0.025


def test_negative_reader_interaction_and_covariance_difference_are_clamped_at_zero():
    negative = power.Components(114, -0.001, 0.00034661371, 0.0002, 0.0003, 0.00080228827)
    clamped = power.Components(114, 0.0, 0.00034661371, 0.0003, 0.0003, 0.00080228827)
    result = power.reader_study_power(negative, 0.05, 5, 100)
    assert result["power"] == pytest.approx(power.reader_study_power(clamped, 0.05, 5, 100)["power"])
    assert [note.split(" ")[0] for note in result["notes"]] == ["VarTR", "Cov2"]


@pytest.mark.parametrize("call, message", [
    (lambda: power.buderer(1.2, 0.85, 0.2, 0.1), "sensitivity must be a proportion"),
    (lambda: power.buderer(0.9, 0.85, 0.0, 0.1), "prevalence must be a proportion"),
    (lambda: power.reader_study_power(PUBLISHED, 0.0, 5, 100), "effect of 0"),
    (lambda: power.reader_study_power(power.Components(114, 0, 0.001, 0.0, 0.0, 0.001), 0.05, 5, 100),
     "non-positive variance"),
    (lambda: power.pilot_components(np.array([0, 1, 0, 1]), np.ones((1, 3, 4))), "one reading condition"),
    (lambda: power.pilot_components(np.array([0, 1, 0, 1]), np.ones((2, 1, 4))), "one reader"),
    (lambda: power.components_from({"k_star": 114}), "missing key"),
    (lambda: power.reader_study_cases(PUBLISHED, 0.001, 2, 0.99), "add readers"),
])
def test_bad_input_gets_one_sentence(call, message):
    with pytest.raises(power.PlanError, match=message):
        call()


def van_dyke_sheets(folder: Path, conditions: tuple[str, str] = ("film", "cine")) -> tuple[Path, Path]:
    """The Van Dyke ratings as a readers.csv and a truth manifest, the sheets `compare` reads."""
    frame = pd.read_csv(VAN_DYKE, comment="#")
    labels = {0: "normal", 1: "hemorrhoid"}
    truth = frame[(frame.reader == 1) & (frame.modality == 1)]
    pd.DataFrame({"path": [f"case{case:03d}.png" for case in truth["case"]],
                  "label": truth["truth"].map(labels)}).to_csv(folder / "truth.csv", index=False)
    pd.DataFrame({"path": [f"case{case:03d}.png" for case in frame["case"]],
                  "reader": frame["reader"].map("r{}".format),
                  "label": np.where(frame["rating"] >= 3, "hemorrhoid", "normal"), "score": frame["rating"],
                  "condition": frame["modality"].map(dict(enumerate(conditions, 1)))}
                 ).to_csv(folder / "readers.csv", index=False)
    return folder / "readers.csv", folder / "truth.csv"


def test_pilot_sheets_read_as_compare_reads_them_give_the_published_components(tmp_path):
    readers, truth = van_dyke_sheets(tmp_path)
    components, details = power.pilot_from_sheets(readers, truth, ["film", "cine"])
    for key, value in components.as_dict().items():
        assert value == pytest.approx(PUBLISHED.as_dict()[key], abs=5e-11), key
    assert details["observed_effect"] == pytest.approx(OBSERVED_EFFECT, abs=5e-9)
    assert details["readers"] == ["r1", "r2", "r3", "r4", "r5"] and details["n_images"] == 114


def test_pilot_with_an_unknown_or_a_single_condition_is_refused(tmp_path):
    readers, truth = van_dyke_sheets(tmp_path)
    with pytest.raises(power.PlanError, match="no condition 'aided'"):
        power.pilot_from_sheets(readers, truth, ["film", "aided"])
    with pytest.raises(power.PlanError, match="one reading condition"):
        power.pilot_from_sheets(readers, truth, ["film"])
