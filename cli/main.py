"""The ``budgetreason`` console script: one Typer app, commands registered in one place."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Annotated

import typer

from budgetreason.errors import BudgetError

app = typer.Typer(
    name="budgetreason",
    help="Teach a small language model to reason with GRPO on LoRA, on one GPU, inside a memory and time budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"verbose": False}


def _version(value: bool) -> None:
    if value:
        from budgetreason import __version__
        typer.echo(f"budgetreason {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """budgetreason: plan, train, evaluate and report GRPO-on-LoRA runs."""
    _state["verbose"] = verbose


def _register() -> None:
    from cli import catalogs, doctor, evaluation, export, gpu, misc, plan, push, reporting, serve, train

    app.command("demo")(misc.demo_cmd)
    app.command("plan")(plan.plan_cmd)
    app.command("train")(train.train_cmd)
    app.command("eval")(evaluation.eval_cmd)
    app.command("compare")(evaluation.compare_cmd)
    app.command("report")(reporting.report_cmd)
    app.command("export")(export.export_cmd)
    app.command("push")(push.push_cmd)
    app.command("serve")(serve.serve_cmd)
    app.command("sweep")(reporting.sweep_cmd)
    app.command("recipes")(misc.recipes_cmd)
    app.command("benchmarks")(evaluation.benchmarks_cmd)
    app.command("gpus")(catalogs.gpus_cmd)
    app.command("models")(catalogs.models_cmd)
    app.command("versions")(catalogs.versions_cmd)
    app.command("calibrate")(gpu.calibrate_cmd)
    app.command("bench")(gpu.bench_cmd)
    app.command("doctor")(doctor.doctor_cmd)


_register()


#: Columns for rich output when stdout is not a terminal (pipes, CI logs, notebooks) and COLUMNS is unset.
PIPE_COLUMNS = 120
#: Below this width Typer's rich option tables cut long option names ("--prompts-per-st…"); Click's plain
#: layout wraps the help text instead and never cuts a name.
RICH_HELP_MIN_COLUMNS = 100


def _configure_output() -> int:
    """Rich falls back to 80 columns outside a terminal, which wraps help into one-word columns.

    COLUMNS, when set, wins (rich and Typer both read it); otherwise a pipe gets PIPE_COLUMNS.
    Help narrower than RICH_HELP_MIN_COLUMNS uses Click's plain layout. Returns the width.
    """
    if not os.environ.get("COLUMNS") and not sys.stdout.isatty():
        os.environ["COLUMNS"] = str(PIPE_COLUMNS)
    columns = os.environ.get("COLUMNS", "").strip()
    width = int(columns) if columns.isdigit() else shutil.get_terminal_size().columns
    if width < RICH_HELP_MIN_COLUMNS:
        app.rich_markup_mode = None
    return width


def main() -> None:
    """Entry point: run the app; a BudgetError becomes one line on stderr and exit code 2."""
    _configure_output()
    try:
        app()
    except BudgetError as e:
        if _state["verbose"] or os.environ.get("BUDGETREASON_DEBUG"):
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)



if __name__ == "__main__":
    main()
