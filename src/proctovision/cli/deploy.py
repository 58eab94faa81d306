"""Deployment: ONNX export, the REST service, the PACS watcher and the audit summary."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli.common import ModelArgument, console, error_console, fail

app = typer.Typer()


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
    from proctovision.core import i18n
    from proctovision.deploy.export import export_run

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
    model: ModelArgument,
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
    auth: Annotated[Optional[Path], typer.Option(metavar="DIR", help="sign-in with the accounts of this reading "
                                                 "project (`reading init`, `reading user`) for the page and API")]
    = None,
    graceful_timeout: Annotated[float, typer.Option(help="on SIGTERM/Ctrl-C, seconds given to requests in flight "
                                                    "before the server stops anyway")] = 10.0,
    monitor: Annotated[Optional[Path], typer.Option(metavar="DIR", help="record every answer in this monitoring "
                                                    "folder; adds GET /metrics and the /monitor page")] = None,
    keep_images: Annotated[bool, typer.Option(help="with --monitor: keep each answered image's content area (PNG, "
                                              "no header) under its prediction id, to train the next version")]
    = False,
    retention_days: Annotated[Optional[int], typer.Option(help="with --keep-images: delete kept images older than "
                                                          "this")] = None,
) -> None:
    """Serve a REST API (POST /predict, GET /health, GET /model, /docs) and a web page for clinicians.

    Example: proctovision serve deploy/r18 --port 8000   (then open http://127.0.0.1:8000/)
             proctovision serve deploy/r18 --auth accounts/   (sign in with the reading project's accounts)
    """
    import uvicorn

    from proctovision.serving.app import create_app, is_loopback

    if not is_loopback(host) and not token:
        fail(f"binding to {host} exposes the service beyond this machine: give --token (or PROCTOVISION_API_TOKEN)")
    if not Path(model).exists():
        fail(f"{model}: no such run or model folder")
    if workers < 1 or batch_images < 1 or batch_wait_ms < 0:
        fail("--workers and --batch-images must be at least 1, --batch-wait-ms at least 0")
    if monitor is not None and workers > 1:
        fail("--monitor serves one worker process (its metrics live in it): leave out --workers")
    if (keep_images or retention_days is not None) and (monitor is None or not keep_images or not retention_days):
        fail("--keep-images needs --monitor DIR and --retention-days N (at least 1), and --retention-days needs "
             "--keep-images")
    accounts = None
    if auth is not None:
        if workers > 1:
            fail("--auth serves one worker process: leave out --workers")
        from proctovision.reading.accounts import ProjectAccounts
        from proctovision.reading.db import ReadingError
        from proctovision.reading.project import open_project

        try:
            accounts = ProjectAccounts(open_project(auth))
        except ReadingError as error:
            fail(str(error))
    settings = {"source": str(model), "token": token, "max_upload_bytes": max_upload_mb * 1024 * 1024,
                "batch_images": batch_images, "batch_wait_ms": batch_wait_ms,
                "audit_log": str(audit_log) if audit_log else None, **({"monitor": str(monitor)} if monitor else {}),
                **({"keep_images_days": retention_days} if keep_images else {})}
    console.print(f"serving {model} on http://{host}:{port}/ (API docs at /docs); {workers} worker(s), batches of "
                  f"up to {batch_images} image(s) or {batch_wait_ms:g} ms" + (f"; audit log {audit_log}" if audit_log
                                                                              else ""))
    if workers == 1:
        if accounts is not None:
            console.print(f"sign-in required: accounts of the reading project {auth}", markup=False)
        uvicorn.run(create_app(**settings, auth=accounts), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=graceful_timeout)
        return
    import json
    import os

    from proctovision.serving.app import SETTINGS_VARIABLE

    os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    uvicorn.run("proctovision.serving.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level="warning", timeout_graceful_shutdown=graceful_timeout)


@app.command()
def watch(
    model: ModelArgument,
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
    monitor: Annotated[Optional[Path], typer.Option(metavar="DIR", help="record every answer in this monitoring "
                                                    "folder; the SR carries each prediction id")] = None,
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
    watcher = recorder = None
    if monitor is not None:
        from proctovision.monitoring.folder import open_folder

        watcher = open_folder(monitor)
        watcher.check_model_folder(model)
        recorder = watcher.recorder("watch", watcher.model_sha256)
    try:
        pushed = watch_pacs(dicomweb, model, state, parse_query(query), log, interval_s=interval, since=since,
                            stable_s=stable, max_polls=1 if once else None, recorder=recorder)
    finally:
        if watcher is not None:
            recorder.close()
            watcher.close()
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
    from proctovision.core import fileio
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
