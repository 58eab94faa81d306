"""Sample size and power before a study starts: accuracy (Buderer; exact binomial), AUC (Obuchowski, Hanley-McNeil)
and MRMC reader studies (Hillis, Obuchowski & Berbaum 2011 on the Obuchowski-Rockette components of ``mrmc``).

Each function follows the published method its references compute, so a plan can be checked against them:
Buderer (1996); Flahault et al. (2005) with Chu & Cole (2007), as R MKmisc's ``power.diagnostic.test``; pROC's
``power.roc.test`` for one ROC curve; Hanley & McNeil (1982); RJafroc's ``SsPowerGivenJK`` and
``SsSampleSizeKGivenJ``; Chen, Petrick & Sahiner (2012) for non-inferiority.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from proctovision.core.errors import UserError
from proctovision.evaluation import mrmc

ANALYSES = ("rrrc", "frrc", "rrfc")
COMPONENT_KEYS = ("k_star", "var_tr", "cov1", "cov2", "cov3", "var")
MAX_CASES = 20000


class PlanError(UserError, ValueError):
    """A plan that cannot be computed; the message says which input and why."""


class PowerNotReached(PlanError):
    """No number of cases up to the search's limit reaches the power with this many readers."""


def _proportion(name: str, value: float, open_interval: bool = True) -> float:
    if not (0 < value < 1 if open_interval else 0 <= value <= 1) or not math.isfinite(value):
        raise PlanError(f"{name} must be a proportion between 0 and 1 (exclusive); got {value}")
    return float(value)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(1 - (1 - _proportion("confidence", confidence)) / 2))


def buderer(sensitivity: float, specificity: float, prevalence: float | None, half_width: float,
            confidence: float = 0.95, design: str = "cohort") -> dict:
    """Subjects for a sensitivity and a specificity each within ± half_width (Buderer 1996).

    A cohort (consecutive patients) needs enough diseased among them, so each count is divided by the prevalence
    (or 1 - prevalence); a case-control design recruits the two groups directly. Rounded up once, at the end.
    """
    se, sp = _proportion("sensitivity", sensitivity), _proportion("specificity", specificity)
    width = _proportion("half-width", half_width)
    z = _z(confidence)
    diseased, healthy = z ** 2 * se * (1 - se) / width ** 2, z ** 2 * sp * (1 - sp) / width ** 2
    inputs = {"sensitivity": se, "specificity": sp, "half_width": width, "confidence": confidence, "design": design}
    method = "Buderer (1996): n = z² p(1 − p) / W²"
    if design == "case-control":
        n_diseased, n_non_diseased = math.ceil(diseased), math.ceil(healthy)
        return {"plan": "accuracy", "method": method + ", per group (case-control)", "inputs": inputs,
                "n_diseased": n_diseased, "n_non_diseased": n_non_diseased, "n": n_diseased + n_non_diseased}
    if design != "cohort":
        raise PlanError(f"design must be cohort or case-control; got {design!r}")
    if prevalence is None:
        raise PlanError("a cohort design needs --prevalence (or give --design case-control)")
    prevalence = _proportion("prevalence", prevalence)
    n_se, n_sp = math.ceil(diseased / prevalence), math.ceil(healthy / (1 - prevalence))
    return {"plan": "accuracy", "method": method + ", divided by the prevalence (cohort)",
            "inputs": {**inputs, "prevalence": prevalence}, "n_sensitivity": n_se, "n_specificity": n_sp,
            "n": max(n_se, n_sp)}


def exact_power(n: np.ndarray | int, proportion: float, delta: float, alpha: float = 0.05) -> np.ndarray:
    """Power of the one-sided exact binomial test of H0: p ≤ proportion - delta when the truth is ``proportion``."""
    critical = stats.binom.ppf(1 - alpha, n, proportion - delta)
    return stats.binom.sf(critical, n, proportion)


def exact_sample_size(proportion: float, delta: float, power: float, alpha: float = 0.05,
                      n_max: int = 10000) -> dict:
    """Smallest n whose power is ≥ ``power`` there and at every larger n up to n_max (Flahault et al. 2005 as
    corrected by Chu & Cole 2007): exact power is saw-toothed in n, so the first n to reach it is not enough."""
    proportion, power = _proportion("the proportion", proportion), _proportion("power", power)
    alpha = _proportion("alpha", alpha)
    if not 0 < delta < proportion:
        raise PlanError(f"delta must be above 0 and below the proportion {proportion}; got {delta}")
    n = np.arange(1, n_max + 1)
    powers = exact_power(n, proportion, delta, alpha)
    short = np.flatnonzero(powers < power)
    if len(short) and short[-1] == len(n) - 1:
        raise PlanError(f"power {power} is not reached with {n_max} subjects; widen delta")
    stable = int(n[short[-1] + 1]) if len(short) else 1
    first = int(n[np.argmax(powers >= power)])
    return {"method": EXACT_METHOD, "n": stable, "first_n_reaching_power": first,
            "power": float(powers[stable - 1]), "inputs": {"proportion": proportion, "delta": delta,
                                                          "power": power, "alpha": alpha}}


def exact_plan(sensitivity: float | None, specificity: float | None, delta: float, power: float,
               alpha: float = 0.05, prevalence: float | None = None) -> dict:
    """Cases for the sensitivity and controls for the specificity by the exact method; with a prevalence, the
    consecutive patients that hold both."""
    if sensitivity is None and specificity is None:
        raise PlanError("give --sensitivity, --specificity or both")
    result: dict = {"plan": "accuracy", "method": EXACT_METHOD, "inputs": {
        "sensitivity": sensitivity, "specificity": specificity, "delta": delta, "power": power, "alpha": alpha}}
    if sensitivity is not None:
        sized = exact_sample_size(sensitivity, delta, power, alpha)
        result.update(n_cases=sized["n"], power_cases=sized["power"], first_n_cases=sized["first_n_reaching_power"])
    if specificity is not None:
        sized = exact_sample_size(specificity, delta, power, alpha)
        result.update(n_controls=sized["n"], power_controls=sized["power"],
                      first_n_controls=sized["first_n_reaching_power"])
    if prevalence is not None:
        prevalence = _proportion("prevalence", prevalence)
        result["inputs"]["prevalence"] = prevalence
        result["n"] = max(math.ceil(result.get("n_cases", 0) / prevalence),
                          math.ceil(result.get("n_controls", 0) / (1 - prevalence)))
    else:
        result["n"] = result.get("n_cases", 0) + result.get("n_controls", 0)
    return result


EXACT_METHOD = ("exact binomial test, one-sided (Flahault et al. 2005; Chu & Cole 2007): smallest n with power ≥ "
                "target at n and every larger n")


def hanley_mcneil_se(auc: float, cases: int, controls: int) -> float:
    """Standard error of an AUC estimated from ``cases`` diseased and ``controls`` non-diseased (Hanley & McNeil
    1982, with their exponential approximations Q1 = A/(2 − A), Q2 = 2A²/(1 + A))."""
    a = auc
    q1, q2 = a / (2 - a), 2 * a ** 2 / (1 + a)
    variance = (a * (1 - a) + (cases - 1) * (q1 - a ** 2) + (controls - 1) * (q2 - a ** 2)) / (cases * controls)
    return float(np.sqrt(variance))


def obuchowski_variance(auc: float, kappa: float) -> float:
    """Per-case variance of the AUC, binormal with equal variances, as pROC's ``power.roc.test`` (Obuchowski
    et al. 2004): 0.0099 e^(−A²/2) (5A² + 8 + (A² + 8)/κ), A = Φ⁻¹(AUC)·1.414, κ = controls per case."""
    a = stats.norm.ppf(auc) * 1.414
    return float(0.0099 * np.exp(-a ** 2 / 2) * (5 * a ** 2 + 8 + (a ** 2 + 8) / kappa))


def _auc_inputs(auc: float, alpha: float) -> None:
    _proportion("AUC", auc)
    _proportion("alpha", alpha)
    if auc <= 0.5:
        raise PlanError(f"the AUC must be above 0.5 to be told apart from chance; got {auc}")


def auc_power(auc: float, cases: int, controls: int, alpha: float = 0.05) -> dict:
    """Power of the two-sided test of AUC = 0.5 with these counts, and the Hanley-McNeil SE there."""
    _auc_inputs(auc, alpha)
    if cases < 2 or controls < 2:
        raise PlanError("give at least 2 cases and 2 controls")
    kappa = controls / cases
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    power = stats.norm.cdf((np.sqrt(cases) * (auc - 0.5) - z_alpha * np.sqrt(0.0792 * (1 + 1 / kappa)))
                           / np.sqrt(obuchowski_variance(auc, kappa)))
    return {"plan": "auc", "method": AUC_METHOD, "auc": auc, "alpha": alpha, "cases": cases, "controls": controls,
            "power": float(power), "se": hanley_mcneil_se(auc, cases, controls)}


def auc_significance(auc: float, cases: int, controls: int, power: float) -> float:
    """The two-sided significance level at which these counts reach ``power`` (pROC's ``sig.level`` output)."""
    kappa = controls / cases
    z_alpha = ((np.sqrt(cases) * (auc - 0.5) - stats.norm.ppf(power) * np.sqrt(obuchowski_variance(auc, kappa)))
               / np.sqrt(0.0792 * (1 + 1 / kappa)))
    return float(2 * stats.norm.sf(z_alpha))


def auc_sample_size(auc: float, power: float, ratio: float = 1.0, alpha: float = 0.05) -> dict:
    """Cases (and ``ratio`` controls per case) for the two-sided test of AUC = 0.5 to reach ``power``."""
    _auc_inputs(auc, alpha)
    _proportion("power", power)
    if not ratio > 0:
        raise PlanError(f"the ratio of controls to cases must be above 0; got {ratio}")
    root = (stats.norm.ppf(1 - alpha / 2) * np.sqrt(0.0792 * (1 + 1 / ratio))
            + stats.norm.ppf(power) * np.sqrt(obuchowski_variance(auc, ratio)))
    cases = math.ceil(root ** 2 / (auc - 0.5) ** 2)
    controls = math.ceil(ratio * cases)
    return {**auc_power(auc, cases, controls, alpha), "target_power": power, "ratio": ratio}


AUC_METHOD = ("two-sided z test of AUC = 0.5 with Obuchowski's binormal variance (as pROC's power.roc.test); "
              "standard error by Hanley & McNeil (1982)")


@dataclass(frozen=True)
class Components:
    """Obuchowski-Rockette variance components of a pilot (or a publication): cases K*, VarTR, Cov1-3, Var."""

    k_star: float
    var_tr: float
    cov1: float
    cov2: float
    cov3: float
    var: float

    def as_dict(self) -> dict:
        return asdict(self)


def components_from(values: dict, source: str = "components") -> Components:
    """Components from a JSON object with the keys of ``COMPONENT_KEYS``."""
    missing = [key for key in COMPONENT_KEYS if key not in values]
    if missing:
        raise PlanError(f"{source}: missing key(s) {', '.join(missing)} (needs {', '.join(COMPONENT_KEYS)})")
    try:
        numbers = {key: float(values[key]) for key in COMPONENT_KEYS}
    except (TypeError, ValueError):
        raise PlanError(f"{source}: every component must be a number") from None
    if not all(math.isfinite(value) for value in numbers.values()):
        raise PlanError(f"{source}: every component must be a finite number")
    if numbers["k_star"] < 2:
        raise PlanError(f"{source}: k_star (the pilot's cases) must be at least 2")
    return Components(**numbers)


def pilot_components(truth: np.ndarray, ratings: np.ndarray, groups: np.ndarray | None = None,
                     conditions: list[str] | None = None) -> tuple[Components, dict]:
    """Components of a pilot [condition, reader, case] by the OR analysis ``compare`` runs (Wilcoxon AUC,
    jackknife), with VarTR = MS(T×R) − Var + Cov1 + (Cov2 − Cov3); and the pilot's observed effect."""
    ratings = np.asarray(ratings, float)
    if ratings.ndim != 3 or ratings.shape[0] < 2:
        raise PlanError("the pilot has one reading condition; a reader study plan needs two (e.g. unaided, aided)")
    if ratings.shape[1] < 2:
        raise PlanError("the pilot has one reader; variance between readers needs at least two")
    try:
        result = mrmc.or_analysis(truth, ratings, "auc", groups=groups, conditions=conditions)
    except mrmc.MRMCError as error:
        raise PlanError(f"the pilot cannot be analysed: {error}") from None
    variance = result["variance"]
    var_tr = variance["ms_tr"] - variance["var_error"] + variance["cov1"] + variance["cov2"] - variance["cov3"]
    components = Components(k_star=float(result["n_units"]), var_tr=float(var_tr), cov1=variance["cov1"],
                            cov2=variance["cov2"], cov3=variance["cov3"], var=variance["var_error"])
    means = list(result["condition_means"].values())
    return components, {"observed_effect": means[-1] - means[0], "condition_means": result["condition_means"],
                        "n_readers": result["n_readers"], "resampled_unit": result["resampled_unit"]}


def pilot_from_sheets(readers: Path, truth: Path, conditions: list[str] | None = None, split: str = "test",
                      ) -> tuple[Components, dict]:
    """Components of a pilot read from the sheets ``compare`` reads (a reading room export or any readers.csv,
    and a truth manifest), matched the way ``compare`` matches them; the first condition is the reference."""
    from proctovision.evaluation.compare import match_sheets, read_reader_sheet, read_truth, shared_images
    from proctovision.evaluation.reader_study import reader_arrays

    reference, task = read_truth(Path(truth), split)
    if not task.is_binary:
        raise PlanError(f"{truth}: a reader study plan needs a binary task (the AUC); got classes {task.classes}")
    sheet, _ = read_reader_sheet(Path(readers), task.classes)
    available = sorted(set(sheet["condition"]))
    chosen = conditions or available
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise PlanError(f"{readers}: no condition {unknown[0]!r} (the sheet has {', '.join(map(repr, available))})")
    if len(chosen) < 2:
        raise PlanError(f"{readers}: the pilot has one reading condition; a reader study plan needs two "
                        "(a condition column, e.g. unaided and aided)")
    if len(chosen) > 2:
        raise PlanError(f"{readers}: the pilot has conditions {', '.join(chosen)}; choose two with --conditions a,b")
    sheet = sheet[sheet["condition"].isin(chosen)].copy()
    match_sheets(Path(truth), reference, [], [], Path(readers), sheet)
    paths = shared_images(reference, [], sheet)
    if not paths:
        raise PlanError(f"{readers}: the readers and {truth} share no image")
    panels = [reader_arrays(sheet.assign(path=sheet["_key"]), paths, task.classes, name) for name in chosen]
    shared = sorted(set.intersection(*(set(names) for names, _, _ in panels)))
    if len(shared) < 2:
        raise PlanError(f"{readers}: the pilot has {len(shared)} reader(s) in both conditions; variance between "
                        "readers needs at least two")
    if any(scores is None for _, _, scores in panels):
        raise PlanError(f"{readers}: the readers gave no score for every image; the AUC needs a score column")
    ratings = np.stack([scores[[names.index(name) for name in shared]] for names, _, scores in panels])
    y_true = np.array([task.classes.index(str(label).strip()) for label in reference.loc[paths, "label"]])
    patients = (reference.loc[paths, "patient_id"].astype(str).to_numpy() if "patient_id" in reference.columns
                else np.array(paths))
    groups = patients if len(set(patients)) < len(patients) else None
    components, details = pilot_components(y_true, ratings, groups, chosen)
    return components, {**details, "conditions": chosen, "readers": shared, "n_images": len(paths)}


def _terms(c: Components, readers: int, cases: np.ndarray, analysis: str) -> tuple[np.ndarray, np.ndarray]:
    """Hillis (2011): the variance in the non-centrality's denominator and the denominator degrees of freedom."""
    var_tr, difference = max(c.var_tr, 0.0), max(c.cov2 - c.cov3, 0.0)
    scale = c.k_star / cases
    error = c.var - c.cov1
    if analysis not in ANALYSES:
        raise PlanError(f"analysis must be one of {', '.join(ANALYSES)}; got {analysis!r}")
    fixed_readers = var_tr + scale * (error - difference)
    random_readers = scale * (error + (readers - 1) * difference)
    denominator = {"rrrc": var_tr + random_readers, "frrc": random_readers, "rrfc": fixed_readers}[analysis]
    if np.any(denominator <= 0):
        raise PlanError(f"the variance components give a non-positive variance for {analysis.upper()} "
                        "(Var − Cov1 and VarTR leave nothing to estimate); check the components")
    if analysis == "rrrc":
        with np.errstate(divide="ignore"):
            ddf = denominator ** 2 / (fixed_readers ** 2 / (readers - 1))
    else:
        ddf = np.full_like(scale, np.inf if analysis == "frrc" else readers - 1.0)
    return denominator, ddf


def _power(c: Components, effect: float, readers: int, cases: np.ndarray, analysis: str, alpha: float) -> np.ndarray:
    denominator, ddf = _terms(c, readers, cases, analysis)
    ncp = readers * effect ** 2 / (2 * denominator)
    if analysis == "frrc":
        return stats.ncx2.sf(stats.chi2.ppf(1 - alpha, 1), 1, ncp)
    return stats.ncf.sf(stats.f.ppf(1 - alpha, 1, ddf), 1, ddf, ncp)


def _design(effect: float, margin: float | None, alpha: float) -> tuple[float, dict]:
    """The effect the test must detect, and the design sized: superiority, or non-inferiority at effect + margin
    (Chen, Petrick & Sahiner 2012), one-sided at alpha/2, whose power is the two-sided test's at effect + margin."""
    if not math.isfinite(effect):
        raise PlanError(f"the effect must be a number; got {effect}")
    if margin is None:
        if effect == 0:
            raise PlanError("an effect of 0 cannot be detected; give the difference in AUC the study must find")
        return effect, {"design": "superiority (two-sided)", "alpha": alpha}
    if not margin > 0:
        raise PlanError(f"the non-inferiority margin must be above 0; got {margin}")
    if effect + margin <= 0:
        raise PlanError(f"effect + margin is {effect + margin:g}: the new condition would be inferior by more than "
                        "the margin, so non-inferiority cannot be shown")
    return effect + margin, {"design": f"non-inferiority (margin {margin:g}), one-sided at alpha/2",
                             "alpha": alpha, "one_sided_alpha": alpha / 2, "margin": margin}


def _check_readers(readers: int, alpha: float) -> None:
    if readers < 2:
        raise PlanError(f"a reader study needs at least 2 readers; got {readers}")
    _proportion("alpha", alpha)


def reader_study_power(c: Components, effect: float, readers: int, cases: int, analysis: str = "rrrc",
                       alpha: float = 0.05, margin: float | None = None) -> dict:
    """Power of an OR-H reader study with ``readers`` and ``cases`` (RJafroc's ``SsPowerGivenJK``)."""
    _check_readers(readers, alpha)
    if cases < 2:
        raise PlanError(f"a reader study needs at least 2 cases; got {cases}")
    tested, design = _design(effect, margin, alpha)
    power = float(_power(c, tested, readers, np.array([float(cases)]), analysis, alpha)[0])
    return {"method": READER_METHOD, "analysis": analysis, "effect": effect, "readers": readers, "cases": cases,
            "power": power, **design, "variance_components": c.as_dict(), "notes": clamped(c)}


def clamped(c: Components) -> list[str]:
    """What Hillis' constraints changed in these components (a small pilot often gives VarTR below 0)."""
    notes = []
    if c.var_tr < 0:
        notes.append(f"VarTR {c.var_tr:.3g} < 0, counted as 0: the pilot shows no reader-by-condition variance "
                     "beyond case sampling (few readers estimate it poorly)")
    if c.cov2 - c.cov3 < 0:
        notes.append(f"Cov2 − Cov3 {c.cov2 - c.cov3:.3g} < 0, counted as 0")
    return notes


def reader_study_cases(c: Components, effect: float, readers: int, power: float, analysis: str = "rrrc",
                       alpha: float = 0.05, margin: float | None = None, max_cases: int = MAX_CASES) -> dict:
    """The smallest number of cases whose power reaches ``power`` (RJafroc's ``SsSampleSizeKGivenJ``)."""
    _check_readers(readers, alpha)
    _proportion("power", power)
    tested, design = _design(effect, margin, alpha)
    cases = np.arange(2, max_cases + 1, dtype=float)
    powers = _power(c, tested, readers, cases, analysis, alpha)
    reached = np.flatnonzero(powers >= power)
    if not len(reached):
        raise PowerNotReached(f"{readers} readers do not reach power {power} with up to {max_cases} cases (reader "
                        "variability bounds the power): add readers")
    index = int(reached[0])
    return {"method": READER_METHOD, "analysis": analysis, "effect": effect, "readers": readers,
            "cases": int(cases[index]), "power": float(powers[index]), "target_power": power, **design,
            "variance_components": c.as_dict(), "notes": clamped(c)}


READER_METHOD = ("Obuchowski-Rockette with Hillis' degrees of freedom (Hillis, Obuchowski & Berbaum 2011), as "
                 "RJafroc's SsPowerGivenJK: non-central F (chi-square for fixed readers), VarTR and Cov2 − Cov3 "
                 "clamped at 0")


def read_components(path: Path) -> Components:
    """Components from a JSON file: the keys of ``COMPONENT_KEYS``, or an earlier plan's output (which holds
    them under ``variance_components``)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: file not found")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanError(f"{path}: not a JSON file ({error.__class__.__name__})") from None
    if isinstance(values, dict) and isinstance(values.get("variance_components"), dict):
        values = values["variance_components"]
    if not isinstance(values, dict):
        raise PlanError(f"{path}: expected a JSON object with {', '.join(COMPONENT_KEYS)}")
    return components_from(values, str(path))


def reader_study_plan(components: Components, effect: float, readers: list[int], cases: int | None = None,
                      power: float | None = None, analysis: str = "rrrc", alpha: float = 0.05,
                      margin: float | None = None) -> dict:
    """Power at ``cases``, or the cases for ``power``, for each number of readers (RJafroc's ``SsPowerTable``
    when several are given); the first reader count is the design and gives the top-level figures."""
    if (cases is None) == (power is None):
        raise PlanError("give either --cases (to get the power) or --power (to get the cases)")
    if not readers:
        raise PlanError("give the number of readers, e.g. --readers 6 or --readers 3,4,5,6,8,10")
    rows, table = [], []
    for count in readers:
        try:
            rows.append(reader_study_power(components, effect, count, cases, analysis, alpha, margin)
                        if power is None else
                        reader_study_cases(components, effect, count, power, analysis, alpha, margin))
            table.append({key: rows[-1][key] for key in ("readers", "cases", "power")})
        except PowerNotReached as error:
            if len(readers) == 1:
                raise
            table.append({"readers": count, "cases": None, "power": None, "note": str(error)})
    if not rows:
        raise PowerNotReached(f"none of {', '.join(map(str, readers))} readers reaches power {power} with up to "
                              f"{MAX_CASES} cases: add readers")
    return {"plan": "reader-study", **rows[0], "table": table}
