"""``budgetreason gpus``, ``models`` and ``versions``: what the tool knows."""

from __future__ import annotations

import json

import typer

from cli.options import JsonOpt


def gpus_cmd(as_json: JsonOpt = False) -> None:
    """List the GPU catalog: memory, bf16, throughput, bandwidth and a typical price."""
    from budgetreason.plan.hardware import catalog

    gpus = list(catalog().values())
    if as_json:
        typer.echo(json.dumps([g.to_dict() for g in gpus], indent=2))
        return
    from rich.console import Console

    from budgetreason.plan.tables import gpus_table

    console = Console()
    console.print(gpus_table(gpus, console.width))


def models_cmd(as_json: JsonOpt = False) -> None:
    """List the model catalog: the architecture numbers the planner uses."""
    from budgetreason.plan.architectures import catalog

    models = list(catalog().values())
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in models], indent=2))
        return
    from rich.console import Console

    from budgetreason.plan.tables import models_table

    console = Console()
    console.print(models_table(models, console.width))


def versions_cmd() -> None:
    """Check installed library versions against the matrix that installs together on a GPU machine."""
    from budgetreason.measure.versions import check_installed, format_report

    problems = check_installed()
    typer.echo(format_report())
    if problems:
        raise typer.Exit(1)
