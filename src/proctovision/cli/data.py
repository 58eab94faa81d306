"""Data commands: ingest (folders, CSV, DICOM, PACS) and split by patient."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli.common import console, error_console, fail, progress_bar

app = typer.Typer()


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
    from proctovision.core.tasks import load_task
    from proctovision.data import ingest as ingest_lib
    from proctovision.data.journal import journal_path
    from proctovision.data.pool import default_workers
    from proctovision.imaging.dicom import parse_window, salt_for

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
        from proctovision.imaging.content_area import mark_content_crop

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
    split_lib.write_lineage(manifest, out, seed, folds, val, test)
    summary = split_lib.split_summary(result, column, tuple(sorted(frame["label"].unique())))
    table = Table(title=f"split by patient ({column})")
    for name in summary.columns:
        table.add_column(str(name))
    for record in summary.itertuples(index=False):
        table.add_row(*(str(value) for value in record))
    console.print(table)
    console.print(f"split: {out}")
