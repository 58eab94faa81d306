"""The `proctovision` command line: one module of thin commands per concern (parse, call one library function,
print), merged flat into one Typer app and shown in `--help` in the panels of ``panels``; shared options and the
one-line failure live in ``common``."""
from __future__ import annotations

import sys

import typer

from proctovision.cli import bench, data, demo, deploy, evaluate, experiments, explain, predict, train
from proctovision.cli import monitor_change  # noqa: F401 - adds plan, recalibrate, retrain, accept, approve, forget
from proctovision.cli.common import user_errors
from proctovision.cli.monitor import monitor_app
from proctovision.cli.panels import AFTER_GO_LIVE, PANEL_OF, STUDIES
from proctovision.cli.plan import plan_app
from proctovision.cli.reading import reading_app
from proctovision.core.console import error_console

app = typer.Typer(
    name="proctovision",
    help="Build, validate, explain and deploy classifiers for anorectal imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def add_concern(concern: typer.Typer) -> None:
    """Merge a module's commands into the top level, each in its panel (``panels.PANELS``; a command missing
    there fails the CLI test that every command has one)."""
    for command in concern.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        command.rich_help_panel = PANEL_OF.get(name, command.rich_help_panel)
    app.add_typer(concern)


for concern in (data, train, evaluate, demo, explain, experiments, predict, deploy, bench):
    add_concern(concern.app)
app.add_typer(reading_app, name="reading", rich_help_panel=STUDIES)
app.add_typer(plan_app, name="plan", rich_help_panel=STUDIES)
app.add_typer(monitor_app, name="monitor", rich_help_panel=AFTER_GO_LIVE)


def main() -> None:
    from proctovision.core.perf import tune_allocator

    tune_allocator()
    try:
        app()
    except user_errors() as error:
        error_console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(getattr(error, "exit_code", 1))
    except KeyboardInterrupt:
        error_console.print("[bold red]interrupted[/]")
        sys.exit(130)
