"""What every command shares: the one-line failure, options declared once, the run-config, tracking and
executor helpers, the metrics table."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.core.console import console, error_console, progress_bar  # noqa: F401 - shared by the command modules


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, shown as one line instead of a traceback (kept free of torch imports)."""
    from proctovision.core.errors import UserError

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
EpochsOption = Annotated[Optional[int], typer.Option(help="training epochs")]
ImageSizeOption = Annotated[Optional[int], typer.Option(help="model input size in pixels (default: the backbone's)")]
BatchSizeOption = Annotated[Optional[int], typer.Option(help="images per training step")]
LearningRateOption = Annotated[Optional[float], typer.Option(help="learning rate")]
ResamplesOption = Annotated[int, typer.Option(help="patient bootstrap resamples for the 95% CIs")]
SeedOption = Annotated[Optional[int], typer.Option(help="random seed")]
RUN_FLAGS = {"task": "task", "image_size": "data.image_size", "batch_size": "data.batch_size",
             "augmentation": "data.augmentation", "backbone": "model.backbone", "mode": "model.mode",
             "weights": "model.weights", "lr": "optim.lr", "epochs": "trainer.epochs", "seed": "trainer.seed"}
TrackOption = Annotated[bool, typer.Option(envvar="PROCTOVISION_TRACK", help="log to MLflow")]
TrackingUriOption = Annotated[Optional[str], typer.Option(help="MLflow tracking URI or SQLite file (default: "
                                                          "mlflow.db beside the run or output folder)")]
ExecutorOption = Annotated[str, typer.Option(help="local | slurm (one job per grid run or fold through submitit) | "
                                             "submitit-local")]
SlurmPartitionOption = Annotated[Optional[str], typer.Option(help="with --executor slurm")]
SlurmGpusOption = Annotated[int, typer.Option(help="with --executor slurm: GPUs per job")]
SlurmTimeOption = Annotated[int, typer.Option(help="with --executor slurm: minutes per job")]
ModelArgument = Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL", help="run folder, or folder from `export`")]


def run_overrides(flags: dict, **own: object) -> dict:
    """Config keys of the run flags ``train`` and ``crossval`` share (from the command's arguments), and its own."""
    return {**{key: flags[name] for name, key in RUN_FLAGS.items()}, **own}


def run_config_from(config: Path | None, overrides: dict) -> object:
    """The run config of ``train`` and ``crossval``: the YAML with the flags given on top, or the flags alone."""
    from proctovision.core.config import apply_overrides, load_config, validate_config

    given = {key: value for key, value in overrides.items() if value is not None}
    return load_config(config, given) if config is not None else validate_config(apply_overrides({}, given), "flags")


def tracking(output: Path, track: bool, uri: str | None) -> object | None:
    from proctovision.workflows.tracking import tracking_for

    return tracking_for(output, uri, track)


def log_run(tracking: object | None, run_dir: Path) -> None:
    if tracking is not None:
        from proctovision.workflows.tracking import log_run as record

        record(tracking, run_dir)
        console.print(f"tracked: {tracking.uri}")


def parse_devices(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def job_executor(kind: str, out: Path, partition: str | None, gpus: int, minutes: int) -> object | None:
    from proctovision.workflows.executor import ExecutorSettings, make_executor

    return make_executor(ExecutorSettings(kind=kind, folder=out / "jobs", partition=partition, gpus_per_node=gpus,
                                          time_min=minutes))


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


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
