"""Training: one run from flags or a YAML config."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.common import (
    AugmentationOption,
    BackboneOption,
    BatchSizeOption,
    ConfigOption,
    EpochsOption,
    ImageSizeOption,
    LearningRateOption,
    ModeOption,
    SeedOption,
    TaskOption,
    TrackingUriOption,
    TrackOption,
    WeightsOption,
    console,
    fail,
    log_run,
    parse_devices,
    run_config_from,
    run_overrides,
    tracking,
)

app = typer.Typer()


@app.command()
def train(
    split_csv: Annotated[Optional[Path], typer.Argument(metavar="SPLIT", help="split.csv from `split`")] = None,
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
    fold: Annotated[Optional[int], typer.Option(help="k-fold split files: fold held out")] = None,
    accelerator: Optional[str] = None,
    devices: Optional[str] = None,
    num_nodes: Optional[int] = None,
    strategy: Optional[str] = None,
    precision: Annotated[Optional[str], typer.Option(help="32 | 16-mixed | bf16-mixed (default: 16-mixed on GPU, "
                                                     "32 on CPU)")] = None,
    out: Optional[Path] = None,
    resume: Annotated[bool, typer.Option(help="continue from checkpoints/last.ckpt")] = False,
    track: TrackOption = True,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Train a backbone in frozen, finetune or scratch mode.

    Example: proctovision train split.csv --task hemorrhoid --backbone resnet18 --mode finetune --epochs 10 --out runs/r18
    """
    flags = dict(locals())
    from proctovision.workflows.training import train as train_run

    overrides = run_overrides(flags, **{
        "data.split": str(split_csv) if split_csv else None, "data.fold": fold, "trainer.accelerator": accelerator,
        "trainer.devices": parse_devices(devices), "trainer.num_nodes": num_nodes, "trainer.strategy": strategy,
        "trainer.precision": precision, "out": str(out) if out else None,
    })
    if config is None and split_csv is None:
        fail("give a split file (proctovision train split.csv ...) or --config run.yaml")
    run_config = run_config_from(config, overrides)
    tracked = tracking(Path(run_config.out), track, tracking_uri)
    logger = None
    if tracked is not None:
        from proctovision.workflows.tracking import training_logger

        logger = training_logger(tracked, Path(run_config.out))
    paths = train_run(run_config, resume=resume, logger=logger)
    log_run(tracked, paths.root)
    console.print(f"run: {paths.root}\ncheckpoints: {paths.checkpoints}\nhistory: {paths.history}")
