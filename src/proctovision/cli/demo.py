"""The embedded demo: synthetic data through the whole pipeline, offline."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.common import console, print_metrics

app = typer.Typer()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's data and runs")] = Path("demo_output"),
    task: Annotated[str, typer.Option(help="hemorrhoid | ldrf | fistula (MR DICOM)")] = "hemorrhoid",
    epochs: int = 30,
    patients: int = 60,
    images_per_patient: int = 4,
    backbone: str = "efficientnet_lite0",
    after_go_live: Annotated[Optional[bool], typer.Option(
        "--after-go-live/--no-after-go-live", help="then the loop after go-live on the demo's model: monitoring, a "
        "shifted stream and its alarm, outcomes, recalibrate and accept, two candidates that must fail, approve, "
        "status, report (default: on for hemorrhoid, the task it covers)")] = None,
) -> None:
    """Generate synthetic data, then ingest, split, train, evaluate, compare, report: offline, a few minutes on a
    CPU. It also leaves a reader study on the test split (two reader accounts and an admin, passwords drawn at
    random and printed) to open with `proctovision reading serve DIR/reading`. Then, after go-live, the loop a
    clinic runs on the deployed model, in DIR/after_go_live (skip it with --no-after-go-live).

    Example: proctovision demo --out demo_output
    """
    from proctovision.demo.pipeline import run_demo
    from proctovision.demo.reading_study import announce

    summary = run_demo(out, task=task, epochs=epochs, patients=patients, images_per_patient=images_per_patient,
                       backbone=backbone, after_go_live=after_go_live)
    print_metrics(summary["test"])
    console.print("[bold]The demo data are synthetic: these figures say the pipeline works, nothing clinical.[/]")
    for name, path in summary["paths"].items():
        console.print(f"{name}: {path}")
    announce(summary["reading"])
