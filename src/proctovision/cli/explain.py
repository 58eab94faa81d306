"""Explanation and reporting: Grad-CAM maps and the HTML report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.common import console, error_console, fail, progress_bar

app = typer.Typer()


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
    from proctovision.artefacts.runs import split_rows
    from proctovision.inference.predictor import TorchPredictor
    from proctovision.reporting.figures import cases_grid
    from proctovision.workflows.explain import explain_frame, frame_of_paths

    predictor = TorchPredictor(run)
    if split:
        frame = split_rows(predictor.run, split)
    elif paths:
        frame, errors = frame_of_paths(paths)
        for path, reason in errors:
            error_console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
        if frame.empty:
            fail("no readable image to explain")
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


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="run folders, or crossval folders")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    comparison: Annotated[Optional[Path], typer.Option(help="a folder written by `compare`, to include")] = None,
    cams: Annotated[bool, typer.Option(help="compute a Grad-CAM gallery of right and wrong cases")] = True,
    lang: Annotated[Optional[str], typer.Option(
        help="en or zh-CN; default: $PROCTOVISION_LANGUAGE, else `language:` in the settings file, else en")] = None,
    plan: Annotated[Optional[Path], typer.Option(help="a `plan ... --json` file: adds the Sample size paragraph")]
    = None,
) -> None:
    """One self-contained HTML report: data, QC, config, curves, metrics with CIs, Grad-CAM, CLAIM checklist.

    Example: proctovision report runs/convmixer runs/effnet --comparison comparison/ --lang zh-CN --out report.html
             proctovision report cv/r18 --out cv_report.html      # a crossval folder: its cross-validation section
    """
    from proctovision.core import i18n
    from proctovision.reporting.report import build_report

    try:
        language = i18n.resolve(lang)
    except i18n.LanguageError as error:
        fail(str(error))
    crossvals = [run for run in runs if (run / "cv_metrics.json").is_file()]
    with console.status("Writing the report"):
        path = build_report([run for run in runs if run not in crossvals], out, comparison=comparison, cams=cams,
                            lang=language, crossval=crossvals, plan=plan)
    console.print(f"report: {path}")
