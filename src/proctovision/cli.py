"""The `proctovision` command line: thin wrappers that parse, call the library, and print."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.console import console, error_console, progress_bar

app = typer.Typer(
    name="proctovision",
    help="Build, validate, explain and deploy classifiers for anorectal imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, shown as one line instead of a traceback (kept free of torch imports)."""
    from proctovision.errors import UserError

    return (UserError, FileNotFoundError, PermissionError, IsADirectoryError)


def fail(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="class folders, or a CSV with path,label,patient_id")],
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
) -> None:
    """Build a manifest and a quality report from class folders, a CSV, or a DICOM folder.

    Example: proctovision ingest data/endoscopy --task hemorrhoid --out data/manifest.csv
             proctovision ingest archive/ --task fistula --labels labels.csv --window pelvis --out mri/manifest.csv
    """
    from proctovision.data import ingest as ingest_lib
    from proctovision.data.dicom import parse_window, salt_for
    from proctovision.tasks import load_task

    task_def = load_task(task)
    if out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    options = ingest_lib.DicomOptions(window=parse_window(window), salt=salt_for(out.parent, salt),
                                      export_png=export_png)
    with progress_bar("Reading images") as update:
        result = ingest_lib.ingest(source, task_def, patient_regex=patient_regex, progress=update, labels=labels,
                                   dicom_options=options)
    report = ingest_lib.write_outputs(result, task_def, source, out)
    print_ingest_summary(report, out)
    if report["n_images"] == 0:
        fail(f"no usable image found in {source}; see {out.parent / 'qc.md'}")


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
    config: Annotated[Optional[Path], typer.Option(help="YAML run config; flags given override it")] = None,
    task: Annotated[Optional[str], typer.Option(help="task name or task YAML")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="registry name or any timm architecture")] = None,
    mode: Annotated[Optional[str], typer.Option(help="frozen | finetune | scratch")] = None,
    weights: Annotated[Optional[str], typer.Option(help="imagenet | none | path to a weights file")] = None,
    epochs: Optional[int] = None,
    image_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    augmentation: Annotated[Optional[str], typer.Option(help="none | basic | colour")] = None,
    fold: Annotated[Optional[int], typer.Option(help="k-fold split files: fold held out")] = None,
    accelerator: Optional[str] = None,
    devices: Optional[str] = None,
    num_nodes: Optional[int] = None,
    strategy: Optional[str] = None,
    out: Optional[Path] = None,
    resume: Annotated[bool, typer.Option(help="continue from checkpoints/last.ckpt")] = False,
) -> None:
    """Train a backbone in frozen, finetune or scratch mode.

    Example: proctovision train split.csv --task hemorrhoid --backbone resnet18 --mode finetune --epochs 10 --out runs/r18
    """
    from proctovision.config import RunConfig, load_config
    from proctovision.training import train as train_run

    overrides = {
        "task": task, "data.split": str(split_csv) if split_csv else None, "data.image_size": image_size,
        "data.batch_size": batch_size, "data.augmentation": augmentation, "data.fold": fold,
        "model.backbone": backbone, "model.mode": mode, "model.weights": weights, "optim.lr": lr,
        "trainer.epochs": epochs, "trainer.seed": seed, "trainer.accelerator": accelerator,
        "trainer.devices": _devices(devices), "trainer.num_nodes": num_nodes, "trainer.strategy": strategy,
        "out": str(out) if out else None,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if config is not None:
        run_config = load_config(config, overrides)
    else:
        if split_csv is None:
            fail("give a split file (proctovision train split.csv ...) or --config run.yaml")
        run_config = RunConfig.model_validate(_nest(overrides))
    paths = train_run(run_config, resume=resume)
    console.print(f"run: {paths.root}\ncheckpoints: {paths.checkpoints}\nhistory: {paths.history}")


def _devices(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    resamples: Annotated[int, typer.Option(help="patient bootstrap resamples for the 95% CIs")] = 1000,
    seed: int = 0,
    batch_size: int = 32,
    threshold: Annotated[
        str, typer.Option(help="binary tasks: youden | sensitivity:0.9 | specificity:0.95 | a number; fitted on val")
    ] = "youden",
    temperature_scaling: Annotated[bool, typer.Option(help="calibrate with a temperature fitted on val")] = False,
) -> None:
    """Predict a split and write metrics.json and predictions.csv (metrics with 95% CIs).

    Example: proctovision evaluate runs/r18 --split test
    """
    from proctovision.evaluation.evaluate import evaluate_run

    with progress_bar(f"Reading {split} split") as update:
        entry = evaluate_run(run, split, n_resamples=resamples, seed=seed, batch_size=batch_size, progress=update,
                             threshold=threshold, temperature_scaling=temperature_scaling)
    print_metrics(entry)
    console.print(f"metrics: {run / 'metrics.json'}\npredictions: {run / 'predictions.csv'}")


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
        console.print(f"threshold {entry['threshold']['value']:.3f} ({entry['threshold']['rule']}, "
                      f"chosen on {entry['threshold']['chosen_on']})")
    console.print(
        f"reading time: {entry['reading_time_s']:.2f} s for {entry['n_images']} images "
        f"({entry['images_per_s']:.1f} images/s)"
    )


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="evaluated run folders")],
    readers: Annotated[Optional[Path], typer.Option(help="CSV: path, reader, label[, reading_time_s]")] = None,
    split: str = "test",
    out: Annotated[Path, typer.Option(help="folder for the table, the tests and the figures")] = Path("comparison"),
    resamples: int = 1000,
    seed: int = 0,
) -> None:
    """Models and human readers side by side: metrics with CIs, DeLong, McNemar and bootstrap differences.

    Example: proctovision compare runs/convmixer runs/effnet --readers readers.csv --out comparison/
    """
    from proctovision.evaluation.compare import compare as compare_lib

    result = compare_lib(list(runs), out, readers=readers, split=split, n_resamples=resamples, seed=seed)
    table = Table(title=f"{split}: {result['n_images']} images, {result['n_patients']} patients")
    for column in ("participant", "kind", "accuracy", "recall", "precision", "f1", "reading time (s)"):
        table.add_column(column)
    for row in result["table"]:
        table.add_row(row["participant"], row["kind"], *(f"{row[name]:.3f}" for name in ("accuracy", "recall",
                      "precision", "f1")), f"{row['reading_time_s']:.1f}" if row["reading_time_s"] else "-")
    console.print(table)
    console.print(f"table: {out / 'comparison.md'}\ntests: {out / 'tests.csv'}\nfigures: {out / 'figures'}")


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
    from proctovision.evaluation.evaluate import load_module, split_rows
    from proctovision.explain import cases_grid, explain_frame
    from proctovision.runs import read_run

    info = read_run(run)
    if split:
        frame = split_rows(info, split)
    elif paths:
        frame = readable_frame(paths, info.resolved.get("window"))
    else:
        fail("give images or folders to explain, or --split val|test")
    with progress_bar(f"{method} maps") as update:
        table = explain_frame(load_module(info), info, frame, out, method, target, batch_size, update, faithfulness,
                              layer)
    grid = cases_grid(table, out, info.task.classes, out / "grid.png")
    console.print(f"{len(table)} map(s) written to {out} (index: {out / 'cams.csv'})")
    if grid:
        console.print(f"right and wrong cases per class: {grid}")
    if faithfulness:
        console.print(f"ROAD faithfulness ({method}): mean {table['road'].mean():.4f} (higher is more faithful)")


def readable_frame(paths: list[Path], window: object) -> "pd.DataFrame":  # noqa: F821
    from proctovision.data.images import ImageReadError, read_image
    from proctovision.explain import frame_from_paths
    from proctovision.inference.predictor import expand_paths

    readable = []
    for path in expand_paths(paths):
        try:
            read_image(path, window=window)
            readable.append(path)
        except ImageReadError as error:
            error_console.print(f"[yellow]skipped[/] {path}: {error.reason}", soft_wrap=True)
    if not readable:
        fail("no readable image to explain")
    return frame_from_paths(readable)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="run folders")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    comparison: Annotated[Optional[Path], typer.Option(help="a folder written by `compare`, to include")] = None,
    cams: Annotated[bool, typer.Option(help="compute a Grad-CAM gallery of right and wrong cases")] = True,
) -> None:
    """One self-contained HTML report: data, QC, config, curves, metrics with CIs, Grad-CAM, CLAIM checklist.

    Example: proctovision report runs/convmixer runs/effnet --comparison comparison/ --out report.html
    """
    from proctovision.reporting.report import build_report

    with console.status("Writing the report"):
        path = build_report(list(runs), out, comparison=comparison, cams=cams)
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
) -> None:
    """Run a study's whole experiment grid, resumably, and write its tables, figures and report.

    Example: proctovision reproduce hemorrhoid --data data/ --readers readers.csv --out repro_hemorrhoid
    """
    from proctovision.experiments.grid import load_grid
    from proctovision.experiments.runner import reproduce as run_grid

    grid = load_grid(study)
    target = out or Path(f"reproduce_{grid.name}")
    result = run_grid(grid, data, target, quick=quick, readers=readers, resamples=resamples)
    for task, files in result["tasks"].items():
        console.print(f"{task}: table {files['table']}" + (f", ROC {files['roc']}" if files["roc"] else ""))
    console.print(f"report: {result['report']}")


# --- deployment commands ---
@app.command()
def predict(
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")],
    paths: Annotated[list[Path], typer.Argument(help="image or DICOM files, or folders")],
    out: Annotated[Path, typer.Option(help="predictions .csv or .json")] = Path("predictions.csv"),
    batch_size: int = 16,
    heatmaps: Annotated[Optional[Path], typer.Option(help="also write a Grad-CAM overlay PNG per image here")] = None,
) -> None:
    """Predict class probabilities for files and folders; unreadable files are listed, the rest go on.

    Example: proctovision predict runs/r18 new_images/ --out predictions.csv
    """
    import pandas as pd

    from proctovision import fileio
    from proctovision.inference.predictor import expand_paths, load_predictor

    predictor = load_predictor(model)
    with console.status("Predicting"):
        batch = predictor.predict_files(expand_paths(paths), batch_size=batch_size)
    rows = [
        {"path": item.path, "predicted": item.predicted, "threshold": item.threshold,
         **{f"prob_{name}": value for name, value in item.probabilities.items()}}
        for item in batch.predictions
    ]
    if out.suffix.lower() == ".json":
        errors = [{"path": path, "reason": reason} for path, reason in batch.errors]
        fileio.write_json(out, {"classes": list(predictor.classes), "predictions": rows, "errors": errors})
    else:
        fileio.write_csv(out, pd.DataFrame(rows, columns=["path", "predicted", "threshold"]
                                           + [f"prob_{name}" for name in predictor.classes]))
    for path, reason in batch.errors:
        error_console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
    if heatmaps is not None:
        write_heatmaps(predictor, batch.predictions, heatmaps)
    console.print(f"{len(rows)} image(s) predicted at {batch.images_per_s:.1f} images/s; "
                  f"{len(batch.errors)} skipped\npredictions: {out}")
    if not rows:
        fail("no image could be predicted")


def write_heatmaps(predictor: object, predictions: list, folder: Path) -> None:
    from proctovision import fileio
    from proctovision.data.images import read_image

    window = (predictor.card.get("preprocessing") or {}).get("window")
    for number, item in enumerate(predictions):
        png = predictor.heatmap_png(read_image(item.path, window=window), predictor.classes.index(item.predicted))
        if png is None:
            error_console.print("[yellow]heatmaps need a run folder (PyTorch); an ONNX export has none[/]")
            return
        fileio.write_bytes(folder / f"{number:05d}_{Path(item.path).stem}.png", png)
    console.print(f"heatmaps: {folder}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder from `train`")],
    format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[Path, typer.Option(help="folder for model.onnx and the model card")] = Path("export"),
) -> None:
    """Export to ONNX with a parity check against PyTorch, and write a model card beside it.

    Example: proctovision export runs/r18 --format onnx --out deploy/r18
    """
    from proctovision.serving.export import export_run

    if format != "onnx":
        fail(f"unknown format {format!r}: only onnx is supported")
    check = export_run(run, out)
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
    console.print(f"serving {model} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(create_app(model, token=token, max_upload_bytes=max_upload_mb * 1024 * 1024), host=host, port=port,
                log_level="warning")


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
    out: Annotated[Optional[Path], typer.Option(help="also write the figures as JSON")] = None,
) -> None:
    """Images/s per backbone in PyTorch eager and ONNX Runtime, against this CPU's matmul GFLOP/s.

    Example: proctovision bench --backbones resnet34,densenet121 --batch-size 16
    """
    from proctovision import fileio
    from proctovision.benchmarking import allocator_gain, bench_backbone, matmul_gflops

    limit = matmul_gflops()
    console.print(f"float32 matmul 2048x4096x2048 on this CPU: {limit:.0f} GFLOP/s ({torch_threads()} threads)")
    table = Table(title="inference speed")
    for column in ("backbone", "px", "GFLOP/img", "eager img/s", "eager % peak", "ONNX img/s", "ONNX % peak",
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
                f"{result.eager_images_per_s:.1f}", f"{100 * result.eager_fraction:.0f}%",
                _fmt(result.onnx_images_per_s, "{:.1f}"), _fmt(result.onnx_fraction, "{:.0%}"),
                _fmt(result.onnx_images_per_s and result.onnx_images_per_s / result.eager_images_per_s, "{:.2f}x"),
                _fmt(result.decode_images_per_s, "{:.1f}"), _fmt(result.end_to_end_images_per_s, "{:.1f}"),
                _fmt(result.end_to_end_images_per_s and result.end_to_end_images_per_s / best_model, "{:.2f}"),
            )
        update(len(names), len(names))
    console.print(table)
    if allocator and names:
        plain, tuned = allocator_gain(names[0], batch_size, image_size)
        console.print(f"allocator tuning on {names[0]} eager: {plain:.1f} → {tuned:.1f} img/s ({tuned / plain:.2f}x)")
    if out:
        fileio.write_json(out, {"matmul_gflops": limit, "results": results})


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
        sys.exit(1)
    except KeyboardInterrupt:
        error_console.print("[bold red]interrupted[/]")
        sys.exit(130)
