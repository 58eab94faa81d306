"""`proctovision reading ...`: the reading room's commands (thin: parse, call the library, print)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from proctovision.core.console import console, error_console

reading_app = typer.Typer(
    name="reading", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Expert labelling with consensus, and timed reader studies with and without the model, in the browser.",
)


@reading_app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="the project folder to create")],
    manifest: Annotated[Path, typer.Option(help="manifest or split CSV with the images to read")],
    task: Annotated[str, typer.Option(help="task name or task YAML")],
    kind: Annotated[str, typer.Option(help="labelling | study")],
    split: Annotated[Optional[str], typer.Option(help="only this split of a split file (e.g. test)")] = None,
    arms: Annotated[Optional[str], typer.Option(help="study arms: unaided (default) or unaided,aided")] = None,
    model: Annotated[Optional[Path], typer.Option(help="run or export folder for the aided arm")] = None,
    washout_days: Annotated[float, typer.Option(help="days between a reader's two arms")] = 0.0,
    order: Annotated[str, typer.Option(help="arm order: unaided-first | counterbalanced")] = "unaided-first",
    repeats: Annotated[int, typer.Option(help="cases shown a second time, unannounced, per reader and arm")] = 0,
    allow_changes: Annotated[bool, typer.Option(help="readers may change an answer")] = False,
    consensus: Annotated[str, typer.Option(help="labelling: unanimous | majority | adjudication")] = "majority",
    readers_per_case: Annotated[Optional[int], typer.Option(help="labelling: experts per case (default all)")]
    = None,
    case_order: Annotated[str, typer.Option(help="random | uncertain-first (the model's least sure first)")]
    = "random",
    seed: int = 0,
    db: Annotated[Optional[str], typer.Option(help="postgresql://... (default: SQLite inside DIR)")] = None,
    crop_content: Annotated[bool, typer.Option(
        "--crop-content", help="show each frame's content area only (burned-in border text never reaches a "
        "reader); also done where the manifest's crop column or the model says crop: content")] = False,
    plan_effect: Annotated[Optional[float], typer.Option(help="study: print the power for this AUC difference")]
    = None,
    plan_readers: Annotated[Optional[int], typer.Option(help="study: readers planned, for the power")] = None,
    plan_components: Annotated[Optional[Path], typer.Option(help="variance components JSON for the power")] = None,
    plan_pilot: Annotated[Optional[Path], typer.Option(help="pilot readers.csv for the power (truth: --manifest)")]
    = None,
) -> None:
    """Create a reading project.

    Example: proctovision reading init study/ --manifest work/split.csv --split test --task hemorrhoid
    --kind study --arms unaided,aided --model runs/r18 --washout-days 14 --crop-content

    Example (with its power): ... --kind study --plan-effect 0.05 --plan-readers 6 --plan-components vc.json
    """
    from proctovision.reading.project import init_project

    planned = _plan_components(plan_effect, plan_readers, plan_components, plan_pilot, manifest, split, arms or "",
                               kind)
    arm_names = None if arms is None else tuple(a.strip() for a in arms.split(",") if a.strip())
    project = init_project(folder, manifest, task, kind, split, arm_names, model, washout_days, order, repeats,
                           allow_changes, consensus, readers_per_case, db, seed, case_order, crop_content)
    if planned is not None:
        from proctovision.reading.project import status

        components, unit = planned
        cases = _patients(manifest, split) if unit == "patient" else status(project)["cases"]
        _print_planned_power(components, plan_effect, plan_readers, cases, unit)
    project.close()
    for note in project.notes:
        error_console.print(note, markup=False, soft_wrap=True)
    console.print(f"reading project in {folder} ({kind}); add users with `proctovision reading user {folder} NAME "
                  f"--role admin`")


def _plan_components(effect: float | None, readers: int | None, components: Path | None, pilot: Path | None,
                     manifest: Path, split: str | None, arms: str, kind: str) -> tuple[object, str] | None:
    """The variance components for the study's power and their unit of cases (a pilot's jackknife unit), read
    before the project is made so bad input stops it."""
    from proctovision.evaluation import power

    if effect is None:
        if readers is not None or components is not None or pilot is not None:
            raise power.PlanError("--plan-readers, --plan-components and --plan-pilot go with --plan-effect")
        return None
    if kind != "study":
        raise power.PlanError("--plan-effect is for --kind study")
    if readers is None or (components is None) == (pilot is None):
        raise power.PlanError("--plan-effect needs --plan-readers and one of --plan-components or --plan-pilot")
    if components is not None:
        return power.read_components(components), "case"
    chosen = [arm.strip() for arm in arms.split(",") if arm.strip()]
    found, details = power.pilot_from_sheets(pilot, manifest, chosen if len(chosen) == 2 else None, split or "test")
    return found, details["resampled_unit"]


def _patients(manifest: Path, split: str | None) -> int:
    from proctovision.data.manifest import read_manifest

    rows = read_manifest(manifest)
    return int((rows[rows["split"] == split] if split else rows)["patient_id"].nunique())


def _print_planned_power(components: object, effect: float, readers: int, cases: int, unit: str) -> None:
    from proctovision.evaluation.power import reader_study_power

    result = reader_study_power(components, effect, readers, cases)
    counted = f"{cases} patients" if unit == "patient" else f"{cases} cases"
    line = (f"power {result['power']:.2f} to find an AUC difference of {effect:g} with {readers} readers and "
            f"{counted} (OR-H, random readers and cases, alpha 0.05)")
    if result["power"] < 0.8:
        console.print(f"[bold yellow]warning:[/] {line}: below 0.8; `proctovision plan reader-study` gives the "
                      "readers and cases that reach it")
    else:
        console.print(line)


@reading_app.command("user")
def user(
    folder: Annotated[Path, typer.Argument(metavar="DIR")],
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[str, typer.Option(help="admin | reader | adjudicator | clinician (serve --auth)")] = "reader",
    experience: Annotated[str, typer.Option(help="e.g. senior | junior")] = "",
) -> None:
    """Add an account; the password comes from a prompt (or one line on stdin), never from a flag.

    Example: proctovision reading user study/ alice --role reader --experience senior
    """
    from proctovision.reading.project import add_user, open_project

    if sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    project = open_project(folder)
    try:
        add_user(project, name, role, password, experience)
    finally:
        project.close()
    console.print(f"added {role} {name!r}", markup=False)


@reading_app.command("serve")
def serve(
    folder: Annotated[Path, typer.Argument(metavar="DIR")],
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: Annotated[bool, typer.Option(help="needed to listen beyond loopback (serve HTTPS then)")]
    = False,
    ssl_certfile: Annotated[Optional[Path], typer.Option(help="serve HTTPS with this certificate (PEM)")] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option(help="and this private key (PEM)")] = None,
    trusted_proxy: Annotated[Optional[list[str]], typer.Option(
        help="address of a reverse proxy whose X-Forwarded-For/-Proto headers are believed (repeatable)")] = None,
) -> None:
    """Serve the reading page and its JSON API (/docs).

    Example: proctovision reading serve study/ --port 8000   (then open http://127.0.0.1:8000/);
    behind a reverse proxy on this machine add --trusted-proxy 127.0.0.1
    """
    import uvicorn

    from proctovision.reading.api import create_app
    from proctovision.reading.security import SecuritySettings, is_loopback

    if not is_loopback(host) and not allow_remote:
        error_console.print(f"[bold red]error:[/] {host} is not loopback: add --allow-remote (behind HTTPS)")
        raise typer.Exit(1)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        error_console.print("[bold red]error:[/] give both --ssl-certfile and --ssl-keyfile, or neither")
        raise typer.Exit(1)
    proxies = tuple(trusted_proxy or ())
    app = create_app(folder, SecuritySettings(trusted_proxies=proxies))
    scheme = "https" if ssl_certfile else "http"
    console.print(f"reading room {folder} on {scheme}://{host}:{port}/ (API docs at /docs)", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", **proxy_options(proxies),
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)


def proxy_options(trusted: tuple[str, ...]) -> dict:
    """uvicorn believes X-Forwarded-* only from the proxies named with --trusted-proxy (by default it believes
    127.0.0.1, so any local client could pick a fresh address per sign-in attempt)."""
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted)}


@reading_app.command("status")
def status(folder: Annotated[Path, typer.Argument(metavar="DIR")]) -> None:
    """Print the project's settings and each reader's progress per arm.

    Example: proctovision reading status study/
    """
    from proctovision.reading.project import open_project
    from proctovision.reading.project import status as project_status

    project = open_project(folder)
    try:
        info = project_status(project)
    finally:
        project.close()
    console.print(f"{info['kind']} on {info['task']} ({', '.join(info['classes'])}): {info['cases']} cases, "
                  f"arms {', '.join(info['arms'])}, database {info['database']}", markup=False)
    if info["kind"] == "labelling":
        console.print(f"consensus rule: {info['consensus']}", markup=False)
    else:
        console.print(f"arm order: {info['arm_order']}; washout: {info['washout_days']:g} day(s); unannounced "
                      f"repeats: {info['repeats']} per reader and arm", markup=False)
    for line in info["progress"]:
        console.print(f"  {line['reader']} [{line['arm']}]: {line['done']}/{line['total']}"
                      + ("" if line["open"] else " (not open yet)"), markup=False)
    if not info["progress"]:
        console.print("  no reader has started", markup=False)


@reading_app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(metavar="DIR")],
    out: Annotated[Path, typer.Option(help="labelling: a manifest for split; study: a readers.csv")],
) -> None:
    """Write the labelling manifest (consensus) or the study's readers.csv.

    Example: proctovision reading export study/ --out readers.csv; proctovision compare runs/r18 --readers readers.csv
    """
    from proctovision.reading.export import export as write_export
    from proctovision.reading.project import open_project

    project = open_project(folder)
    try:
        info = write_export(project, out)
    finally:
        project.close()
    console.print(f"wrote {info['rows']} rows to {out}", markup=False, soft_wrap=True)
    if info.get("repeats_file"):
        console.print(f"wrote the unannounced repeats to {info['repeats_file']}", markup=False, soft_wrap=True)
    left_out = info.get("left_out", {})
    if left_out:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(left_out.items()))
        console.print(f"left out {sum(left_out.values())} case(s) without consensus: {reasons}", markup=False)
