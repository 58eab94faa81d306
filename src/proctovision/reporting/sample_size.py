"""The "Sample size" paragraph of a report and of paper/: how the study's size was chosen (STARD 2015 item 18,
CLAIM), written from a `plan ... --json` file in the report's language: the method, the inputs and the result."""
from __future__ import annotations

import json
from pathlib import Path

from proctovision.core.errors import UserError
from proctovision.core.i18n import N_

ANALYSES = {"rrrc": N_("random readers and random cases"), "frrc": N_("fixed readers and random cases"),
            "rrfc": N_("random readers and fixed cases")}
PLANS = ("accuracy", "auc", "reader-study")


class PlanFileError(UserError, ValueError):
    """A plan file the report cannot use; the message names the file and the reason."""


def read_plan(path: Path) -> dict:
    """A plan written by `proctovision plan ... --json`."""
    path = Path(path)
    if not path.is_file():
        raise PlanFileError(f"{path}: file not found")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PlanFileError(f"{path}: not a JSON file written by `proctovision plan ... --json`") from None
    if not isinstance(plan, dict) or plan.get("plan") not in PLANS:
        raise PlanFileError(f"{path}: not a plan; write one with `proctovision plan accuracy|auc|reader-study "
                            "--json FILE`")
    return plan


def _n(value: float) -> str:
    return f"{value:g}"


def _accuracy(plan: dict, _) -> str:
    inputs = plan["inputs"]
    if "half_width" in inputs:
        common = dict(se=_n(inputs["sensitivity"]), sp=_n(inputs["specificity"]), w=_n(inputs["half_width"]),
                      confidence=f"{inputs['confidence']:.0%}")
        if inputs["design"] == "case-control":
            return _("The intended sample size was {diseased} participants with the target condition and {healthy} "
                     "without, determined by Buderer's method (1996) so that sensitivity (expected {se}) and "
                     "specificity (expected {sp}) are each estimated within ±{w} with {confidence} "
                     "confidence.").format(diseased=plan["n_diseased"], healthy=plan["n_non_diseased"], **common)
        return _("The intended sample size was {n} consecutive participants, determined by Buderer's method (1996) "
                 "so that sensitivity (expected {se}) and specificity (expected {sp}) are each estimated within "
                 "±{w} with {confidence} confidence at a prevalence of {prevalence}: sensitivity needs {n_se} "
                 "participants and specificity {n_sp}.").format(
            n=plan["n"], prevalence=_n(inputs["prevalence"]), n_se=plan["n_sensitivity"],
            n_sp=plan["n_specificity"], **common)
    parts = []
    for key, measure, count in (("sensitivity", _("sensitivity"), "n_cases"),
                                ("specificity", _("specificity"), "n_controls")):
        if inputs.get(key) is not None:
            parts.append(_("{n} participants for {measure} (expected {value}, shown above {bound})").format(
                n=plan[count], measure=measure, value=_n(inputs[key]), bound=_n(inputs[key] - inputs["delta"])))
    text = _("The intended sample size was {parts}, determined by the one-sided exact binomial test at alpha "
             "{alpha} with power {power} (Flahault et al. 2005, with the correction of Chu and Cole 2007: the "
             "power holds at that size and every larger one).").format(
        parts="; ".join(parts), alpha=_n(inputs["alpha"]), power=_n(inputs["power"]))
    if inputs.get("prevalence") is not None:
        text += " " + _("At a prevalence of {prevalence}, {n} consecutive participants hold both.").format(
            prevalence=_n(inputs["prevalence"]), n=plan["n"])
    return text


def _auc(plan: dict, _) -> str:
    common = dict(cases=plan["cases"], controls=plan["controls"], auc=_n(plan["auc"]), alpha=_n(plan["alpha"]),
                  power=f"{plan['power']:.2f}", se=f"{plan['se']:.4f}")
    if "target_power" in plan:
        text = _("The intended sample size was {cases} participants with the target condition and {controls} "
                 "without, determined so that a two-sided test of an expected AUC of {auc} against 0.5 at alpha "
                 "{alpha} has power {power} (Obuchowski's variance, as pROC's power.roc.test).")
    else:
        text = _("With {cases} participants with the target condition and {controls} without, a two-sided test of "
                 "an expected AUC of {auc} against 0.5 at alpha {alpha} has power {power} (Obuchowski's variance, "
                 "as pROC's power.roc.test).")
    return text.format(**common) + " " + _("At these counts the AUC's standard error is {se} (Hanley and McNeil "
                                           "1982).").format(**common)


def _reader_study(plan: dict, _) -> str:
    components = plan["variance_components"]
    source = plan.get("pilot_source") or {}
    origin = (_("a pilot of {readers} readers and {images} images").format(
        readers=len(source.get("readers", [])), images=source.get("n_images")) if source.get("source") == "pilot"
        else _("published variance components"))
    analysis = ANALYSES[plan["analysis"]]
    common = dict(readers=plan["readers"], cases=plan["cases"], effect=_n(plan["effect"]), alpha=_n(plan["alpha"]),
                  power=f"{plan['power']:.3f}", analysis=_(analysis), target=_n(plan.get("target_power") or 0))
    if "target_power" in plan:
        text = _("The intended sample size was {readers} readers and {cases} cases, the fewest cases with which an "
                 "Obuchowski-Rockette analysis with Hillis' degrees of freedom ({analysis}) detects a difference in "
                 "AUC of {effect} with power {target} at alpha {alpha} (Hillis, Obuchowski and Berbaum 2011; power "
                 "reached {power}).")
    else:
        text = _("A study of {readers} readers and {cases} cases has power {power} to detect a difference in AUC of "
                 "{effect} at alpha {alpha} by an Obuchowski-Rockette analysis with Hillis' degrees of freedom "
                 "({analysis}; Hillis, Obuchowski and Berbaum 2011).")
    text = text.format(**common)
    rows = [row for row in plan.get("table", []) if row.get("cases") is not None]
    if len(rows) > 1:
        text += " " + _("Cases needed by the number of readers: {rows}.").format(rows=", ".join(
            _("{readers} readers {cases}").format(readers=row["readers"], cases=row["cases"]) for row in rows))
    if components["var_tr"] < 0:
        text += " " + _("VarTR below 0 in the pilot was counted as 0 (Hillis' constraint).")
    if plan.get("margin") is not None:
        text += " " + _("The study is sized for non-inferiority with a margin of {margin} (Chen, Petrick and Sahiner "
                        "2012), tested one-sided at alpha {one_sided}.").format(
            margin=_n(plan["margin"]), one_sided=_n(plan["one_sided_alpha"]))
    if plan.get("case_unit") == "patient":
        text += " " + _("Cases are patients: the pilot resampled all images of a patient together.")
    return text + " " + _("Variance components from {origin}: K* {k_star:g}, VarTR {var_tr:.3g}, Cov1 {cov1:.3g}, "
                          "Cov2 {cov2:.3g}, Cov3 {cov3:.3g}, Var {var:.3g}.").format(origin=origin, **components)


def sample_size_paragraph(plan: dict, _=str) -> str:
    """The paragraph for a plan, in the language of ``_`` (a gettext)."""
    return {"accuracy": _accuracy, "auc": _auc, "reader-study": _reader_study}[plan["plan"]](plan, _)
