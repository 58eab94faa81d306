"""OR-H MRMC analysis pinned to OR-DBM MRMC 2.51's published output for the Van Dyke data set.

Reference: RJafroc (github.com/dpc10ster/RJafroc) inst/IowaResults/VanDyke.txt (two modalities) and
VanDyke1T.txt (modality 1 alone), both OR-DBM MRMC 2.51 runs on the ratings in tests/data/van_dyke.csv.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from proctovision.evaluation import mrmc

DATA = Path(__file__).parent / "data" / "van_dyke.csv"


@pytest.fixture(scope="module")
def van_dyke() -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA, comment="#").sort_values(["modality", "reader", "case"])
    truth = frame[(frame.reader == 1) & (frame.modality == 1)]["truth"].to_numpy()
    ratings = frame["rating"].to_numpy(float).reshape(2, 5, 114)
    return truth, ratings


def test_fixture_reproduces_the_published_reader_aucs(van_dyke):
    truth, ratings = van_dyke
    published = [[0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
                 [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169]]
    for t in range(2):
        for r in range(5):
            assert mrmc.figure_of_merit(truth, ratings[t, r]) == pytest.approx(published[t][r], abs=5e-9)
            assert mrmc.figure_of_merit(truth, ratings[t, r]) == pytest.approx(roc_auc_score(truth, ratings[t, r]))


def test_or_analysis_matches_or_dbm_mrmc_on_van_dyke(van_dyke):
    truth, ratings = van_dyke
    result = mrmc.or_analysis(truth, ratings)
    variance = result["variance"]
    # "Obuchowski-Rockette variance component and covariance estimates" and the T x R ANOVA of AUCs
    assert variance["var_error"] == pytest.approx(0.00080229, abs=5e-9)
    assert variance["cov1"] == pytest.approx(0.00034661, abs=5e-9)
    assert variance["cov2"] == pytest.approx(0.00034407, abs=5e-9)
    assert variance["cov3"] == pytest.approx(0.00023903, abs=5e-9)
    assert variance["ms_t"] == pytest.approx(0.00479617, abs=5e-9)
    assert variance["ms_r"] == pytest.approx(0.00383620, abs=5e-9)
    assert variance["ms_tr"] == pytest.approx(0.00055103, abs=5e-9)
    assert result["condition_means"]["1"] == pytest.approx(0.89703704, abs=5e-9)
    assert result["condition_means"]["2"] == pytest.approx(0.94083736, abs=5e-9)
    # Analysis 1 (random readers, random cases)
    rrrc = result["rrrc"]
    assert rrrc["error_term"] == pytest.approx(0.00107626, abs=5e-9)
    assert rrrc["f"] == pytest.approx(4.46, abs=5e-3)
    assert rrrc["ddf"] == pytest.approx(15.26, abs=5e-3)
    assert rrrc["p_value"] == pytest.approx(0.0517, abs=5e-5)
    difference = rrrc["differences"][0]
    assert difference["difference"] == pytest.approx(-0.04380032, abs=5e-9)
    assert difference["se"] == pytest.approx(0.02075, abs=5e-6)
    assert difference["t"] == pytest.approx(-2.11, abs=5e-3)
    assert difference["ci95"][0] == pytest.approx(-0.08796, abs=5e-6)
    assert difference["ci95"][1] == pytest.approx(0.00036, abs=5e-6)
    # Analysis 1 c) single-treatment intervals
    for name, (se, df, low, high) in {"1": (0.03317360, 12.74, 0.82522360, 0.96885048),
                                      "2": (0.02156637, 12.71, 0.89413783, 0.98753689)}.items():
        single = result["single_condition"][name]
        assert single["se"] == pytest.approx(se, abs=5e-9)
        assert single["df"] == pytest.approx(df, abs=5e-3)
        assert single["ci95"] == pytest.approx([low, high], abs=5e-8)
    # Analysis 2 (fixed readers, random cases)
    fixed = result["frrc"]["differences"][0]
    assert fixed["se"] == pytest.approx(0.01872, abs=5e-6)
    assert fixed["p_value"] == pytest.approx(0.0193, abs=5e-5)
    assert fixed["ci95"] == pytest.approx([-0.08049, -0.00711], abs=5e-6)
    assert result["resampled_unit"] == "case" and result["n_units"] == 114


@pytest.mark.parametrize("modality, mean, se, df, low, high", [
    (0, 0.89703704, 0.03317360, 12.74, 0.82522360, 0.96885048),  # VanDyke1T.txt and VanDyke.txt, Analysis 1 c)
    (1, 0.94083736, 0.02156637, 12.71, 0.89413783, 0.98753689),  # VanDyke.txt, Analysis 1 c), treatment 2
])
def test_model_vs_readers_with_an_uninformative_model_is_the_published_single_modality_analysis(
    van_dyke, modality, mean, se, df, low, high,
):
    """A constant model has AUC 0.5 with no case variance: model − readers is −(readers − 0.5), whose OR-H
    interval is the published single-treatment one shifted by 0.5."""
    truth, ratings = van_dyke
    result = mrmc.model_vs_readers(truth, np.zeros(114), ratings[modality])
    difference = result["difference"]
    assert result["model_fom"] == 0.5
    assert result["readers_mean"] == pytest.approx(mean, abs=5e-9)
    assert difference["difference"] == pytest.approx(0.5 - mean, abs=5e-9)
    assert difference["se"] == pytest.approx(se, abs=5e-9)
    assert difference["df"] == pytest.approx(df, abs=5e-3)
    assert difference["ci95"] == pytest.approx([0.5 - high, 0.5 - low], abs=5e-8)


def test_model_vs_readers_equals_or_analysis_where_the_model_reads_for_every_reader(van_dyke):
    """1T-RRRC is the two-condition OR analysis in which the second condition is the model for each reader."""
    truth, ratings = van_dyke
    model = ratings[1, 3] + 0.1 * ratings[1, 0]
    one = mrmc.model_vs_readers(truth, model, ratings[0])["difference"]
    crossed = mrmc.or_analysis(truth, np.stack([np.tile(model, (5, 1)), ratings[0]]))["rrrc"]["differences"][0]
    for key in ("difference", "se", "df", "p_value"):
        assert one[key] == pytest.approx(crossed[key], rel=1e-9)
    assert one["ci95"] == pytest.approx(crossed["ci95"], rel=1e-9)


@pytest.mark.parametrize("fom", ["auc", "accuracy", "sensitivity", "specificity"])
def test_grouped_jackknife_equals_leaving_each_patient_out(van_dyke, fom):
    truth, ratings = van_dyke
    values = ratings[0, 1] if fom == "auc" else (ratings[0, 1] >= 3).astype(float)
    patients = np.arange(114) // 3
    fast = mrmc.jackknife_foms(truth, values, patients, fom)
    slow = [mrmc.figure_of_merit(truth[patients != p], values[patients != p], fom) for p in np.unique(patients)]
    assert fast == pytest.approx(slow, abs=1e-12)


def test_patients_with_several_images_are_the_resampled_unit(van_dyke):
    truth, ratings = van_dyke
    patients = np.arange(114) // 2
    result = mrmc.or_analysis(truth, ratings, groups=patients)
    assert result["resampled_unit"] == "patient" and result["n_units"] == 57
    assert result["rrrc"]["differences"][0]["se"] != pytest.approx(0.02075, abs=1e-4)


def test_bootstrap_covariance_is_close_to_the_jackknife(van_dyke):
    truth, ratings = van_dyke
    result = mrmc.or_analysis(truth, ratings, method="bootstrap", n_resamples=400, seed=1)
    assert result["covariance"] == "bootstrap" and result["n_resamples"] == 400
    assert result["variance"]["var_error"] == pytest.approx(0.00080229, rel=0.25)
    assert result["rrrc"]["differences"][0]["difference"] == pytest.approx(-0.04380032, abs=5e-9)


def test_bad_designs_are_refused_with_the_reason(van_dyke):
    truth, ratings = van_dyke
    with pytest.raises(mrmc.MRMCError, match="two readers"):
        mrmc.or_analysis(truth, ratings[:, :1])
    with pytest.raises(mrmc.MRMCError, match="at least 2 conditions"):
        mrmc.or_analysis(truth, ratings[:1])
    with pytest.raises(mrmc.MRMCError, match="figure of merit"):
        mrmc.or_analysis(truth, ratings, fom="kappa")
    with pytest.raises(mrmc.MRMCError, match="both classes"):
        mrmc.or_analysis(np.ones(114), ratings)
    holes = ratings.copy()
    holes[0, 0, 3] = np.nan
    with pytest.raises(mrmc.MRMCError, match="fully crossed"):
        mrmc.or_analysis(truth, holes)


def test_identical_conditions_give_no_infinite_numbers(van_dyke):
    """No reader changes between conditions: the interaction is zero and the degrees of freedom undefined; the
    result says so with None rather than an infinity that strict JSON cannot hold."""
    truth, ratings = van_dyke
    result = mrmc.or_analysis(truth, np.stack([ratings[0], ratings[0]]))
    difference = result["rrrc"]["differences"][0]
    assert difference["difference"] == 0 and difference["df"] is None and difference["p_value"] is None
    json.dumps(result, allow_nan=False)


# --- variance components of zero or below, and undefined degrees of freedom ---
# OR-DBM MRMC 2.51 on Van Dyke (VanDyke.txt), Analysis 2 d): per reader, modality 1 - 2, StdErr = sqrt[2*(Var(error)
# - Cov1)], z interval and p.
PUBLISHED_SINGLE_READER = [
    (-0.02818, 0.02551, 0.2693, -0.07818, 0.02182), (-0.04654, 0.02630, 0.0768, -0.09809, 0.00501),
    (-0.01787, 0.03121, 0.5668, -0.07904, 0.04330), (-0.02625, 0.01729, 0.1290, -0.06014, 0.00764),
    (-0.10016, 0.04406, 0.0230, -0.18651, -0.01381),
]


@pytest.mark.parametrize("reader", range(5))
def test_readers_who_read_alike_give_an_infinite_ddf_and_the_published_z_interval(van_dyke, reader):
    """Two copies of one reader: MS(R) (or MS(T*R)) is 0 and Cov2 (Cov2 - Cov3) is Var(error) - Cov1 > 0, so Hillis'
    ddf_H = error²/0 is infinite. RJafroc computes ``qt(0.025, Inf)``: the z interval, which is OR-DBM MRMC's
    published single-reader fixed-case analysis of that reader. The result says why df is not a number."""
    truth, ratings = van_dyke
    difference, se, p, low, high = PUBLISHED_SINGLE_READER[reader]
    copies = np.stack([ratings[:, reader], ratings[:, reader]], axis=1)  # [modality, copy, case]
    crossed = mrmc.or_analysis(truth, copies)
    versus = mrmc.model_vs_readers(truth, ratings[0, reader], copies[1])
    for row in (crossed["rrrc"]["differences"][0], versus["difference"]):
        assert row["difference"] == pytest.approx(difference, abs=5e-6)
        assert row["se"] == pytest.approx(se, abs=5e-6)
        assert row["p_value"] == pytest.approx(p, abs=5e-5)
        assert row["ci95"] == pytest.approx([low, high], abs=5e-6)
        assert row["df"] is None and row["normal_approximation"] is True
        assert "ddf_H is infinite" in row["note"]
    assert crossed["rrrc"]["p_value"] == pytest.approx(p, abs=5e-5), "F(1, Inf) is chi-square(1)/1"
    json.dumps(crossed, allow_nan=False)


def _sensitivity_readers(misses: list[tuple[int, ...]], n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n positive and n negative cases; a model that finds every positive; readers missing the given positives."""
    truth = np.repeat([1, 0], n)
    readers = np.stack([truth.copy() for _ in misses]).astype(float)
    for reader, missed in enumerate(misses):
        readers[reader, list(missed)] = 0
    return truth, truth.astype(float), readers


def test_a_zero_error_term_gives_no_interval_df_or_p_as_rjafroc():
    """The demo's case: two readers with equal sensitivity (MS(R) = 0) who miss different cases (Cov2 < 0). The error
    term MS(R) + r*max(Cov2, 0) is 0; RJafroc's StSignificanceTestingCadVsRad (1T-RRRC) then has ddf_H = 0/0 = NaN and
    NaN for the CI and p, as has MRMCaov. The estimate stands, with the reason, and no interval of width zero."""
    truth, model, readers = _sensitivity_readers([(0, 1), (2, 3)])
    result = mrmc.model_vs_readers(truth, model, readers, "sensitivity")
    row = result["difference"]
    assert result["variance"]["ms_r"] == 0 and result["variance"]["cov2"] < 0
    assert row["difference"] == pytest.approx(0.2) and row["se"] == 0
    assert row["ci95"] == [None, None] and row["df"] is None and row["p_value"] is None
    assert "Cov2 ≤ 0" in row["note"] and "error term is 0" in row["note"]
    json.dumps(result, allow_nan=False)


def test_negative_cov2_is_counted_as_zero_which_is_the_t_test_of_the_reader_differences():
    """Hillis' constraint max(Cov2, 0): with Cov2 < 0 the error term is MS(R) alone and ddf_H = r - 1, RJafroc's
    1T-RRFC (``t.test`` of the reader - model differences); a one-sample t-test is the reference."""
    truth, model, readers = _sensitivity_readers([(0, 1, 2), (3,), (4, 5)])
    result = mrmc.model_vs_readers(truth, model, readers, "sensitivity")
    assert result["variance"]["cov2"] < 0 < result["variance"]["ms_r"]
    differences = 1.0 - readers[:, :10].mean(axis=1)
    reference = stats.ttest_1samp(differences, 0.0)
    interval = reference.confidence_interval(0.95)
    row = result["difference"]
    assert row["df"] == pytest.approx(2) and row["t"] == pytest.approx(reference.statistic)
    assert row["p_value"] == pytest.approx(reference.pvalue)
    assert row["ci95"] == pytest.approx([interval.low, interval.high])
    assert row["note"].startswith("Cov2 ≤ 0, counted as 0")


def test_cov2_below_cov3_is_counted_as_zero_which_is_the_paired_t_test_of_the_readers():
    """Two conditions with Cov2 - Cov3 < 0: the error term is MS(T*R), ddf (t-1)(r-1): OR-DBM MRMC's Analysis 3,
    "equivalent to a paired t-test applied to the AUCs" (here sensitivities)."""
    truth, _, first = _sensitivity_readers([(0, 1), (2, 3), (4,)])
    _, _, second = _sensitivity_readers([(2, 3, 4), (0, 1), (5, 6)])
    result = mrmc.or_analysis(truth, np.stack([first, second]), "sensitivity")
    variance = result["variance"]
    assert variance["cov2"] - variance["cov3"] < 0 < variance["ms_tr"]
    reference = stats.ttest_rel(first[:, :10].mean(axis=1), second[:, :10].mean(axis=1))
    row = result["rrrc"]["differences"][0]
    assert row["df"] == pytest.approx(2) and row["p_value"] == pytest.approx(reference.pvalue)
    assert row["ci95"] == pytest.approx(list(reference.confidence_interval(0.95)))
    assert "Cov2 − Cov3 ≤ 0" in row["note"]


def test_van_dyke_needs_no_note(van_dyke):
    truth, ratings = van_dyke
    result = mrmc.or_analysis(truth, ratings)
    assert result["rrrc"]["differences"][0]["note"] is None
    assert all(single["note"] is None for single in result["single_condition"].values())
