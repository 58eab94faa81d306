"""The `proctovision` command line: thin wrappers that parse, call the library, and print."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli_reading import reading_app
from proctovision.console import console, error_console, progress_bar

app = typer.Typer(
    name="proctovision",
    help="Build, validate, explain and deploy classifiers for anorectal imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(reading_app, name="reading")


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, shown as one line instead of a traceback (kept free of torch imports)."""
    from proctovision.errors import UserError

    return (UserError, FileNotFoundError, PermissionError, IsADirectoryError)


def fail(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(1)


ConfigOption = Annotated[Optional[Path], typer.Option(help="YAML run config; flags given override it")]
TaskOption = Annotated[Optional[str], typer.Option(help="task name or task YAML")]
BackboneOption = Annotated[Optional[str], typer.Option(help="registry name or any timm architecture")]
ModeOption = Annotated[Optional[str], typer.Option(help="frozen | finetune | scratch")]
WeightsOption = Annotated[Optional[str], typer.Option(help="imagenet | none | path to a weights file")]
AugmentationOption = Annotated[Optional[str], typer.Option(help="none | basic | colour")]


def run_config_from(config: Path | None, overrides: dict) -> object:
    """The run config of ``train`` and ``crossval``: the YAML with the flags given on top, or the flags alone."""
    from proctovision.config import apply_overrides, load_config, validate_config

    given = {key: value for key, value in overrides.items() if value is not None}
    return load_config(config, given) if config is not None else validate_config(apply_overrides({}, given), "flags")


@app.command()
def ingest(
    source: Annotated[
        Optional[Path], typer.Argument(help="class folders, a CSV with path,label,patient_id, or a DICOM folder")
    ] = None,
    task: Annotated[str, typer.Option(help="task name or task YAML")] = "hemorrhoid",
    out: Annotated[Path, typer.Option(help="manifest CSV to write; qc.json and qc.md go beside it")] = Path(
        "manifest.csv"
    ),
    patient_regex: Annotated[
        Optional[str], typer.Option(help="regex on file names giving the patient id (first group)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing manifest")] = False,
    labels: Annotated[
        Optional[Path], typer.Option(help="CSV labelling a DICOM folder: sop_instance_uid (or path) and label")
    ] = None,
    window: Annotated[
        str, typer.Option(help="DICOM window: file | CENTER,WIDTH | percentile:1,99 | soft-tissue, pelvis, bone, ...")
    ] = "file",
    export_png: Annotated[Optional[Path], typer.Option(help="also write every windowed image as PNG here")] = None,
    salt: Annotated[
        Optional[str], typer.Option(envvar="PROCTOVISION_SALT", help="salt for patient pseudonyms (default: a "
                                    "private .proctovision-salt file beside the manifest, made once)")
    ] = None,
    dicomweb: Annotated[Optional[str], typer.Option(
        help="DICOMweb root URL of a PACS to ingest from instead of SOURCE (auth: PROCTOVISION_DICOMWEB_USER/"
             "PASSWORD or _TOKEN)")] = None,
    study: Annotated[Optional[str], typer.Option(help="with --dicomweb: a StudyInstanceUID")] = None,
    series: Annotated[Optional[str], typer.Option(help="with --dicomweb: a SeriesInstanceUID")] = None,
    query: Annotated[
        Optional[list[str]], typer.Option(help="with --dicomweb: QIDO filter KEY=VALUE (repeatable)")
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="processes reading files (default: this machine's cores; 0: none)")
    ] = None,
    resume: Annotated[
        Optional[bool], typer.Option("--resume/--fresh", help="reuse the journal beside the manifest: read only "
                                     "files that are new or changed (--resume also updates an existing manifest); "
                                     "--fresh reads everything again")
    ] = None,
    crop_content: Annotated[bool, typer.Option(
        help="endoscopy: models trained on this manifest see only the round/octagonal content area (recorded "
             "in the preprocessing spec; burned-in border text never reaches the model)")] = False,
) -> None:
    """Build a manifest and a quality report from class folders, a CSV, a DICOM folder, or a PACS over DICOMweb.

    An interrupted ingest continues where it stopped when run again; --resume on a grown archive reads only
    the new files.

    Example: proctovision ingest data/endoscopy --task hemorrhoid --out data/manifest.csv
             proctovision ingest archive/ --task fistula --labels labels.csv --window pelvis --out mri/manifest.csv
             proctovision ingest stills/ --task hemorrhoid --crop-content --out data/manifest.csv
             proctovision ingest --dicomweb http://pacs:8042/dicom-web --query ModalitiesInStudy=MR \\
                 --task fistula --labels labels.csv --out mri/manifest.csv
             proctovision ingest archive/ --task fistula --labels labels.csv --workers 8 --resume --out mri/manifest.csv
    """
    from proctovision.data import ingest as ingest_lib
    from proctovision.data.dicom import parse_window, salt_for
    from proctovision.data.journal import journal_path
    from proctovision.data.pool import default_workers
    from proctovision.tasks import load_task

    task_def = load_task(task)
    if out.exists() and not overwrite and not resume:
        fail(f"{out} exists; pass --overwrite to replace it, or --resume to add what is new in {source}")
    if dicomweb and source is not None:
        fail("give either SOURCE or --dicomweb URL, not both")
    if source is None and not dicomweb:
        fail("give SOURCE (a folder or CSV) or --dicomweb URL")
    if dicomweb and labels is None:
        fail("--dicomweb needs --labels labels.csv (sop_instance_uid,label)")
    options = ingest_lib.DicomOptions(window=parse_window(window), salt=salt_for(out.parent, salt),
                                      export_png=export_png)
    fetch_failures: list = []
    if dicomweb:
        source, fetch_failures = fetch_dicomweb(dicomweb, out, options.salt, study, series, query, overwrite)
    frames = [0]
    with progress_bar("Reading files") as update:
        result = ingest_lib.ingest(
            source, task_def, patient_regex=patient_regex, labels=labels, dicom_options=options,
            workers=default_workers() if workers is None else workers, journal=journal_path(out),
            fresh=resume is False, frames_progress=lambda count: frames.__setitem__(0, count),
            progress=lambda done, total: update(done, total, note=f"{frames[0]} frames"),
        )
    result.excluded.extend(ingest_lib.Exclusion(name, reason) for name, reason in fetch_failures)
    if crop_content:
        from proctovision.data.content_area import mark_content_crop

        result.manifest, crop_failures = mark_content_crop(result.manifest)
        result.excluded.extend(ingest_lib.Exclusion(name, reason) for name, reason in crop_failures)
    report = ingest_lib.write_outputs(result, task_def, source, out)
    print_ingest_summary(report, out)
    if report["n_images"] == 0:
        fail(f"no usable image found in {source}; see {out.parent / 'qc.md'}")


def fetch_dicomweb(url: str, out: Path, salt: str, study: str | None, series: str | None,
                   query: list[str] | None, overwrite: bool) -> tuple[Path, list]:
    from proctovision.serving.dicomweb import fetch_for_ingest, parse_query

    with progress_bar("Retrieving over DICOMweb") as update:
        folder, failures = fetch_for_ingest(url, out, salt, study, series, parse_query(query), overwrite, update)
    console.print(f"retrieved instances: {folder}")
    return folder, failures


def print_ingest_summary(report: dict, out: Path) -> None:
    table = Table(title=f"{report['n_images']} images, {report['n_patients']} patients")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("patients", justify="right")
    for name in report["classes"]:
        table.add_row(name, str(report["images_per_class"][name]), str(report["patients_per_class"][name]))
    console.print(table)
    if report["excluded"]:
        console.print(f"[yellow]{len(report['excluded'])} file(s) left out:[/]")
        for item in report["excluded"][:10]:
            console.print(f"  {item['path']}: {item['reason']}", soft_wrap=True)
        if len(report["excluded"]) > 10:
            console.print(f"  ... and {len(report['excluded']) - 10} more")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    console.print(f"manifest: {out}\nquality report: {out.parent / 'qc.md'}")


@app.command()
def split(
    manifest: Annotated[Path, typer.Argument(help="manifest.csv from ingest")],
    val: Annotated[float, typer.Option(help="fraction of patients for validation")] = 0.15,
    test: Annotated[float, typer.Option(help="fraction of patients for test")] = 0.15,
    folds: Annotated[Optional[int], typer.Option(help="k-fold instead of hold-out")] = None,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="split CSV to write")] = Path("split.csv"),
    strict: Annotated[bool, typer.Option(help="refuse a split where a duplicate image sits on two sides")] = False,
) -> None:
    """Split by patient, stratified by label: no patient is ever on two sides.

    Example: proctovision split manifest.csv --val 0.15 --test 0.15 --seed 0 --out split.csv
    """
    import os

    from proctovision import fileio
    from proctovision.data import split as split_lib
    from proctovision.data.manifest import read_manifest, write_manifest

    frame = read_manifest(manifest)
    if frame.empty:
        fail(f"{manifest}: the manifest has no rows")
    result = split_lib.kfold_split(frame, folds, seed) if folds else split_lib.holdout_split(frame, val, test, seed)
    column = "fold" if folds else "split"
    if split_lib.leaking_patients(result, column):
        fail("internal error: a patient landed on two sides; nothing was written")
    leaks = split_lib.duplicate_leaks(result, column)
    for leak in leaks[:10]:
        error_console.print(f"[yellow]duplicate across {' / '.join(leak['sides'])}[/] ({leak['kind']}): "
                            f"{' = '.join(leak['paths'])}", soft_wrap=True)
    if leaks and strict:
        fail(f"{len(leaks)} duplicate image pair(s) would sit on two sides (a leak); give each copy the same "
             f"patient_id or remove the copies, then split again; nothing was written")
    write_manifest(result, out)
    fileio.write_json(out.with_name(out.name + ".lineage.json"), {
        "manifest": os.path.relpath(manifest.resolve(), out.resolve().parent), "manifest_sha256": fileio.sha256(manifest),
        "seed": seed, "folds": folds, "val": None if folds else val, "test": None if folds else test})
    summary = split_lib.split_summary(result, column, tuple(sorted(frame["label"].unique())))
    table = Table(title=f"split by patient ({column})")
    for name in summary.columns:
        table.add_column(str(name))
    for record in summary.itertuples(index=False):
        table.add_row(*(str(value) for value in record))
    console.print(table)
    console.print(f"split: {out}")


@app.command()
def train(
    split_csv: Annotated[Optional[Path], typer.Argument(metavar="SPLIT", help="split.csv from `split`")] = None,
    config: ConfigOption = None,
    task: TaskOption = None,
    backbone: BackboneOption = None,
    mode: ModeOption = None,
    weights: WeightsOption = None,
    epochs: Optional[int] = None,
    image_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    augmentation: AugmentationOption = None,
    fold: Annotated[Optional[int], typer.Option(help="k-fold split files: fold held out")] = None,
    accelerator: Optional[str] = None,
    devices: Optional[str] = None,
    num_nodes: Optional[int] = None,
    strategy: Optional[str] = None,
    precision: Annotated[Optional[str], typer.Option(help="32 | 16-mixed | bf16-mixed (default: 16-mixed on GPU, "
                                                     "32 on CPU)")] = None,
    out: Optional[Path] = None,
    resume: Annotated[bool, typer.Option(help="continue from checkpoints/last.ckpt")] = False,
    track: Annotated[bool, typer.Option(envvar="PROCTOVISION_TRACK", help="log to MLflow")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI or SQLite file (default: "
                                                        "mlflow.db beside the run folder)")] = None,
) -> None:
    """Train a backbone in frozen, finetune or scratch mode.

    Example: proctovision train split.csv --task hemorrhoid --backbone resnet18 --mode finetune --epochs 10 --out runs/r18
    """
    from proctovision.training import train as train_run

    overrides = {
        "task": task, "data.split": str(split_csv) if split_csv else None, "data.image_size": image_size,
        "data.batch_size": batch_size, "data.augmentation": augmentation, "data.fold": fold,
        "model.backbone": backbone, "model.mode": mode, "model.weights": weights, "optim.lr": lr,
        "trainer.epochs": epochs, "trainer.seed": seed, "trainer.accelerator": accelerator,
        "trainer.devices": _devices(devices), "trainer.num_nodes": num_nodes, "trainer.strategy": strategy,
        "trainer.precision": precision,
        "out": str(out) if out else None,
    }
    if config is None and split_csv is None:
        fail("give a split file (proctovision train split.csv ...) or --config run.yaml")
    run_config = run_config_from(config, overrides)
    tracking = _tracking(Path(run_config.out), track, tracking_uri)
    logger = None
    if tracking is not None:
        from proctovision.tracking import training_logger

        logger = training_logger(tracking, Path(run_config.out))
    paths = train_run(run_config, resume=resume, logger=logger)
    _log_run(tracking, paths.root)
    console.print(f"run: {paths.root}\ncheckpoints: {paths.checkpoints}\nhistory: {paths.history}")


def _tracking(output: Path, track: bool, uri: str | None) -> object | None:
    from proctovision.tracking import tracking_for

    return tracking_for(output, uri, track)


def _log_run(tracking: object | None, run_dir: Path) -> None:
    if tracking is not None:
        from proctovision.tracking import log_run

        log_run(tracking, run_dir)
        console.print(f"tracked: {tracking.uri}")


def _devices(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    resamples: Annotated[int, typer.Option(help="patient bootstrap resamples for the 95% CIs")] = 1000,
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
    track: Annotated[bool, typer.Option(envvar="PROCTOVISION_TRACK", help="log to MLflow")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI or SQLite file (default: "
                                                        "mlflow.db beside the run folder)")] = None,
) -> None:
    """Predict a split and score it: metrics.json and predictions.csv (metrics with 95% CIs) = predict + score.

    Example: proctovision evaluate runs/r18 --split test --cams
             proctovision evaluate runs/r18 --data site_b/manifest.csv --name site_b    # external validation
    """
    from proctovision.evaluation.subgroups import split_columns
    from proctovision.inference.evaluate import evaluate_external, evaluate_run

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
    _log_run(_tracking(run, track, tracking_uri), run)
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
    from proctovision.evaluation.calibration import check_threshold_rule
    from proctovision.evaluation.score import ScoreOptions, score_file
    from proctovision.evaluation.subgroups import split_columns
    from proctovision.tasks import load_task

    check_threshold_rule(threshold)
    entry = score_file(predictions, out, truth, None if split == "all" else split,
                       ScoreOptions(threshold, temperature_scaling, resamples, seed),
                       load_task(task) if task else None, split_columns(by) or None)
    print_metrics(entry)
    console.print(f"metrics: {out / 'metrics.json'}\nfigures: {out / 'figures'}")


def print_metrics(entry: dict) -> None:
    table = Table(title=f"{entry['split']}: {entry['n_images']} images, {entry['n_patients']} patients")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for name, item in entry["metrics"].items():
        low, high = item["ci95"]
        value = "n/a" if item["value"] is None else f"{item['value']:.3f}"
        interval = "n/a" if low is None else f"{low:.3f}-{high:.3f}"
        table.add_row(name, value, interval)
    console.print(table)
    if entry.get("threshold"):
        cut = entry["threshold"]["value"]
        console.print(f"threshold {'per row' if cut is None else format(cut, '.3f')} ({entry['threshold']['rule']}, "
                      f"chosen on {entry['threshold']['chosen_on']})")
    if "reading_time_s" in entry:
        console.print(f"reading time: {entry['reading_time_s']:.2f} s for {entry['n_images']} images "
                      f"({entry['images_per_s']:.1f} images/s)")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_OR_PREDICTIONS...",
                                               help="evaluated run folders or predictions CSV files")],
    readers: Annotated[Optional[Path], typer.Option(
        help="CSV: path, reader, label[, frame, score, condition, reading_time_s]")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="manifest with the reference labels, when no model "
                                                  "participant carries them")] = None,
    mrmc_covariance: Annotated[str, typer.Option(help="MRMC covariances: jackknife | bootstrap (over patients)")] = (
        "jackknife"),
    split: str = "test",
    out: Annotated[Path, typer.Option(help="folder for the table, the tests and the figures")] = Path("comparison"),
    resamples: int = 1000,
    seed: int = 0,
) -> None:
    """Models and human readers side by side: metrics with CIs, DeLong, McNemar and bootstrap differences.

    Example: proctovision compare runs/convmixer runs/effnet --readers readers.csv --out comparison/
             proctovision compare other_tool.csv --truth data/manifest.csv --readers readers.csv --out comparison/
    """
    from proctovision.evaluation.compare import compare as compare_lib

    result = compare_lib(list(runs), out, readers=readers, split=split, n_resamples=resamples, seed=seed,
                         truth=truth, mrmc_covariance=mrmc_covariance)
    table = Table(title=f"{split}: {result['n_images']} images, {result['n_patients']} patients")
    for column in ("participant", "kind", "accuracy", "recall", "precision", "f1", "reading time (s)"):
        table.add_column(column)
    for row in result["table"]:
        table.add_row(row["participant"], row["kind"], *(_fmt(row.get(name), "{:.3f}") for name in (
                      "accuracy", "recall", "precision", "f1")), _fmt(row["reading_time_s"], "{:.1f}"))
    console.print(table)
    console.print(f"table: {out / 'comparison.md'}\ntests: {out / 'tests.csv'}\nfigures: {out / 'figures'}")


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
    from proctovision.errors import UserError
    from proctovision.evaluation import agreement as agreement_lib
    from proctovision.evaluation.readers import read_readers
    from proctovision.tasks import load_task

    try:
        if task:
            task_def = load_task(task)
            classes, ordinal = task_def.classes, task_def.ordinal
        else:
            labels = pd_labels(readers)
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


def pd_labels(path: Path) -> set[str]:
    """The labels a readers file uses, when no task gives the class order."""
    import pandas as pd

    if not path.is_file():
        fail(f"{path}: file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [column.strip() for column in frame.columns]
    if "label" not in frame.columns:
        fail(f"{path}: missing column(s) label")
    return {label.strip() for label in frame["label"] if label.strip()}


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's data and runs")] = Path("demo_output"),
    task: Annotated[str, typer.Option(help="hemorrhoid | ldrf | fistula (MR DICOM)")] = "hemorrhoid",
    epochs: int = 30,
    patients: int = 60,
    images_per_patient: int = 4,
    backbone: str = "efficientnet_lite0",
) -> None:
    """Generate synthetic data, then ingest, split, train, evaluate: offline, a few minutes on a CPU.

    Example: proctovision demo --out demo_output
    """
    from proctovision.demo_pipeline import run_demo

    summary = run_demo(out, task=task, epochs=epochs, patients=patients, images_per_patient=images_per_patient,
                       backbone=backbone)
    print_metrics(summary["test"])
    console.print("[bold]The demo data are synthetic: these figures say the pipeline works, nothing clinical.[/]")
    for name, path in summary["paths"].items():
        console.print(f"{name}: {path}")


# --- explanation commands ---
@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    paths: Annotated[
        Optional[list[Path]], typer.Argument(metavar="[IMAGE_OR_DIR]...", help="images, DICOM files or folders")
    ] = None,
    split: Annotated[Optional[str], typer.Option(help="explain a split of the run's data instead (val, test)")] = None,
    method: Annotated[str, typer.Option(help="gradcam | gradcam++ | hirescam | eigencam | layercam | scorecam")] = "gradcam",
    target: Annotated[str, typer.Option(help="predicted, or a class name")] = "predicted",
    out: Annotated[Path, typer.Option(help="folder for one PNG per image, cams.csv and grid.png")] = Path("cams"),
    faithfulness: Annotated[bool, typer.Option(help="score each map with ROAD (slower)")] = False,
    layer: Annotated[Optional[str], typer.Option(help="backbone layer to read instead of the registry's, "
                                                 "e.g. blocks.-2 for a finer map")] = None,
    batch_size: int = 8,
) -> None:
    """Grad-CAM (and variants) per image, laid out as original | heatmap | overlay.

    Example: proctovision explain runs/r18 images/ --method gradcam++ --out cams/
             proctovision explain runs/r18 --split test --faithfulness --out cams/   (adds a right/wrong grid)
    """
    from proctovision.explain import cases_grid, explain_frame
    from proctovision.inference.evaluate import split_rows
    from proctovision.inference.predictor import TorchPredictor

    predictor = TorchPredictor(run)
    if split:
        frame = split_rows(predictor.run, split)
    elif paths:
        frame = readable_frame(paths)
    else:
        fail("give images or folders to explain, or --split val|test")
    with progress_bar(f"{method} maps") as update:
        table = explain_frame(predictor, frame, out, method, target, batch_size, update, faithfulness, layer)
    grid = cases_grid(table, out, predictor.classes, out / "grid.png")
    console.print(f"{len(table)} map(s) written to {out} (index: {out / 'cams.csv'})")
    if grid:
        console.print(f"right and wrong cases per class: {grid}")
    if faithfulness and len(table):
        console.print(f"ROAD faithfulness ({method}): mean {table['road'].mean():.4f} (higher is more faithful)")


def readable_frame(paths: list[Path]) -> "pd.DataFrame":  # noqa: F821
    """Every image and every frame of multi-frame DICOM under ``paths``; files that cannot say are listed."""
    import pandas as pd

    from proctovision.inference.predictor import expand_frames, expand_paths

    keys, errors = expand_frames(expand_paths(paths))
    for path, reason in errors:
        error_console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
    if not keys:
        fail("no readable image to explain")
    return pd.DataFrame({"path": [str(Path(path).resolve()) for path, _ in keys],
                         "frame": [frame for _, frame in keys]})


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="run folders, or crossval folders")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    comparison: Annotated[Optional[Path], typer.Option(help="a folder written by `compare`, to include")] = None,
    cams: Annotated[bool, typer.Option(help="compute a Grad-CAM gallery of right and wrong cases")] = True,
    lang: Annotated[Optional[str], typer.Option(
        help="en or zh-CN; default: $PROCTOVISION_LANGUAGE, else `language:` in the settings file, else en")] = None,
) -> None:
    """One self-contained HTML report: data, QC, config, curves, metrics with CIs, Grad-CAM, CLAIM checklist.

    Example: proctovision report runs/convmixer runs/effnet --comparison comparison/ --lang zh-CN --out report.html
             proctovision report cv/r18 --out cv_report.html      # a crossval folder: its cross-validation section
    """
    from proctovision import i18n
    from proctovision.reporting.report import build_report

    try:
        language = i18n.resolve(lang)
    except i18n.LanguageError as error:
        fail(str(error))
    crossvals = [run for run in runs if (run / "cv_metrics.json").is_file()]
    with console.status("Writing the report"):
        path = build_report([run for run in runs if run not in crossvals], out, comparison=comparison, cams=cams,
                            lang=language, crossval=crossvals)
    console.print(f"report: {path}")


# --- reproduction commands ---
@app.command()
def reproduce(
    study: Annotated[str, typer.Argument(help="hemorrhoid | fistula, or a grid YAML copied from configs/")],
    data: Annotated[Path, typer.Option(help="folder holding the grid's sources (e.g. hemorrhoid.csv, ldrf.csv)")],
    out: Annotated[Optional[Path], typer.Option(help="default: reproduce_<study>")] = None,
    readers: Annotated[Optional[Path], typer.Option(help="readers.csv (optional `task` column)")] = None,
    quick: Annotated[bool, typer.Option(help="tiny settings: checks the whole grid runs, in minutes")] = False,
    resamples: int = 1000,
    executor: Annotated[str, typer.Option(help="local | slurm (one job per grid run through submitit) | "
                                          "submitit-local")] = "local",
    slurm_partition: Annotated[Optional[str], typer.Option(help="with --executor slurm")] = None,
    slurm_gpus: Annotated[int, typer.Option(help="with --executor slurm: GPUs per job")] = 0,
    slurm_time: Annotated[int, typer.Option(help="with --executor slurm: minutes per job")] = 240,
    track: Annotated[bool, typer.Option(envvar="PROCTOVISION_TRACK", help="log to MLflow")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI or SQLite file (default: "
                                                        "mlflow.db beside the output folder)")] = None,
) -> None:
    """Run a study's whole experiment grid, resumably, and write its tables, figures and report.

    Example: proctovision reproduce hemorrhoid --data data/ --readers readers.csv --out repro_hemorrhoid
             proctovision reproduce hemorrhoid --data data/ --executor slurm --slurm-gpus 1 --out repro_hemorrhoid
    """
    from proctovision.experiments.grid import load_grid
    from proctovision.experiments.runner import reproduce as run_grid

    grid = load_grid(study)
    target = out or Path(f"reproduce_{grid.name}")
    jobs = _executor(executor, target, slurm_partition, slurm_gpus, slurm_time)
    result = run_grid(grid, data, target, quick=quick, readers=readers, resamples=resamples, executor=jobs,
                      tracking=_tracking(target, track, tracking_uri))
    for task, files in result["tasks"].items():
        console.print(f"{task}: table {files['table']}" + (f", ROC {files['roc']}" if files["roc"] else ""))
    console.print(f"report: {result['report']}")


@app.command()
def crossval(
    folds_csv: Annotated[Path, typer.Argument(metavar="FOLDS.csv", help="split file with a fold column "
                                              "(proctovision split MANIFEST --folds K)")],
    out: Annotated[Path, typer.Option(help="folder for the fold runs, oof_predictions.csv and cv_metrics.json")],
    config: ConfigOption = None,
    task: TaskOption = None,
    backbone: BackboneOption = None,
    mode: ModeOption = None,
    weights: WeightsOption = None,
    epochs: Optional[int] = None,
    image_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    augmentation: AugmentationOption = None,
    val: Annotated[float, typer.Option(help="share of the other folds' patients used for validation")] = 0.2,
    repeats: Annotated[int, typer.Option(help="repeat the k-fold split with seeds seed+1, seed+2, ...")] = 1,
    threshold: Annotated[str, typer.Option(help="binary: youden | sensitivity:X | specificity:X | a number; "
                                           "fitted on each fold's validation")] = "youden",
    temperature_scaling: Annotated[bool, typer.Option(help="calibrate each fold on its validation")] = False,
    resamples: Annotated[int, typer.Option(help="patient bootstrap resamples for the 95% CIs")] = 1000,
    executor: Annotated[str, typer.Option(help="local | slurm (one job per fold through submitit) | "
                                          "submitit-local")] = "local",
    slurm_partition: Annotated[Optional[str], typer.Option(help="with --executor slurm")] = None,
    slurm_gpus: Annotated[int, typer.Option(help="with --executor slurm: GPUs per job")] = 0,
    slurm_time: Annotated[int, typer.Option(help="with --executor slurm: minutes per job")] = 240,
    track: Annotated[bool, typer.Option(envvar="PROCTOVISION_TRACK", help="log to MLflow")] = True,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI or SQLite file (default: "
                                                        "mlflow.db beside --out)")] = None,
) -> None:
    """k-fold cross-validation: a run per fold (tested on it), out-of-fold predictions, cv_metrics.json.

    Fold k is the test set; a stratified patient slice of the other folds validates (threshold, checkpoint);
    the rest trains. Resumable: finished folds are skipped.

    Example: proctovision split manifest.csv --folds 5 --out folds.csv
             proctovision crossval folds.csv --task hemorrhoid --backbone resnet18 --mode finetune --out cv/r18
    """
    from proctovision.experiments.crossval import CrossvalSettings
    from proctovision.experiments.crossval import crossval as run_crossval

    overrides = {
        "task": task, "data.split": str(folds_csv), "data.image_size": image_size, "data.batch_size": batch_size,
        "data.augmentation": augmentation, "model.backbone": backbone, "model.mode": mode, "model.weights": weights,
        "optim.lr": lr, "trainer.epochs": epochs, "trainer.seed": seed, "out": str(out),
    }
    base = run_config_from(config, overrides)
    if not 0 < val < 1:
        fail(f"--val must be between 0 and 1 (got {val})")
    settings = CrossvalSettings(val=val, repeats=repeats, seed=base.trainer.seed, threshold=threshold,
                                temperature_scaling=temperature_scaling, resamples=resamples)
    result = run_crossval(folds_csv, base, out, settings, executor=_executor(executor, out, slurm_partition,
                                                                              slurm_gpus, slurm_time),
                          tracking=_tracking(out, track, tracking_uri), announce=console.print)
    for item in result["per_repeat"]:
        entry = dict(item["pooled"], split=f"out-of-fold, pooled (repeat {item['repeat']})")
        print_metrics(entry)
    table = Table(title=f"{result['k']} folds x {result['repeats']} repeat(s): mean ± SD over folds")
    for column in ("metric", "mean", "SD", "min-max"):
        table.add_column(column)
    for metric, stats in result["mean_sd"].items():
        sd = "-" if stats["sd"] is None else f"{stats['sd']:.3f}"
        table.add_row(metric, f"{stats['mean']:.3f}", sd, f"{stats['min']:.3f}-{stats['max']:.3f}")
    console.print(table)
    console.print(f"cv metrics: {out / 'cv_metrics.json'}")


def _executor(kind: str, out: Path, partition: str | None, gpus: int, minutes: int) -> object | None:
    from proctovision.experiments.executor import ExecutorSettings, make_executor

    return make_executor(ExecutorSettings(kind=kind, folder=out / "jobs", partition=partition, gpus_per_node=gpus,
                                          time_min=minutes))


# --- deployment commands ---
@app.command()
def predict(
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")],
    paths: Annotated[Optional[list[Path]], typer.Argument(help="image or DICOM files, or folders")] = None,
    out: Annotated[Path, typer.Option(help="predictions .csv or .json")] = Path("predictions.csv"),
    batch_size: int = 16,
    heatmaps: Annotated[Optional[Path], typer.Option(help="also write a Grad-CAM overlay PNG per image here")] = None,
    dicomweb: Annotated[Optional[str], typer.Option(help="DICOMweb root URL of a PACS (auth: "
                                                    "PROCTOVISION_DICOMWEB_USER/PASSWORD or _TOKEN)")] = None,
    study: Annotated[Optional[str], typer.Option(help="with --dicomweb: the StudyInstanceUID to predict")] = None,
    push: Annotated[bool, typer.Option(help="with --dicomweb: store an SR and Grad-CAM overlays in the study")] = False,
    audit_log: Annotated[Optional[Path], typer.Option(help="with --dicomweb: append one JSON line per answer here")]
    = None,
) -> None:
    """Predict class probabilities for files and folders; unreadable files are listed, the rest go on.

    Example: proctovision predict runs/r18 new_images/ --out predictions.csv
             proctovision predict runs/r18 --dicomweb http://pacs:8042/dicom-web --study 1.2.3.4 --push
    """
    import pandas as pd

    from proctovision import fileio
    from proctovision.inference.predictor import expand_paths, load_predictor

    if dicomweb or study or push:
        if heatmaps is not None or paths:
            fail("--dicomweb predicts a study: give no paths and no --heatmaps (--push stores the overlays)")
        return predict_dicomweb(model, dicomweb, study, push, out, batch_size, audit_log)
    if audit_log is not None:
        fail("--audit-log records answers given to clinicians: it goes with --dicomweb (and serve)")
    if not paths:
        fail("give image files or folders to predict, or --dicomweb URL --study UID")
    predictor = load_predictor(model)
    with console.status("Predicting"):
        batch = predictor.predict_files(expand_paths(paths), batch_size=batch_size)
    from proctovision.inference.predictor import GUARD_COLUMNS

    rows = [
        {"path": item.path, "frame": "" if item.frame is None else item.frame, "predicted": item.predicted,
         "threshold": item.threshold,
         **{f"prob_{name}": value for name, value in item.probabilities.items()}, **item.flat_guard()}
        for item in batch.predictions
    ]
    if out.suffix.lower() == ".json":
        errors = [{"path": path, "reason": reason} for path, reason in batch.errors]
        fileio.write_json(out, {"classes": list(predictor.classes), "predictions": rows, "errors": errors})
    else:
        fileio.write_csv(out, pd.DataFrame(rows, columns=["path", "frame", "predicted", "threshold"]
                                           + [f"prob_{name}" for name in predictor.classes] + list(GUARD_COLUMNS)))
    outside = sum(1 for row in rows if row["in_distribution"] is False)
    if outside:
        error_console.print(f"[yellow]{outside} image(s) do not look like the training images "
                            "(in_distribution false): do not read their class as a finding[/]")
    for path, reason in batch.errors:
        error_console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
    if heatmaps is not None:
        write_heatmaps(predictor, batch.predictions, heatmaps)
    console.print(f"{len(rows)} image(s) predicted at {batch.images_per_s:.1f} images/s; "
                  f"{len(batch.errors)} skipped\npredictions: {out}")
    if not rows:
        fail("no image could be predicted")


def predict_dicomweb(model: Path, url: str | None, study: str | None, push: bool, out: Path,
                     batch_size: int, audit_log: Path | None = None) -> None:
    import pandas as pd

    from proctovision import fileio
    from proctovision.inference.predictor import load_predictor
    from proctovision.serving.dicomweb import connect
    from proctovision.serving.pacs import predict_study

    if not (url and study):
        fail("--dicomweb URL and --study UID go together (--push needs both)")
    predictor = load_predictor(model)
    audit = None
    if audit_log:
        from proctovision.serving.audit import AuditLog, model_identity

        audit = AuditLog(audit_log, model_identity(predictor))
    with console.status("Retrieving and predicting the study"):
        result = predict_study(connect(url), predictor, study, push=push, batch_size=batch_size, audit=audit)
    rows = result.rows(predictor.classes, predictor.threshold)
    columns = ["path", "frame", "predicted", "threshold"] + [f"prob_{name}" for name in predictor.classes]
    if out.suffix.lower() == ".json":
        fileio.write_json(out, {"classes": list(predictor.classes), "predictions": rows,
                                "errors": [{"path": name, "reason": reason} for name, reason in result.skipped]})
    else:
        fileio.write_csv(out, pd.DataFrame(rows, columns=columns))
    for name, reason in result.skipped:
        error_console.print(f"[yellow]skipped[/] instance {name}: {reason}", soft_wrap=True)
    console.print(f"{len(rows)} image(s) predicted in {result.seconds:.1f} s; {len(result.skipped)} skipped\n"
                  f"predictions: {out}")
    if result.sr_uid:
        console.print(f"stored in the study: 1 SR and {result.n_secondary_captures} Grad-CAM overlay(s)")
    if not rows:
        fail("the study holds no image that could be predicted")


def write_heatmaps(predictor: object, predictions: list, folder: Path) -> None:
    from proctovision import fileio
    from proctovision.data.images import read_image

    window = (predictor.card.get("preprocessing") or {}).get("window")
    for number, item in enumerate(predictions):
        png = predictor.heatmap_png(read_image(item.path, frame=item.frame, window=window),
                                    predictor.classes.index(item.predicted))
        if png is None:
            error_console.print("[yellow]heatmaps need a run folder (PyTorch); an ONNX export has none[/]")
            return
        suffix = "" if item.frame is None else f"_f{item.frame}"
        fileio.write_bytes(folder / f"{number:05d}_{Path(item.path).stem}{suffix}.png", png)
    console.print(f"heatmaps: {folder}")


@app.command()
def video(
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")],
    source: Annotated[str, typer.Argument(metavar="INPUT", help="video file (MP4, AVI, MKV, MOV) or capture device "
                                          "(/dev/video0, v4l2:/dev/video1, dshow:video=NAME)")],
    out: Annotated[Path, typer.Option(help="folder for frames.csv, segments.csv/json, summary.json, annotated.mp4")],
    live: Annotated[bool, typer.Option(help="live: take the newest frame, drop (and count) what the model misses; "
                                       "a file is played at its own frame rate")] = False,
    smoothing: Annotated[str, typer.Option(help="ema | window")] = "ema",
    alpha: Annotated[float, typer.Option(help="EMA weight of the newest frame")] = 0.3,
    window: Annotated[int, typer.Option(help="sliding-window length in frames")] = 9,
    margin: Annotated[float, typer.Option(help="hysteresis: how far past the threshold the shown class changes")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="consecutive frames per model call (file mode)")] = 16,
    cam_every: Annotated[int, typer.Option(help="Grad-CAM overlay every Nth frame (run folders; 0 = none)")] = 0,
    annotate: Annotated[bool, typer.Option(help="write annotated.mp4 (content area only, class, bar)")] = True,
    annotate_width: Annotated[int, typer.Option(help="width of annotated.mp4 in pixels")] = 640,
    backend: Annotated[str, typer.Option(help="auto | onnx | torch")] = "auto",
    max_frames: Annotated[Optional[int], typer.Option(help="stop after this many frames from the source")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the outputs of an earlier run in --out")] = False,
    audit_log: Annotated[Optional[Path], typer.Option(help="append one JSON line per classified frame (no image, "
                                                      "no file name), rotated by size")] = None,
) -> None:
    """Classify a video file or a live source frame by frame: smoothed probabilities, a flicker-free class,
    segments, and an annotated MP4 that shows only the endoscopic field (burned-in border text never copied).

    Example: proctovision video deploy/lite0 colonoscopy.mp4 --out video_out/
             proctovision video deploy/lite0 /dev/video0 --live --out live_out/
    """
    from proctovision.inference.predictor import load_predictor
    from proctovision.inference.video import VideoOptions, run_file, run_live, segments, summary

    if (out / "summary.json").exists() and not overwrite:
        fail(f"{out} holds an earlier video result; pass --overwrite or choose another --out")
    options = VideoOptions(smoothing=smoothing, alpha=alpha, window=window, margin=margin, batch_size=batch_size,
                           cam_every=cam_every, annotate=annotate, annotate_width=annotate_width, live=live,
                           max_frames=max_frames)
    predictor = load_predictor(model, backend)
    if audit_log is not None:
        from proctovision.serving.audit import AuditLog, model_identity

        options.audit = AuditLog(audit_log, model_identity(predictor))
    if cam_every and predictor.backend != "pytorch":
        fail("--cam-every needs a run folder (PyTorch); an ONNX export has no gradients")
    if live:
        console.print("live: press Ctrl-C to stop; the outputs are written then")
        result = run_live(predictor, source, out, options)
    else:
        with progress_bar("Frames") as update:
            result = run_file(predictor, source, out, options, progress=lambda done: update(done, None))
    info = summary(result, options)
    for note in result.errors:
        error_console.print(f"[yellow]note[/] {note}", soft_wrap=True)
    shown = segments(result)
    console.print(f"{info['frames_processed']} of {info['frames_seen']} frame(s) classified at "
                  f"{info['fps_achieved']:.1f} frames/s ({result.backend}); {info['frames_dropped']} dropped; "
                  f"{len(shown)} segment(s)" + (f"; latency p95 {info['latency_ms_p95']:.1f} ms" if live else ""))
    if info["frames_out_of_distribution"]:
        error_console.print(f"[yellow]warning[/] {info['frames_out_of_distribution']} frame(s) do not look like the "
                            "images the model was trained on (frames.csv: in_distribution)", soft_wrap=True)
    console.print(f"outputs: {out}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[Path, typer.Option(help="folder for model.onnx and the model card")] = Path("export"),
    lang: Annotated[
        Optional[str], typer.Option(help="language of MODEL_CARD.md: en or zh-CN (default as for `report`)")
    ] = None,
    quantize: Annotated[Optional[str], typer.Option(help="int8: static INT8 (QDQ), kept only if on validation it "
                                                   "decides as FP32 on >= 99% of images, AUC drop <= 0.01")] = None,
) -> None:
    """Export to ONNX with a parity check against PyTorch, and write a model card beside it.

    Example: proctovision export runs/r18 --format onnx --lang zh-CN --out deploy/r18
             proctovision export runs/r18 --quantize int8 --out deploy/r18-int8
    """
    from proctovision import i18n
    from proctovision.serving.export import export_run

    if format != "onnx":
        fail(f"unknown format {format!r}: only onnx is supported")
    try:
        language = i18n.resolve(lang)
    except i18n.LanguageError as error:
        fail(str(error))
    if quantize not in (None, "int8"):
        fail(f"unknown --quantize {quantize!r}: only int8 is supported")
    check = export_run(run, out, quantize=quantize, report=console.print, language=language)
    console.print(f"ONNX parity: max |Δp| = {check['max_abs_diff']:.2e} on {check['n_inputs']} inputs (limit 1e-4)")
    console.print(f"model: {out / 'model.onnx'}\ncard: {out / 'MODEL_CARD.md'}")


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")],
    host: str = "127.0.0.1",
    port: int = 8000,
    token: Annotated[
        Optional[str], typer.Option(envvar="PROCTOVISION_API_TOKEN", help="required when not bound to loopback")
    ] = None,
    max_upload_mb: int = 20,
    workers: Annotated[int, typer.Option(help="worker processes, each with its own model (more cores)")] = 1,
    batch_images: Annotated[int, typer.Option(help="most images one forward pass gathers (1: no batching)")] = 16,
    batch_wait_ms: Annotated[float, typer.Option(help="longest a request waits for others to share its pass")] = 10.0,
    audit_log: Annotated[Optional[Path], typer.Option(help="append one JSON line per answer here (rotated by size)")]
    = None,
) -> None:
    """Serve a REST API (POST /predict, GET /health, GET /model, /docs) and a web page for clinicians.

    Example: proctovision serve deploy/r18 --port 8000   (then open http://127.0.0.1:8000/)
    """
    import uvicorn

    from proctovision.serving.app import create_app, is_loopback

    if not is_loopback(host) and not token:
        fail(f"binding to {host} exposes the service beyond this machine: give --token (or PROCTOVISION_API_TOKEN)")
    if not Path(model).exists():
        fail(f"{model}: no such run or model folder")
    if workers < 1 or batch_images < 1 or batch_wait_ms < 0:
        fail("--workers and --batch-images must be at least 1, --batch-wait-ms at least 0")
    settings = {"source": str(model), "token": token, "max_upload_bytes": max_upload_mb * 1024 * 1024,
                "batch_images": batch_images, "batch_wait_ms": batch_wait_ms,
                "audit_log": str(audit_log) if audit_log else None}
    console.print(f"serving {model} on http://{host}:{port}/ (API docs at /docs); {workers} worker(s), batches of "
                  f"up to {batch_images} image(s) or {batch_wait_ms:g} ms" + (f"; audit log {audit_log}" if audit_log
                                                                              else ""))
    if workers == 1:
        uvicorn.run(create_app(**settings), host=host, port=port, log_level="warning")
        return
    import json
    import os

    from proctovision.serving.app import SETTINGS_VARIABLE

    os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    uvicorn.run("proctovision.serving.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level="warning")


@app.command()
def watch(
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")],
    dicomweb: Annotated[str, typer.Option(help="DICOMweb root URL of the PACS (auth: "
                                          "PROCTOVISION_DICOMWEB_USER/PASSWORD or _TOKEN)")],
    query: Annotated[Optional[list[str]], typer.Option(help="QIDO study filter KEY=VALUE, e.g. "
                                                       "ModalitiesInStudy=MR (repeatable)")] = None,
    since: Annotated[Optional[str], typer.Option(help="studies dated from YYYYMMDD, or 'all' (default: the day "
                                                 "the state file was made)")] = None,
    state: Annotated[Path, typer.Option(help="restart-safe record of the studies done")] = Path("watch-state.json"),
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 60.0,
    stable: Annotated[float, typer.Option(help="seconds a study's instance count must stay unchanged")] = 120.0,
    once: Annotated[bool, typer.Option(help="poll once and stop")] = False,
) -> None:
    """Poll a PACS for new studies, predict them and store the results (SR + Grad-CAM) in each study.

    Example: PROCTOVISION_DICOMWEB_TOKEN=... proctovision watch runs/r18 --dicomweb https://pacs/dicom-web \\
                 --query ModalitiesInStudy=MR --state /var/lib/proctovision/watch.json
    """
    import datetime

    from proctovision.serving.dicomweb import parse_query
    from proctovision.serving.watch import watch as watch_pacs

    def log(line: str) -> None:
        console.print(f"{datetime.datetime.now().isoformat(timespec='seconds')} {line}", soft_wrap=True)

    log(f"watching for studies (state: {state}); stop with Ctrl-C")
    pushed = watch_pacs(dicomweb, model, state, parse_query(query), log, interval_s=interval, since=since,
                        stable_s=stable, max_polls=1 if once else None)
    log(f"{pushed} study(ies) predicted and stored")


@app.command()
def audit(
    log: Annotated[Path, typer.Argument(help="audit log written by serve --audit-log (rotated copies are read too)")],
    since: Annotated[Optional[str], typer.Option(help="from a date (2026-01-31), an ISO time, or a span: 7d, 24h")]
    = None,
    out: Annotated[Optional[Path], typer.Option(help="also write the summary as JSON")] = None,
) -> None:
    """Summarise what the service told clinicians: answers per day, share flagged, decision mix.

    Example: proctovision audit /var/log/proctovision/audit.log --since 7d
    """
    from proctovision import fileio
    from proctovision.serving.audit import parse_since, read_entries, summarise

    summary = summarise(read_entries(log), parse_since(since))
    decisions = sorted({name for day in summary["days"].values() for name in day["decisions"]})
    table = Table(title=f"audit: {log}" + (f" since {since}" if since else ""))
    for column in ("day", "answers", "flagged", "out of distribution", *decisions):
        table.add_column(column, justify="right")
    for name, day in summary["days"].items():
        table.add_row(name, str(day["answers"]), f"{day['share_flagged']:.1%}", str(day["out_of_distribution"]),
                      *(str(day["decisions"].get(decision, 0)) for decision in decisions))
    console.print(table)
    share = "-" if summary["share_flagged"] is None else f"{summary['share_flagged']:.1%}"
    console.print(f"{summary['answers']} answer(s); {share} flagged (out of distribution or poor quality); "
                  f"decisions: {summary['decisions']}")
    if summary["malformed_lines"]:
        error_console.print(f"[yellow]{len(summary['malformed_lines'])} line(s) not readable, first at "
                            f"{summary['malformed_lines'][0]}[/]")
    if out:
        fileio.write_json(out, summary)


# --- performance commands ---
@app.command()
def bench(
    backbones: Annotated[str, typer.Option(help="comma-separated registry or timm names")] = "resnet18,resnet34",
    batch_size: int = 16,
    image_size: Annotated[Optional[int], typer.Option(help="default: each backbone's input size")] = None,
    onnx: Annotated[bool, typer.Option(help="also time ONNX Runtime")] = True,
    end_to_end: Annotated[bool, typer.Option(help="also time decoding and files on disk to probabilities, "
                                             "on generated full-size 1280x1024 JPEG frames")] = True,
    allocator: Annotated[bool, typer.Option(help="show the allocator tuning's gain on the first backbone")] = True,
    int8: Annotated[bool, typer.Option(help="also FP32 vs INT8 ONNX Runtime images/s, with this CPU's flags")] = False,
    out: Annotated[Optional[Path], typer.Option(help="also write the figures as JSON")] = None,
) -> None:
    """Images/s per backbone in PyTorch eager and ONNX Runtime, against this CPU's matmul GFLOP/s.

    Example: proctovision bench --backbones resnet34,densenet121 --batch-size 16
             proctovision bench --backbones resnet34 --int8 --no-end-to-end --no-allocator
    """
    from proctovision import fileio
    from proctovision.benchmarking import allocator_gain, bench_backbone, matmul_gflops

    limit = matmul_gflops()
    console.print(f"float32 matmul 2048x4096x2048 on this CPU: {limit:.0f} GFLOP/s ({torch_threads()} threads)")
    table = Table(title="inference speed")
    for column in ("backbone", "px", "GFLOP/img", "eager img/s", "eager/matmul", "ONNX img/s", "ONNX/matmul",
                   "ONNX/eager", "decode img/s", "files→probs img/s", "e2e/model"):
        table.add_column(column, justify="right")
    results = []
    names = [name.strip() for name in backbones.split(",") if name.strip()]
    with progress_bar("Benchmarking") as update:
        for done, name in enumerate(names):
            update(done, len(names))
            result = bench_backbone(name, batch_size, limit, onnx, end_to_end, image_size)
            results.append(result.to_dict())
            best_model = max(result.eager_images_per_s, result.onnx_images_per_s or 0)
            table.add_row(
                result.backbone, str(result.input_size), f"{result.gflops_per_image:.2f}",
                f"{result.eager_images_per_s:.1f}", f"{result.eager_fraction:.2f}x",
                _fmt(result.onnx_images_per_s, "{:.1f}"), _fmt(result.onnx_fraction, "{:.2f}x"),
                _fmt(result.onnx_images_per_s and result.onnx_images_per_s / result.eager_images_per_s, "{:.2f}x"),
                _fmt(result.decode_images_per_s, "{:.1f}"), _fmt(result.end_to_end_images_per_s, "{:.1f}"),
                _fmt(result.end_to_end_images_per_s and result.end_to_end_images_per_s / best_model, "{:.2f}"),
            )
        update(len(names), len(names))
    console.print(table)
    if allocator and names:
        plain, tuned = allocator_gain(names[0], batch_size, image_size)
        console.print(f"allocator tuning on {names[0]} eager: {plain:.1f} → {tuned:.1f} img/s ({tuned / plain:.2f}x)")
    quantized = int8_table(names, batch_size, image_size) if int8 else []
    if out:
        fileio.write_json(out, {"matmul_gflops": limit, "results": results, "int8": quantized})


def int8_table(names: list[str], batch_size: int, image_size: int | None) -> list[dict]:
    from proctovision.benchmarking import cpu_flags, int8_speed

    flags = cpu_flags()
    console.print("CPU flags: " + (", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items())
                                   or "unknown (no /proc/cpuinfo)"))
    table = Table(title=f"ONNX Runtime FP32 vs INT8 (static QDQ, per-channel), batch {batch_size}")
    for column in ("backbone", "px", "FP32 img/s", "INT8 img/s", "INT8/FP32"):
        table.add_column(column, justify="right")
    rows = []
    with console.status("Quantising and timing"):
        for name in names:
            row = int8_speed(name, batch_size, image_size)
            rows.append(row)
            table.add_row(row["backbone"], str(row["input_size"]), f"{row['fp32_images_per_s']:.1f}",
                          f"{row['int8_images_per_s']:.1f}", f"{row['speedup']:.2f}x")
    console.print(table)
    return rows


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def main() -> None:
    from proctovision.perf import tune_allocator

    tune_allocator()
    try:
        app()
    except user_errors() as error:
        error_console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(getattr(error, "exit_code", 1))
    except KeyboardInterrupt:
        error_console.print("[bold red]interrupted[/]")
        sys.exit(130)
