"""Experiments: a study's grid (reproduce) and k-fold cross-validation."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli import common
from proctovision.cli.common import (
    AugmentationOption,
    BackboneOption,
    BatchSizeOption,
    ConfigOption,
    EpochsOption,
    ExecutorOption,
    ImageSizeOption,
    LearningRateOption,
    ModeOption,
    ResamplesOption,
    SeedOption,
    SlurmGpusOption,
    SlurmPartitionOption,
    SlurmTimeOption,
    TaskOption,
    TrackingUriOption,
    TrackOption,
    WeightsOption,
    console,
    fail,
    print_metrics,
    run_config_from,
    run_overrides,
    tracking,
)

app = typer.Typer()


@app.command()
def reproduce(
    study: Annotated[str, typer.Argument(help="hemorrhoid | fistula, or a grid YAML copied from configs/")],
    data: Annotated[Path, typer.Option(help="folder holding the grid's sources (e.g. hemorrhoid.csv, ldrf.csv)")],
    out: Annotated[Optional[Path], typer.Option(help="default: reproduce_<study>")] = None,
    readers: Annotated[Optional[Path], typer.Option(help="readers.csv (optional `task` column)")] = None,
    quick: Annotated[bool, typer.Option(help="tiny settings: checks the whole grid runs, in minutes")] = False,
    resamples: int = 1000,
    executor: ExecutorOption = "local",
    slurm_partition: SlurmPartitionOption = None,
    slurm_gpus: SlurmGpusOption = 0,
    slurm_time: SlurmTimeOption = 240,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Run a study's whole experiment grid, resumably, and write its tables, figures and report.

    Example: proctovision reproduce hemorrhoid --data data/ --readers readers.csv --out repro_hemorrhoid
             proctovision reproduce hemorrhoid --data data/ --executor slurm --slurm-gpus 1 --out repro_hemorrhoid
    """
    from proctovision.workflows.grid import load_grid
    from proctovision.workflows.reproduce import reproduce as run_grid

    grid = load_grid(study)
    target = out or Path(f"reproduce_{grid.name}")
    jobs = common.executor(executor, target, slurm_partition, slurm_gpus, slurm_time)
    result = run_grid(grid, data, target, quick=quick, readers=readers, resamples=resamples, executor=jobs,
                      tracking=tracking(target, track, tracking_uri))
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
    epochs: EpochsOption = None,
    image_size: ImageSizeOption = None,
    batch_size: BatchSizeOption = None,
    lr: LearningRateOption = None,
    seed: SeedOption = None,
    augmentation: AugmentationOption = None,
    val: Annotated[float, typer.Option(help="share of the other folds' patients used for validation")] = 0.2,
    repeats: Annotated[int, typer.Option(help="repeat the k-fold split with seeds seed+1, seed+2, ...")] = 1,
    threshold: Annotated[str, typer.Option(help="binary: youden | sensitivity:X | specificity:X | a number; "
                                           "fitted on each fold's validation")] = "youden",
    temperature_scaling: Annotated[bool, typer.Option(help="calibrate each fold on its validation")] = False,
    resamples: ResamplesOption = 1000,
    executor: ExecutorOption = "local",
    slurm_partition: SlurmPartitionOption = None,
    slurm_gpus: SlurmGpusOption = 0,
    slurm_time: SlurmTimeOption = 240,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """k-fold cross-validation: a run per fold (tested on it), out-of-fold predictions, cv_metrics.json.

    Fold k is the test set; a stratified patient slice of the other folds validates (threshold, checkpoint);
    the rest trains. Resumable: finished folds are skipped.

    Example: proctovision split manifest.csv --folds 5 --out folds.csv
             proctovision crossval folds.csv --task hemorrhoid --backbone resnet18 --mode finetune --out cv/r18
    """
    flags = dict(locals())
    from proctovision.workflows.crossval import CrossvalSettings
    from proctovision.workflows.crossval import crossval as run_crossval

    overrides = run_overrides(flags, **{"data.split": str(folds_csv), "out": str(out)})
    base = run_config_from(config, overrides)
    if not 0 < val < 1:
        fail(f"--val must be between 0 and 1 (got {val})")
    settings = CrossvalSettings(val=val, repeats=repeats, seed=base.trainer.seed, threshold=threshold,
                                temperature_scaling=temperature_scaling, resamples=resamples)
    result = run_crossval(folds_csv, base, out, settings, executor=common.executor(executor, out, slurm_partition,
                                                                              slurm_gpus, slurm_time),
                          tracking=tracking(out, track, tracking_uri), announce=console.print)
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
