"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis' degrees of freedom (OR-H).

Readers and cases are both random: the answer generalises to other readers and other patients, which a test
that treats images as independent (McNemar, DeLong) and each reader separately cannot do. Two designs:

- ``or_analysis``: the same readers read the same cases under two or more conditions (unaided/aided, two
  modalities); the test of equal condition means and every pairwise difference (RJafroc's ``StSignificanceTesting``
  with method ``OR``, OR-DBM MRMC's "Analysis 1"), plus fixed-reader and single-condition results.
- ``model_vs_readers``: a model as a fixed participant against a panel of readers on the same cases (RJafroc's
  ``StSignificanceTestingCadVsRad`` with method ``1T-RRRC``): a single-condition OR analysis of the differences.

The covariances of the figures of merit come from the jackknife over cases (Hillis 2005) or, as an option, the
bootstrap. Images of one patient are not independent, so both resample patients (with all their images) when
patient ids are given; the output names the unit that was resampled.

Ratings are arrays ``[condition, reader, case]``: scores (any scale, higher = more likely positive) for the AUC, or
predicted class indices for accuracy, sensitivity and specificity.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import stats
from scipy.stats import rankdata

FIGURES_OF_MERIT = ("auc", "accuracy", "sensitivity", "specificity")
METHOD = "Obuchowski-Rockette with Hillis (2007) denominator degrees of freedom; random readers, random cases"


class MRMCError(ValueError):
    """Data an MRMC analysis cannot use; the message says why."""


def _kernel_sums(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per case, the Mann-Whitney kernel summed against every case of the other class (ties count one half)."""
    pos, neg = scores[positive], scores[~positive]
    m = len(pos)
    all_ranks = rankdata(np.concatenate([pos, neg]))
    sums = np.empty(len(scores))
    sums[positive] = all_ranks[:m] - rankdata(pos)
    sums[~positive] = m - (all_ranks[m:] - rankdata(neg))
    return sums


def _group_kernel(scores: np.ndarray, positive: np.ndarray, members: np.ndarray) -> float:
    """Kernel summed over the positive x negative pairs inside one group (counted twice by a removal)."""
    inside = scores[members]
    pos, neg = inside[positive[members]], inside[~positive[members]]
    if not len(pos) or not len(neg):
        return 0.0
    difference = pos[:, None] - neg[None, :]
    return float((difference > 0).sum() + 0.5 * (difference == 0).sum())


def _fom_terms(truth: np.ndarray, values: np.ndarray, fom: str) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator share of each case for a proportion figure of merit."""
    if fom == "accuracy":
        return (values == truth).astype(float), np.ones(len(truth))
    if fom == "sensitivity":
        positive = truth == 1
        return (positive & (values == 1)).astype(float), positive.astype(float)
    if fom == "specificity":
        negative = truth == 0
        return (negative & (values == 0)).astype(float), negative.astype(float)
    raise MRMCError(f"unknown figure of merit {fom!r}; choose one of {', '.join(FIGURES_OF_MERIT)}")


def figure_of_merit(truth: np.ndarray, values: np.ndarray, fom: str = "auc") -> float:
    """The Wilcoxon AUC of scores, or accuracy/sensitivity/specificity of predicted classes."""
    truth, values = np.asarray(truth), np.asarray(values, float)
    if fom == "auc":
        positive = truth.astype(bool)
        m, n = int(positive.sum()), int((~positive).sum())
        if not m or not n:
            return float("nan")
        return float(_kernel_sums(values, positive)[positive].sum() / (m * n))
    numerator, denominator = _fom_terms(truth, values, fom)
    return float(numerator.sum() / denominator.sum()) if denominator.sum() else float("nan")


def jackknife_foms(truth: np.ndarray, values: np.ndarray, groups: np.ndarray, fom: str) -> np.ndarray:
    """Figure of merit with each group of cases left out in turn, one per group (in ``np.unique`` order).

    Computed from per-case sums, so leaving out any of thousands of groups costs no re-ranking.
    """
    truth, values = np.asarray(truth), np.asarray(values, float)
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    if fom == "auc":
        positive = truth.astype(bool)
        sums = _kernel_sums(values, positive)
        total = sums[positive].sum()
        pos_removed = np.bincount(inverse, weights=positive.astype(float), minlength=n_groups)
        neg_removed = np.bincount(inverse, weights=(~positive).astype(float), minlength=n_groups)
        removed = np.bincount(inverse, weights=sums, minlength=n_groups)
        inside = np.zeros(n_groups)
        for group in np.unique(inverse[np.bincount(inverse)[inverse] > 1]):
            inside[group] = _group_kernel(values, positive, inverse == group)
        pairs = (positive.sum() - pos_removed) * ((~positive).sum() - neg_removed)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, (total - removed + inside) / np.where(pairs > 0, pairs, 1), np.nan)
    numerator, denominator = _fom_terms(truth, values, fom)
    kept_numerator = numerator.sum() - np.bincount(inverse, weights=numerator, minlength=n_groups)
    kept_denominator = denominator.sum() - np.bincount(inverse, weights=denominator, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept_denominator > 0, kept_numerator / np.where(kept_denominator > 0, kept_denominator, 1),
                        np.nan)


def fom_covariance(
    truth: np.ndarray, ratings: np.ndarray, fom: str = "auc", groups: np.ndarray | None = None,
    method: str = "jackknife", n_resamples: int = 2000, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Figures of merit ``[condition, reader]`` and the covariance of their estimates (flattened, row-major)."""
    ratings = np.asarray(ratings, float)
    n_conditions, n_readers, n_cases = ratings.shape
    groups = np.arange(n_cases) if groups is None else np.asarray(groups)
    foms = np.array([[figure_of_merit(truth, ratings[t, r], fom) for r in range(n_readers)]
                     for t in range(n_conditions)])
    if method == "jackknife":
        left_out = np.stack([jackknife_foms(truth, ratings[t, r], groups, fom)
                             for t in range(n_conditions) for r in range(n_readers)], axis=1)
        if not np.isfinite(left_out).all():
            raise MRMCError("leaving out one patient removes every case of a class; the jackknife needs more "
                            "patients per class")
        k = len(left_out)
        centred = left_out - left_out.mean(axis=0)
        return foms, (k - 1) / k * centred.T @ centred
    if method == "bootstrap":
        unique, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == index) for index in range(len(unique))]
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(n_resamples):
            index = np.concatenate([members[pick] for pick in rng.integers(0, len(unique), len(unique))])
            samples.append([figure_of_merit(truth[index], ratings[t, r, index], fom)
                            for t in range(n_conditions) for r in range(n_readers)])
        samples = np.asarray(samples)
        samples = samples[np.isfinite(samples).all(axis=1)]
        if len(samples) < 2:
            raise MRMCError("the bootstrap drew no resample with both classes")
        return foms, np.cov(samples, rowvar=False).reshape(n_conditions * n_readers, n_conditions * n_readers)
    raise MRMCError(f"unknown covariance method {method!r}; choose jackknife or bootstrap")


def or_covariances(covariance: np.ndarray, n_conditions: int, n_readers: int) -> dict[str, float]:
    """Var(error), Cov1 (same reader, other condition), Cov2 (other reader, same condition), Cov3 (both other)."""
    index = list(itertools.product(range(n_conditions), range(n_readers)))
    buckets: dict[str, list[float]] = {"var_error": [], "cov1": [], "cov2": [], "cov3": []}
    for (i, (t1, r1)), (j, (t2, r2)) in itertools.product(enumerate(index), repeat=2):
        key = ("var_error" if r1 == r2 else "cov2") if t1 == t2 else ("cov1" if r1 == r2 else "cov3")
        buckets[key].append(covariance[i, j])
    return {key: float(np.mean(values)) if values else float("nan") for key, values in buckets.items()}


def _t_interval(estimate: float, se: float, df: float) -> list[float]:
    """The 95% CI; undefined (NaN, as RJafroc's ``qt(0.025, NaN)``) without a positive SE and a defined df: an
    interval of width zero would read as certainty."""
    if not se > 0 or np.isnan(df):
        return [float("nan"), float("nan")]
    half = float(stats.t.ppf(0.975, df)) * se if np.isfinite(df) else float(stats.norm.ppf(0.975)) * se
    return [estimate - half, estimate + half]


# Mean squares and covariances of figures of merit in [0, 1] below this are rounding, not variation.
ZERO = 1e-15


def error_term(ms: float, ms_df: int, cov: float, n_readers: int, ms_name: str, cov_name: str,
               ) -> tuple[float, float, list[str]]:
    """Hillis' error term ``ms + r * max(cov, 0)`` and ddf_H = error² / (ms² / ms_df), as RJafroc
    (``StSignificanceTesting``, ``StSignificanceTestingCadVsRad``), MRMCaov and OR-DBM MRMC compute them, with the
    reason wherever a component is zero or negative or ddf_H is not a finite number.

    Their outputs: ms = 0 with a positive covariance term gives ddf_H = Inf (R's ``qt(p, Inf)``, a z interval);
    an error term of 0 gives ddf_H = 0/0 = NaN and NaN for the CI, t and p.
    """
    ms = 0.0 if abs(ms) < ZERO else ms
    notes = []
    if cov <= ZERO:
        cov = 0.0
        notes.append(f"{cov_name} ≤ 0, counted as 0 in the error term (Hillis' constraint max({cov_name}, 0))")
    error = ms + n_readers * cov
    if error <= 0:
        notes.append(f"{ms_name} = 0 and {cov_name} ≤ 0: the error term is 0, ddf_H = 0/0 is undefined and there is "
                     "no CI, t or p (RJafroc and MRMCaov give NaN)")
        return 0.0, float("nan"), notes
    if ms == 0:
        notes.append(f"{ms_name} = 0 (no variation between readers): ddf_H is infinite, so the CI and p are normal "
                     "(z), as RJafroc's t with df = Inf")
        return error, float("inf"), notes
    return error, error ** 2 / (ms ** 2 / ms_df), notes


def _note(notes: list[str]) -> str | None:
    return "; ".join(notes) or None


def single_condition(foms: np.ndarray, cov2: float) -> dict:
    """Mean over readers of one condition, with the OR-H standard error, degrees of freedom and 95% CI."""
    n_readers = len(foms)
    mean = float(np.mean(foms))
    ms_r = float(np.var(foms, ddof=1)) if n_readers > 1 else float("nan")
    error, df, notes = error_term(ms_r, n_readers - 1, cov2, n_readers, "MS(R)", "Cov2")
    se = float(np.sqrt(error / n_readers))
    t = mean / se if se > 0 else float("nan")
    return {"value": mean, "se": se, "df": float(df), "ci95": _t_interval(mean, se, df), "ms_r": ms_r, "cov2": cov2,
            "t": float(t), "p_value": _two_sided_t(t, df), "normal_approximation": bool(np.isinf(df)),
            "note": _note(notes)}


def or_analysis(
    truth: np.ndarray, ratings: np.ndarray, fom: str = "auc", groups: np.ndarray | None = None,
    conditions: Sequence[str] | None = None, readers: Sequence[str] | None = None, method: str = "jackknife",
    n_resamples: int = 2000, seed: int = 0,
) -> dict:
    """OR-H analysis of readers reading the same cases under two or more conditions (fully crossed design)."""
    truth, ratings = np.asarray(truth), np.asarray(ratings, float)
    _check(truth, ratings, fom, min_conditions=2)
    n_conditions, n_readers, _ = ratings.shape
    conditions = list(conditions or [str(t + 1) for t in range(n_conditions)])
    readers = list(readers or [str(r + 1) for r in range(n_readers)])
    foms, covariance = fom_covariance(truth, ratings, fom, groups, method, n_resamples, seed)
    cov = or_covariances(covariance, n_conditions, n_readers)
    condition_means, reader_means, grand = foms.mean(axis=1), foms.mean(axis=0), foms.mean()
    ms_t = n_readers * float(((condition_means - grand) ** 2).sum()) / (n_conditions - 1)
    ms_r = n_conditions * float(((reader_means - grand) ** 2).sum()) / (n_readers - 1)
    interaction = foms - condition_means[:, None] - reader_means[None, :] + grand
    ms_tr = float((interaction ** 2).sum()) / ((n_conditions - 1) * (n_readers - 1))
    error, ddf, notes = error_term(ms_tr, (n_conditions - 1) * (n_readers - 1), cov["cov2"] - cov["cov3"],
                                   n_readers, "MS(T*R)", "Cov2 − Cov3")
    f_value = ms_t / error if error > 0 else float("nan")
    fixed_error = cov["var_error"] - cov["cov1"] + (n_readers - 1) * max(cov["cov2"] - cov["cov3"], 0.0)
    fixed_note = (None if fixed_error > ZERO else "Var(error) − Cov1 + (r−1)·max(Cov2 − Cov3, 0) ≤ 0: no standard "
                  "error, CI or p for fixed readers")
    differences, fixed = [], []
    for a, b in itertools.combinations(range(n_conditions), 2):
        difference = float(condition_means[a] - condition_means[b])
        se = float(np.sqrt(2 / n_readers * error))
        t = difference / se if se > 0 else float("nan")
        differences.append({"a": conditions[a], "b": conditions[b], "difference": difference, "se": se,
                            "df": float(ddf), "t": float(t), "p_value": _two_sided_t(t, ddf),
                            "ci95": _t_interval(difference, se, ddf), "normal_approximation": bool(np.isinf(ddf)),
                            "note": _note(notes)})
        fixed_se = float(np.sqrt(2 / n_readers * fixed_error)) if fixed_error > ZERO else float("nan")
        z = difference / fixed_se
        fixed.append({"a": conditions[a], "b": conditions[b], "difference": difference, "se": fixed_se,
                      "z": float(z), "p_value": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else None,
                      "ci95": _t_interval(difference, fixed_se, float("inf")), "note": fixed_note})
    single = {}
    for t, name in enumerate(conditions):
        block = covariance[t * n_readers:(t + 1) * n_readers, t * n_readers:(t + 1) * n_readers]
        single[name] = single_condition(foms[t], _off_diagonal_mean(block))
    return json_ready({
        "design": "conditions", "method": METHOD, "figure_of_merit": fom, "covariance": method,
        **_units(groups, truth, n_resamples if method == "bootstrap" else None),
        "n_readers": n_readers, "conditions": conditions, "readers": readers,
        "foms": {name: dict(zip(readers, map(float, foms[t]))) for t, name in enumerate(conditions)},
        "condition_means": dict(zip(conditions, map(float, condition_means))),
        "variance": {**cov, "ms_t": ms_t, "ms_r": ms_r, "ms_tr": ms_tr},
        "rrrc": {"f": float(f_value), "ndf": n_conditions - 1, "ddf": float(ddf), "error_term": error,
                 "p_value": _f_p_value(f_value, n_conditions - 1, ddf), "note": _note(notes),
                 "normal_approximation": bool(np.isinf(ddf)), "differences": differences},
        "frrc": {"differences": fixed},
        "single_condition": single,
    })


def model_vs_readers(
    truth: np.ndarray, model: np.ndarray, readers: np.ndarray, fom: str = "auc", groups: np.ndarray | None = None,
    reader_names: Sequence[str] | None = None, model_name: str = "model", method: str = "jackknife",
    n_resamples: int = 2000, seed: int = 0,
) -> dict:
    """The model (a fixed participant) against a panel of readers on the same cases: 1T-RRRC OR-H.

    Each reader's figure of merit minus the model's is a single-condition OR analysis: random readers and cases,
    with the model's own case-sampling variability inside every difference. The effect is model − readers' mean.
    """
    truth, model, readers = np.asarray(truth), np.asarray(model, float), np.asarray(readers, float)
    if readers.ndim != 2 or readers.shape[1] != len(model):
        raise MRMCError("readers' ratings must be [reader, case] with the model's cases")
    _check(truth, readers[None], fom, min_conditions=1)
    n_readers = len(readers)
    names = list(reader_names or [str(r + 1) for r in range(n_readers)])
    foms, covariance = fom_covariance(truth, np.concatenate([model[None], readers])[None], fom, groups, method,
                                      n_resamples, seed)
    foms = foms[0]
    # differences model − reader j as a linear map of the (model, readers...) estimates
    contrast = np.hstack([np.ones((n_readers, 1)), -np.eye(n_readers)])
    differences = contrast @ foms
    difference_covariance = contrast @ covariance @ contrast.T
    result = single_condition(differences, _off_diagonal_mean(difference_covariance))
    return json_ready({
        "design": "model_vs_readers", "method": METHOD + " (1T-RRRC: model fixed, readers random)",
        "figure_of_merit": fom, "covariance": method,
        **_units(groups, truth, n_resamples if method == "bootstrap" else None),
        "n_readers": n_readers, "model": model_name, "readers": names,
        "model_fom": float(foms[0]), "reader_foms": dict(zip(names, map(float, foms[1:]))),
        "readers_mean": float(foms[1:].mean()),
        "difference": {"a": model_name, "b": "readers' mean", "difference": result["value"], "se": result["se"],
                       "df": result["df"], "t": result["t"], "p_value": result["p_value"], "ci95": result["ci95"],
                       "normal_approximation": result["normal_approximation"], "note": result["note"]},
        "variance": {"ms_r": result["ms_r"], "cov2": result["cov2"],
                     "var_error": float(np.mean(np.diag(difference_covariance)))},
    })


def json_ready(value):
    """The result with infinite or undefined numbers (a degenerate design) as None, so the JSON stays valid."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _off_diagonal_mean(block: np.ndarray) -> float:
    n = len(block)
    return float((block.sum() - np.trace(block)) / (n * (n - 1))) if n > 1 else float("nan")


def _two_sided_t(t: float, df: float) -> float | None:
    if not np.isfinite(t) or np.isnan(df):
        return None
    return float(2 * (stats.t.sf(abs(t), df) if np.isfinite(df) else stats.norm.sf(abs(t))))


def _f_p_value(f_value: float, ndf: int, ddf: float) -> float | None:
    """P(F > f); with ddf_H infinite, ndf·F is chi-square with ndf degrees of freedom (R's ``pf(f, ndf, Inf)``)."""
    if not np.isfinite(f_value) or np.isnan(ddf):
        return None
    return float(stats.f.sf(f_value, ndf, ddf) if np.isfinite(ddf) else stats.chi2.sf(f_value * ndf, ndf))


def _units(groups: np.ndarray | None, truth: np.ndarray, resamples: int | None) -> dict:
    n_units = len(truth) if groups is None else len(np.unique(groups))
    grouped = groups is not None and n_units < len(truth)
    return {"resampled_unit": "patient" if grouped else "case", "n_units": int(n_units), "n_cases": int(len(truth)),
            "n_resamples": resamples}


def _check(truth: np.ndarray, ratings: np.ndarray, fom: str, min_conditions: int) -> None:
    if fom not in FIGURES_OF_MERIT:
        raise MRMCError(f"unknown figure of merit {fom!r}; choose one of {', '.join(FIGURES_OF_MERIT)}")
    if ratings.ndim != 3 or ratings.shape[2] != len(truth):
        raise MRMCError("ratings must be [condition, reader, case] with one truth per case")
    if ratings.shape[0] < min_conditions:
        raise MRMCError(f"need at least {min_conditions} conditions read by the same readers")
    if ratings.shape[1] < 2:
        raise MRMCError("an MRMC analysis needs at least two readers")
    if not np.isfinite(ratings).all():
        raise MRMCError("every reader must rate every case under every condition (fully crossed design)")
    if fom in ("auc", "sensitivity", "specificity"):
        values = set(np.unique(truth).tolist())
        if not values <= {0, 1} or len(values) < 2:
            raise MRMCError(f"{fom} needs a binary truth with both classes present")
