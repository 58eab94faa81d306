"""`proctovision monitor plan|recalibrate|retrain|accept|approve|forget`: the update path under the change-control
plan, added to the monitor group (thin: parse, call the library, print). The approver's password is checked here,
against the reading project's accounts, so monitoring never imports the reading room."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.cli.common import fail
from proctovision.cli.monitor import FolderArgument, monitor_app
from proctovision.core.console import console


@monitor_app.command("plan")
def plan(
    folder: FolderArgument,
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN_YAML", help="the change-control plan")],
) -> None:
    """Register the change-control plan (its sha256 and its locked test set's); an edited plan is a new version.

    Example: proctovision monitor plan monitoring/ change_plan.yaml
    """
    from proctovision.monitoring.change_control import register_plan
    from proctovision.monitoring.folder import open_folder

    with open_folder(folder) as monitor:
        result = register_plan(monitor, plan_file)
    state = "registered as version" if result["new"] else "unchanged: still version"
    console.print(f"plan {plan_file} {state} {result['version']} (sha256 {result['sha256'][:12]})")


@monitor_app.command("recalibrate")
def recalibrate(
    folder: FolderArgument,
    out: Annotated[Path, typer.Option(metavar="NEW", help="folder of the new model version")],
) -> None:
    """Refit the temperature (or the plan's logistic intercept and slope) and the threshold on confirmed cases.

    Example: proctovision monitor recalibrate monitoring/ --out deploy/lite0-r1
    """
    from proctovision.monitoring.change_control import recalibrate_monitor
    from proctovision.monitoring.folder import open_folder

    with open_folder(folder) as monitor:
        record = recalibrate_monitor(monitor, out)
    window = record["lineage"]["window"]
    console.print(f"new version {record['sha256'][:12]} in {out}: {record['lineage']['method']} on "
                  f"{window['n_confirmed']} confirmed cases ({window['from']} to {window['to']}); parent "
                  f"{record['lineage']['parent_sha256'][:12]}")


@monitor_app.command("retrain")
def retrain(
    folder: FolderArgument,
    out: Annotated[Path, typer.Option(metavar="NEW", help="run folder of the new model version")],
    run: Annotated[Optional[Path], typer.Option(help="the parent's run folder, when an export is deployed")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the parent's epochs")] = None,
    seed: Annotated[Optional[int], typer.Option(help="override the parent's seed")] = None,
) -> None:
    """Train a new version on the parent run's data plus the confirmed kept images, with the parent's settings;
    patients of the locked test set are left out (by patient id, else by image hash).

    Example: proctovision monitor retrain monitoring/ --out runs/lite0-r2 --run runs/lite0
    """
    from proctovision.monitoring.change_control import retrain_monitor
    from proctovision.monitoring.folder import open_folder

    overrides = {key: value for key, value in (("trainer.epochs", epochs), ("trainer.seed", seed)) if value is not None}
    with open_folder(folder) as monitor:
        record = retrain_monitor(monitor, out, overrides, run, progress=True)
    excluded = record["excluded"]
    console.print(f"new version {record['sha256'][:12]} in {out}: {record['parent_rows']} parent rows + "
                  f"{record['kept_images']} kept images; left out for the locked test set: "
                  f"{excluded['by_patient_id']} by patient id, {excluded['by_image']} by image hash")


@monitor_app.command("accept")
def accept(
    candidate: Annotated[Path, typer.Argument(metavar="NEW", help="the candidate version (run or export folder)")],
    monitor_folder: Annotated[Path, typer.Option("--monitor", metavar="DIR", help="the monitoring folder")],
    out: Annotated[Optional[Path], typer.Option(help="where the acceptance record goes (default NEW/acceptance)")]
    = None,
    resamples: Annotated[int, typer.Option(help="patient-bootstrap resamples")] = 1000,
    seed: int = 0,
) -> None:
    """Judge a candidate against the version in service on the plan's locked test set; exit 1 naming the failing
    criteria. A candidate trained on a patient or image of the locked test set is refused.

    Example: proctovision monitor accept deploy/lite0-r1 --monitor monitoring/
    """
    from proctovision.monitoring.change_control import accept_monitor
    from proctovision.monitoring.folder import open_folder

    with open_folder(monitor_folder) as monitor, console.status("Predicting the locked test set"):
        record = accept_monitor(monitor, candidate, out, resamples, seed)
    for result in record["criteria"]:
        mark = "[green]pass[/]" if result["passed"] else "[bold red]fail[/]"
        low, high = result["ci"]
        interval = "" if low is None else f" (95% CI {low:.3f}-{high:.3f})"
        value = "-" if result["value"] is None else f"{result['value']:.3f}"
        console.print(f"{mark} {result['metric']} {value}{interval}; " + ", ".join(
            f"{check['rule']} {check['limit']}" for check in result["checks"]))
    if not record["passed"]:
        fail(f"{candidate}: not accepted; failing criteria: {'; '.join(record['failed'])}")
    console.print(f"{candidate}: accepted; approve it with `proctovision monitor approve {monitor_folder} "
                  f"{candidate} --user NAME --auth ACCOUNTS_DIR`")


def read_password(name: str) -> str:
    """From a hidden prompt at a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        return typer.prompt(f"password of {name}", hide_input=True)
    return sys.stdin.readline().rstrip("\r\n")


def check_password(accounts: Path, user: str, password: str) -> None:
    """The reading room's own password check (argon2, failures recorded and throttled)."""
    from proctovision.reading.project import open_project
    from proctovision.reading.security import SecuritySettings, authenticate, throttled

    project = open_project(accounts)
    try:
        settings = SecuritySettings()
        with project.session() as session:
            if throttled(session, user, "cli", settings):
                fail(f"{user}: too many failed sign-ins; wait {settings.failure_window_s:.0f} s")
            if authenticate(session, user, password, "cli", settings) is None:
                fail(f"{accounts}: wrong account name or password")
    finally:
        project.close()


@monitor_app.command("approve")
def approve(
    folder: FolderArgument,
    candidate: Annotated[Path, typer.Argument(metavar="NEW", help="the accepted version")],
    user: Annotated[str, typer.Option(help="the approver's account (one of the plan's approvers)")],
    auth: Annotated[Path, typer.Option(metavar="ACCOUNTS_DIR", help="the reading project whose accounts serve "
                                       "--auth uses")],
) -> None:
    """Approve an accepted version; from then on serve --monitor DIR serves it and no other. The password comes
    from a prompt or one line on stdin.

    Example: proctovision monitor approve monitoring/ deploy/lite0-r1 --user admin --auth accounts/
    """
    from proctovision.monitoring.change_control import approve as record_approval
    from proctovision.monitoring.folder import open_folder

    check_password(auth, user, read_password(user))
    with open_folder(folder) as monitor:
        result = record_approval(monitor, candidate, user)
    console.print(f"version {result['sha256'][:12]} approved by {user} under plan version {result['plan_version']}; "
                  f"serve it with `proctovision serve {candidate} --monitor {folder}`")


@monitor_app.command("forget")
def forget(
    folder: FolderArgument,
    before: Annotated[str, typer.Option(help="delete kept images written before this date (YYYY-MM-DD, UTC)")],
) -> None:
    """Delete kept images written before a date, and say how many.

    Example: proctovision monitor forget monitoring/ --before 2026-06-01
    """
    from proctovision.monitoring.folder import open_folder
    from proctovision.monitoring.kept import forget as forget_images

    try:
        moment = dt.datetime.fromisoformat(before)
    except ValueError:
        raise typer.BadParameter(f"--before {before!r}: give a date as YYYY-MM-DD") from None
    with open_folder(folder) as monitor:
        removed = forget_images(monitor.folder, moment)
    console.print(f"{removed} kept image(s) deleted from {folder}")
