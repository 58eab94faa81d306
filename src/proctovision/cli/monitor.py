"""`proctovision monitor ...`: after go-live, one monitoring folder per deployed model (thin: parse, call the
library, print)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.monitor_lines import print_change_status
from proctovision.core.console import console, error_console

monitor_app = typer.Typer(
    name="monitor", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="After go-live: drift alarms, performance on confirmed cases, Prometheus metrics, a surveillance report.",
)
FolderArgument = Annotated[Path, typer.Argument(metavar="DIR", help="the monitoring folder")]


@monitor_app.command("init")
def init(
    folder: FolderArgument,
    model: Annotated[Path, typer.Option(metavar="RUN_OR_EXPORT", help="the deployed run or export folder")],
    db: Annotated[Optional[str], typer.Option(help="postgresql://... (default: SQLite inside DIR)")] = None,
    alarms_per_10000: Annotated[float, typer.Option(help="false-alarm budget per 10,000 in-distribution answers")]
    = 1.0,
    window: Annotated[int, typer.Option(help="answers per window of the class-mix and probability tests")] = 100,
) -> None:
    """Make a monitoring folder for one deployed model; its reference is the model's own validation split.

    Example: proctovision monitor init monitoring/ --model deploy/lite0
    """
    from proctovision.monitoring.folder import init_folder

    with console.status("Building the reference profile and the alarm limits"):
        monitor = init_folder(folder, model, db, alarms_per_10000, window)
    with monitor:
        console.print(f"monitoring folder: {folder}\nmodel: {monitor.model_sha256[:12]} "
                      f"({monitor.reference['n']} validation answers as reference)\nfalse alarms designed for "
                      f"{alarms_per_10000:g} per 10,000 in-distribution answers")


@monitor_app.command("outcomes")
def outcomes(
    folder: FolderArgument,
    csv: Annotated[Path, typer.Argument(metavar="OUTCOMES_CSV", help="prediction_id,label[,source]")],
) -> None:
    """Add confirmed labels (source: pathology, report or clinician); bad rows are listed and skipped.

    Example: proctovision monitor outcomes monitoring/ pathology_2026-12.csv
    """
    from proctovision.monitoring.folder import open_folder
    from proctovision.monitoring.outcomes import import_outcomes

    with open_folder(folder) as monitor:
        result = import_outcomes(monitor, csv)
    for row, ident, reason in result["skipped"]:
        error_console.print(f"[yellow]skipped[/] {csv} row {row} ({ident or 'no id'}): {reason}", soft_wrap=True)
    console.print(f"{result['added']} added, {result['changed']} changed, {result['unchanged']} already there, "
                  f"{len(result['skipped'])} skipped")


@monitor_app.command("ack")
def ack(
    folder: FolderArgument,
    alarm: Annotated[int, typer.Argument(metavar="ALARM", help="the alarm's number (see `monitor status`)")],
    note: Annotated[str, typer.Option(help="what was found and done")],
    user: Annotated[Optional[str], typer.Option(help="who acknowledges")] = None,
) -> None:
    """Acknowledge an alarm, with a note; its chart starts again.

    Example: proctovision monitor ack monitoring/ 3 --note "new processor; white balance fixed"
    """
    from proctovision.monitoring.folder import open_folder

    with open_folder(folder) as monitor:
        closed = monitor.acknowledge(alarm, note, user)
    console.print(f"alarm {closed['id']} ({closed['signal']}) acknowledged")


@monitor_app.command("status")
def status(
    folder: FolderArgument,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the status as JSON here")] = None,
) -> None:
    """Answers, alarms, the estimated and the observed performance, outcome counts.

    Example: proctovision monitor status monitoring/ --json status.json
    """
    from proctovision.core import fileio
    from proctovision.monitoring.folder import open_folder
    from proctovision.monitoring.summary import status as build_status

    with open_folder(folder) as monitor:
        document = build_status(monitor)
    if json_out is not None:
        fileio.write_json(json_out, document)
    print_status(document)


@monitor_app.command("serve")
def serve(
    folder: FolderArgument,
    host: str = "127.0.0.1",
    port: int = 9108,
) -> None:
    """GET /metrics (Prometheus) and GET /health for a folder that `watch` or `video` record into.

    Example: proctovision monitor serve monitoring/ --port 9108   (scrape http://127.0.0.1:9108/metrics)
    """
    import uvicorn

    from proctovision.serving.monitoring import create_monitor_app

    app = create_monitor_app(folder)
    console.print(f"metrics of {folder} on http://{host}:{port}/metrics")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _metric(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    low, high = entry["ci"]
    return f"{entry['value']:.3f} ({low:.3f}-{high:.3f})"


def print_status(document: dict) -> None:
    console.print(f"{document['predictions']} answers from {document['period']['first'] or '-'} to "
                  f"{document['period']['last'] or '-'}")
    for alarm in document["alarms"]:
        console.print(f"[bold red]alarm {alarm['id']}[/] {alarm['signal']}: since {alarm['first_at']}, after "
                      f"{alarm['after_predictions']} answers")
    if not document["alarms"]:
        console.print("no open alarm")
    guess = document["estimated"]
    if guess.get("accuracy") is not None:
        console.print(f"estimated accuracy (CBPE) {guess['accuracy']:.3f}; assumes {guess['assumptions']}")
    seen = document["confirmed"]
    console.print(f"confirmed cases: {seen['n']}" + (
        f"; accuracy {_metric(seen.get('accuracy'))}, sensitivity {_metric(seen.get('sensitivity'))}, "
        f"specificity {_metric(seen.get('specificity'))} (Wilson 95% CI)" if seen["n"] else ""))
    print_change_status(document)


def parse_day(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} {value!r}: give a date as YYYY-MM-DD") from None


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2, default=str)


@monitor_app.command("report")
def report(
    folder: FolderArgument,
    out: Annotated[Path, typer.Option(help="folder for report.html, report.pdf, figures/ and tables/")],
    since: Annotated[Optional[str], typer.Option(help="from this day (YYYY-MM-DD), inclusive")] = None,
    until: Annotated[Optional[str], typer.Option(help="up to this day (YYYY-MM-DD), exclusive")] = None,
    lang: Annotated[Optional[str], typer.Option(help="en or zh-CN")] = None,
) -> None:
    """The periodic post-market surveillance report: HTML, PDF and CSV tables, with a methods paragraph.

    Example: proctovision monitor report monitoring/ --out psur-2026/ --since 2026-01-01 --until 2027-01-01
    """
    from proctovision.monitoring.folder import open_folder
    from proctovision.monitoring.report import write_report

    with open_folder(folder) as monitor, console.status("Writing the report"):
        written = write_report(monitor, out, parse_day(since, "--since"), parse_day(until, "--until"), lang)
    console.print(f"report: {written['html']}\n        {written['pdf']}")
