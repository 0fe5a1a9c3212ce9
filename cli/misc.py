"""``budgetreason recipes`` and ``demo``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.options import JsonOpt


def recipes_cmd(as_json: JsonOpt = False) -> None:
    """List dataset recipes and the shipped training recipes (--config NAME)."""
    from budgetreason.data.datasets import recipes
    from budgetreason.train.recipes import describe, recipe_names

    data = [r.to_dict() for r in recipes()]
    training = {name: describe(name) for name in recipe_names()}
    if as_json:
        typer.echo(json.dumps({"datasets": data, "training": training}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Dataset recipes (--dataset NAME)")
    for col in ("name", "hub id", "problem / answer", "rows", "used by"):
        t.add_column(col)
    for r in data:
        t.add_row(r["name"], r["hf_id"] or "generated", f"{r['problem_column']} / {r['answer_column']}",
                  f"{r['rows']:,}", r["used_by"])
    tr = Table(title="Training recipes (--config NAME)")
    tr.add_column("name")
    tr.add_column("what and where")
    for name, text in training.items():
        tr.add_row(name, text)
    Console().print(t, tr)


def demo_cmd(
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the run, evaluations and report.")] = "runs/demo",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="GRPO steps.")] = 30,
) -> None:
    """The whole pipeline on the built-in tiny model, no GPU needed: plan, train, evaluate, report."""
    from budgetreason.demonstration import demo

    demo(output=output, seed=seed, steps=steps)
