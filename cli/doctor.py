"""``budgetreason doctor``: is this machine ready to train on its GPU?"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.options import JsonOpt


def doctor_cmd(
    output: Annotated[str, typer.Option("--output", "-o", help="Where run folders will go (its disk is checked).")] = ".",
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose checkpoints the disk must hold.")] = "Qwen/Qwen2.5-1.5B-Instruct",
    as_json: JsonOpt = False,
) -> None:
    """Check CUDA, driver, bf16, free GPU memory and disk, and the version matrix; exit 1 if training would fail."""
    from budgetreason.measure.doctor import doctor, format_report

    report = doctor(output, model, show=False)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if not report["ok"]:
        raise typer.Exit(1)
