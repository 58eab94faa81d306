"""The `proctovision` command line: one module of thin commands per concern (parse, call one library function,
print), merged flat into one Typer app; shared options and the one-line failure live in ``common``."""
from __future__ import annotations

import sys

import typer

from proctovision.cli import bench, data, demo, deploy, evaluate, experiments, explain, predict, train
from proctovision.cli.common import user_errors
from proctovision.cli.monitor import monitor_app
from proctovision.cli import monitor_change  # noqa: F401 - adds plan, recalibrate, retrain, accept, approve, forget
from proctovision.cli.reading import reading_app
from proctovision.core.console import error_console

app = typer.Typer(
    name="proctovision",
    help="Build, validate, explain and deploy classifiers for anorectal imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for concern in (data, train, evaluate, demo, explain, experiments, predict, deploy, bench):
    app.add_typer(concern.app)
app.add_typer(reading_app, name="reading")
app.add_typer(monitor_app, name="monitor", rich_help_panel="After go-live")


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
