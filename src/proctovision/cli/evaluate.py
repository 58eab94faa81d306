"""Scoring commands: evaluate a run, score any predictions file, compare with readers, reader agreement."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli.common import (
    ResamplesOption,
    TrackingUriOption,
    TrackOption,
    console,
    error_console,
    fail,
    fmt,
    log_run,
    print_metrics,
    progress_bar,
    tracking,
)

app = typer.Typer()


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    resamples: ResamplesOption = 1000,
    seed: int = 0,
    batch_size: int = 32,
    workers: Annotated[Optional[int], typer.Option(help="decoding processes (default: automatic)")] = None,
    threshold: Annotated[
        str, typer.Option(help="binary tasks: youden | sensitivity:0.9 | specificity:0.95 | a number; fitted on val")
    ] = "youden",
    temperature_scaling: Annotated[bool, typer.Option(help="calibrate with a temperature fitted on val")] = False,
    cams: Annotated[bool, typer.Option(help="write a Grad-CAM gallery of the split into the run (cams/SPLIT/)")] = False,
    by: Annotated[Optional[str], typer.Option(help="subgroups: manifest column(s), e.g. site,device")] = None,
    data: Annotated[Optional[Path], typer.Option(help="external validation: another centre's manifest.csv, "
                                                 "scored at the run's own validation threshold")] = None,
    name: Annotated[Optional[str], typer.Option(help="with --data: the name stored in metrics.json and "
                                                "predictions.csv, e.g. site_b")] = None,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Predict a split and score it: metrics.json and predictions.csv (metrics with 95% CIs) = predict + score.

    Example: proctovision evaluate runs/r18 --split test --cams
             proctovision evaluate runs/r18 --data site_b/manifest.csv --name site_b    # external validation
    """
    from proctovision.evaluation.subgroups import split_columns
    from proctovision.workflows.evaluate import evaluate_external, evaluate_run

    if (data is None) != (name is None):
        fail("--data and --name go together: proctovision evaluate RUN --data OTHER.csv --name site_b")
    if data is not None:
        with progress_bar(f"Reading {name}") as update:
            entry = evaluate_external(run, data, name, n_resamples=resamples, seed=seed, batch_size=batch_size,
                                      progress=update, threshold=threshold, temperature_scaling=temperature_scaling,
                                      workers=workers)
    else:
        with progress_bar(f"Reading {split} split") as update:
            entry = evaluate_run(run, split, n_resamples=resamples, seed=seed, batch_size=batch_size,
                                 progress=update, threshold=threshold, temperature_scaling=temperature_scaling,
                                 workers=workers, cams=cams, by=split_columns(by) or None)
    log_run(tracking(run, track, tracking_uri), run)
    print_metrics(entry)
    for item in entry.get("unreadable", []):
        error_console.print(f"[yellow]skipped[/] {item['path']}: {item['reason']}", soft_wrap=True)
    console.print(f"metrics: {run / 'metrics.json'}\npredictions: {run / 'predictions.csv'}")


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="CSV: path[, frame], patient_id, split, label, prob_<class>...")],
    truth: Annotated[Optional[Path], typer.Option(help="manifest with path,label[,patient_id] when the predictions "
                                                  "lack labels (paths read relative to it)")] = None,
    split: Annotated[str, typer.Option(help="split to score when the file has a split column; 'all' for every row")] = "test",
    threshold: Annotated[str, typer.Option(help="binary: youden | sensitivity:X | specificity:X (fitted on the "
                                           "file's val rows) or a number")] = "youden",
    temperature_scaling: Annotated[bool, typer.Option(help="fit a temperature on the file's val rows")] = False,
    task: Annotated[Optional[str], typer.Option(help="task name or YAML (default: found from the prob_ columns)")] = None,
    by: Annotated[Optional[str], typer.Option(help="subgroups: column(s) of the file or the truth, e.g. site,device")] = None,
    resamples: int = 1000,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="folder for metrics.json, scored_predictions.csv and figures/")] = Path(
        "scores"),
) -> None:
    """Metrics with patient-bootstrap 95% CIs from a predictions file alone: this tool's, another tool's, a sheet's.

    Example: proctovision score runs/r18/predictions.csv --out scores/
             proctovision score other_tool.csv --truth data/manifest.csv --split all --threshold 0.5 --out scores/
    """
    from proctovision.core.tasks import load_task
    from proctovision.evaluation.calibration import check_threshold_rule
    from proctovision.evaluation.score import ScoreOptions
    from proctovision.evaluation.subgroups import split_columns
    from proctovision.workflows.score import score_file

    check_threshold_rule(threshold)
    entry = score_file(predictions, out, truth, None if split == "all" else split,
                       ScoreOptions(threshold, temperature_scaling, resamples, seed),
                       load_task(task) if task else None, split_columns(by) or None)
    print_metrics(entry)
    console.print(f"metrics: {out / 'metrics.json'}\nfigures: {out / 'figures'}")


@app.command()
def compare(
    runs: Annotated[Optional[list[Path]], typer.Argument(
        metavar="[RUN_OR_PREDICTIONS]...", help="evaluated run folders or predictions CSV files; none: readers alone "
                                                "(e.g. unaided vs aided), with --truth")] = None,
    readers: Annotated[Optional[Path], typer.Option(
        help="CSV: path, reader, label[, frame, score, condition, reading_time_s]")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="manifest with the reference labels, when no model "
                                                  "participant carries them")] = None,
    mrmc_covariance: Annotated[str, typer.Option(help="MRMC covariances: jackknife | bootstrap (over patients)")] = (
        "jackknife"),
    task: Annotated[Optional[str], typer.Option(help="readers alone: task name or YAML (default: the built-in task "
                                                 "whose classes the truth's labels are)")] = None,
    split: str = "test",
    out: Annotated[Path, typer.Option(help="folder for the table, the tests and the figures")] = Path("comparison"),
    resamples: int = 1000,
    seed: int = 0,
) -> None:
    """Models and human readers side by side: metrics with CIs, DeLong, McNemar and bootstrap differences.

    Example: proctovision compare runs/convmixer runs/effnet --readers readers.csv --out comparison/
             proctovision compare other_tool.csv --truth data/manifest.csv --readers readers.csv --out comparison/
             proctovision compare --readers reader_study.csv --truth cases.csv --out arms/   # unaided vs aided
    """
    from proctovision.core.tasks import load_task
    from proctovision.workflows.compare import compare as compare_lib

    result = compare_lib(list(runs or []), out, readers=readers, split=split, n_resamples=resamples, seed=seed,
                         truth=truth, mrmc_covariance=mrmc_covariance, task=load_task(task) if task else None)
    table = Table(title=f"{split}: {result['n_images']} images, {result['n_patients']} patients")
    for column in ("participant", "kind", "accuracy", "recall", "precision", "f1", "reading time (s)"):
        table.add_column(column)
    for row in result["table"]:
        table.add_row(row["participant"], row["kind"], *(fmt(row.get(name), "{:.3f}") for name in (
                      "accuracy", "recall", "precision", "f1")), fmt(row["reading_time_s"], "{:.1f}"))
    console.print(table)
    if result.get("matched_by"):
        console.print(result["matched_by"], markup=False)
    files = result["files"]
    if result.get("mrmc"):
        console.print(f"MRMC (Obuchowski-Rockette-Hillis): {files['comparison_md']} and \"mrmc\" in "
                      f"{files['comparison_json']}", markup=False, soft_wrap=True)
    if "reading_times_csv" in files:
        console.print(f"reading times per case: {files['reading_times_csv']}", markup=False, soft_wrap=True)
    console.print("wrote:", markup=False)
    for path in files.values():
        console.print(f"  {path}", markup=False, soft_wrap=True)


@app.command()
def agreement(
    readers: Annotated[Path, typer.Argument(help="CSV: path, reader, label[, condition]")],
    out: Annotated[Path, typer.Option(help="folder for agreement.json, .csv and .md")] = Path("agreement"),
    truth: Annotated[Optional[Path], typer.Option(help="reference standard: a manifest (path, label[, patient_id])")
                     ] = None,
    task: Annotated[Optional[str], typer.Option(help="task name or YAML: class order, ordinal (weighted kappa)")
                    ] = None,
    resamples: int = 1000,
    seed: int = 0,
) -> None:
    """Agreement between readers: Cohen's kappa per pair, Fleiss' kappa for the panel, quadratic-weighted kappa
    for ordinal tasks, each with a 95% CI; with --truth, each reader against the reference standard too.

    Example: proctovision agreement readers.csv --task ldrf --truth split.csv --out agreement/
    """
    from proctovision.core.errors import UserError
    from proctovision.core.tasks import load_task
    from proctovision.evaluation import agreement as agreement_lib
    from proctovision.evaluation.readers import read_readers, reader_labels

    try:
        if task:
            task_def = load_task(task)
            classes, ordinal = task_def.classes, task_def.ordinal
        else:
            labels = reader_labels(readers)
            classes, ordinal = tuple(sorted(labels)), False
        frame, _ = read_readers(readers, classes)
        reference, patients = agreement_lib.read_reference(truth) if truth else (None, None)
        if reference is not None:
            reference = agreement_lib.canonical_labels(reference, classes, truth)
        result = agreement_lib.agreement(frame, classes, ordinal, reference, patients, resamples, seed)
    except UserError as error:
        fail(str(error))
    files = agreement_lib.write_agreement(result, out)
    for condition, block in result["conditions"].items():
        panel = block["fleiss"]
        if panel:
            console.print(f"{condition}: Fleiss' kappa {panel['kappa']:.3f} "
                          f"({panel['ci95'][0]:.3f} to {panel['ci95'][1]:.3f}), {len(block['readers'])} readers, "
                          f"{panel['n_images']} images")
    console.print(f"agreement: {files['markdown']}")
