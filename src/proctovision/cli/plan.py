"""`proctovision plan ...`: sample size and power before a study (accuracy, AUC, reader studies)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.core.console import console

plan_app = typer.Typer(
    name="plan", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="How many patients, images or readers a study needs: accuracy, AUC and reader studies (STARD, CLAIM).",
)

JsonOption = Annotated[Optional[Path], typer.Option("--json", help="write the plan here (for `report --plan`)")]
AlphaOption = Annotated[float, typer.Option(help="significance level")]


def _finish(result: dict, json_file: Path | None) -> None:
    if json_file is not None:
        from proctovision.core import fileio

        fileio.write_json(json_file, result)
        console.print(f"plan: {json_file}")


@plan_app.command("accuracy")
def accuracy(
    sensitivity: Annotated[Optional[float], typer.Option(help="expected sensitivity")] = None,
    specificity: Annotated[Optional[float], typer.Option(help="expected specificity")] = None,
    prevalence: Annotated[Optional[float], typer.Option(help="prevalence among consecutive patients")] = None,
    half_width: Annotated[Optional[float], typer.Option(help="Buderer: half-width of the CI, e.g. 0.10")] = None,
    confidence: Annotated[float, typer.Option(help="Buderer: confidence of the interval")] = 0.95,
    design: Annotated[str, typer.Option(help="Buderer: cohort | case-control")] = "cohort",
    method: Annotated[str, typer.Option(help="buderer (CI width) | exact (test against value − delta)")]
    = "buderer",
    delta: Annotated[Optional[float], typer.Option(help="exact: the margin below the expected value")] = None,
    power: Annotated[Optional[float], typer.Option(help="exact: the power wanted, e.g. 0.95")] = None,
    alpha: Annotated[float, typer.Option(help="exact: one-sided significance level")] = 0.05,
    json_file: JsonOption = None,
) -> None:
    """Patients for a sensitivity and specificity: estimated within ± a half-width (Buderer 1996), or shown above
    the expected value − delta by the exact binomial test (Flahault 2005, Chu & Cole 2007).

    Example: proctovision plan accuracy --sensitivity 0.90 --specificity 0.85 --prevalence 0.20 --half-width 0.10

    Example: proctovision plan accuracy --sensitivity 0.95 --delta 0.10 --power 0.95 --method exact
    """
    from proctovision.evaluation import power as planning

    if method == "buderer":
        if sensitivity is None or specificity is None or half_width is None:
            raise planning.PlanError("Buderer's method needs --sensitivity, --specificity and --half-width "
                                     "(or use --method exact with --delta and --power)")
        result = planning.buderer(sensitivity, specificity, prevalence, half_width, confidence, design)
        if design == "case-control":
            console.print(f"diseased: {result['n_diseased']}, non-diseased: {result['n_non_diseased']} "
                          f"(Buderer, ±{half_width:g} at {confidence:.0%})")
        else:
            console.print(f"n = {result['n']} patients (sensitivity needs {result['n_sensitivity']}, specificity "
                          f"{result['n_specificity']}; Buderer, ±{half_width:g} at {confidence:.0%}, prevalence "
                          f"{prevalence:g})")
    elif method == "exact":
        if delta is None or power is None:
            raise planning.PlanError("the exact method needs --delta and --power")
        result = planning.exact_plan(sensitivity, specificity, delta, power, alpha, prevalence)
        for key, who, value in (("n_cases", "diseased (sensitivity)", sensitivity),
                                ("n_controls", "non-diseased (specificity)", specificity)):
            if key in result:
                console.print(f"{who}: {result[key]} to show {value:g} above {value - delta:g} with power "
                              f"{power:g} (one-sided alpha {alpha:g}; exact binomial, Chu & Cole)")
        if prevalence is not None:
            console.print(f"consecutive patients at prevalence {prevalence:g}: {result['n']}")
    else:
        raise planning.PlanError(f"--method must be buderer or exact; got {method!r}")
    _finish(result, json_file)


@plan_app.command("auc")
def auc(
    auc_value: Annotated[float, typer.Option("--auc", help="expected AUC")],
    cases: Annotated[Optional[int], typer.Option(help="diseased patients (with --controls: gives the power)")]
    = None,
    controls: Annotated[Optional[int], typer.Option(help="non-diseased patients")] = None,
    power: Annotated[Optional[float], typer.Option(help="power wanted (gives cases and controls)")] = None,
    ratio: Annotated[float, typer.Option(help="controls per case, with --power")] = 1.0,
    alpha: AlphaOption = 0.05,
    json_file: JsonOption = None,
) -> None:
    """Power of the test of AUC = 0.5, or the cases and controls needed (Obuchowski, as pROC's power.roc.test),
    with the Hanley-McNeil standard error of the AUC at those counts.

    Example: proctovision plan auc --auc 0.85 --power 0.9 --ratio 2 --json plan.json
    """
    from proctovision.evaluation import power as planning

    if power is not None and (cases is not None or controls is not None):
        raise planning.PlanError("give either --cases and --controls (to get the power) or --power")
    if power is not None:
        result = planning.auc_sample_size(auc_value, power, ratio, alpha)
    elif cases is not None and controls is not None:
        result = planning.auc_power(auc_value, cases, controls, alpha)
    else:
        raise planning.PlanError("give --cases and --controls (to get the power) or --power (to get the counts)")
    console.print(f"AUC {auc_value:g} vs 0.5: {result['cases']} cases and {result['controls']} controls give power "
                  f"{result['power']:.3f} (two-sided alpha {alpha:g}); Hanley-McNeil SE {result['se']:.4f}")
    _finish(result, json_file)


@plan_app.command("reader-study")
def reader_study(
    effect: Annotated[float, typer.Option(help="difference in AUC to detect (new − reference)")],
    readers: Annotated[str, typer.Option(help="readers, or a list for a table: 3,4,5,6,8,10")],
    pilot: Annotated[Optional[Path], typer.Option(help="pilot readers.csv (any sheet `compare` reads)")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="with --pilot: manifest with the true labels")] = None,
    conditions: Annotated[Optional[str], typer.Option(help="with --pilot: reference,new (e.g. unaided,aided)")]
    = None,
    split: Annotated[str, typer.Option(help="with --pilot: the truth's split")] = "test",
    components: Annotated[Optional[Path], typer.Option(help="JSON with k_star, var_tr, cov1, cov2, cov3, var")]
    = None,
    cases: Annotated[Optional[int], typer.Option(help="cases (gives the power)")] = None,
    power: Annotated[Optional[float], typer.Option(help="power wanted (gives the cases)")] = None,
    analysis: Annotated[str, typer.Option(help="rrrc | frrc (fixed readers) | rrfc (fixed cases)")] = "rrrc",
    non_inferiority: Annotated[Optional[float], typer.Option(help="margin: size a non-inferiority study")] = None,
    alpha: AlphaOption = 0.05,
    json_file: JsonOption = None,
) -> None:
    """Power or cases of an MRMC reader study (OR-H; Hillis, Obuchowski & Berbaum 2011, as RJafroc), from a pilot's
    variance components or published ones.

    Example: proctovision plan reader-study --pilot readers.csv --truth split.csv --conditions unaided,aided
    --effect 0.05 --readers 3,4,5,6,8,10 --power 0.8
    """
    from proctovision.evaluation import power as planning

    counts = _readers(readers)
    if (pilot is None) == (components is None):
        raise planning.PlanError("give the variance components: --pilot READERS.csv --truth TRUTH.csv, or "
                                 "--components VC.json")
    source: dict
    if pilot is not None:
        if truth is None:
            raise planning.PlanError("--pilot needs --truth (the manifest with the true labels)")
        chosen = [name.strip() for name in conditions.split(",") if name.strip()] if conditions else None
        found, details = planning.pilot_from_sheets(pilot, truth, chosen, split)
        source = {"source": "pilot", "pilot": str(pilot), "truth": str(truth), **details}
        console.print(f"pilot: {len(details['readers'])} readers, {details['n_images']} images, conditions "
                      f"{' vs '.join(details['conditions'])}: observed effect {details['observed_effect']:+.4f}")
    else:
        found, source = planning.read_components(components), {"source": "components", "components": str(components)}
    unit = source.get("resampled_unit", "case")
    result = {**planning.reader_study_plan(found, effect, counts, cases, power, analysis.lower(), alpha,
                                           non_inferiority), "case_unit": unit, "pilot_source": source}
    _print_reader_study(result)
    if unit == "patient":
        console.print("cases are patients: the pilot's images were resampled by patient (all of a patient's images "
                      "together), so K* and the cases above count patients")
    _finish(result, json_file)


def _readers(text: str) -> list[int]:
    from proctovision.evaluation.power import PlanError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PlanError(f"--readers takes whole numbers separated by commas; got {text!r}") from None


def _print_reader_study(result: dict) -> None:
    from proctovision.evaluation.power import MAX_CASES

    components = result["variance_components"]
    console.print("variance components: " + ", ".join(f"{key} {value:.4g}" for key, value in components.items()))
    for note in result.get("notes", []):
        console.print(f"note: {note}")
    table = Table(title=f"{result['analysis'].upper()}, effect {result['effect']:+g}, {result['design']}")
    for column in ("readers", "cases", "power"):
        table.add_column(column, justify="right")
    for row in result["table"]:
        reached = row["power"] is not None
        table.add_row(str(row["readers"]), str(row["cases"]) if reached else f"> {MAX_CASES}",
                      f"{row['power']:.3f}" if reached else "not reached")
    console.print(table)
