"""``budgetreason report`` and ``sweep``."""

from __future__ import annotations

from typing import Annotated

import typer


def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="Run folders (several overlay on the same axes).")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Folder for figures and report.md.")] = None,
    smoothing: Annotated[float, typer.Option(
        "--smooth", "--ema", help="Smoothing α: centred mean over 2/α − 1 steps (≤ a quarter of the run).")] = 0.1,
) -> None:
    """Training curves, entropy and length changes, turning point and a verdict per run."""
    from budgetreason.report.reporting import report

    data = report(runs, output=output, alpha=smoothing)
    for a in data["runs"]:
        note = f" ({a['verdict_note']})" if a.get("verdict_note") else ""
        typer.echo(f"{a['label']}: {a['verdict']}{note} — {a['steps']} steps, reward {a['reward_first_tenth']} → "
                   f"{a['reward_last_tenth']}, train entropy Δ {a['train_entropy_change_pct']}%")
    typer.echo(f"report: {output or runs[0] + '/report'}/report.md")


def sweep_cmd(
    models: Annotated[str, typer.Option("--models", help="Comma list of models.")],
    ranks: Annotated[str, typer.Option("--ranks", help="Comma list of LoRA ranks, e.g. 8,64,256.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for all runs and the combined report.")],
    recipe: Annotated[str | None, typer.Option("--recipe", "-c", help="Shipped recipe or YAML every run starts from (micro-budget).")] = None,
    hours_each: Annotated[float | None, typer.Option("--hours-each", help="Budget of each run in hours.")] = None,
    max_steps_each: Annotated[int | None, typer.Option("--max-steps-each", help="Step limit of each run.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    gpu: Annotated[str, typer.Option("--gpu")] = "auto",
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    alpha: Annotated[int | None, typer.Option("--alpha", help="LoRA alpha for every rank (default: the recipe's, else 32).")] = None,
    k: Annotated[int | None, typer.Option("--k")] = None,
    max_completion: Annotated[int | None, typer.Option("--max-completion")] = None,
    val_every: Annotated[str | None, typer.Option("--val-every", help="Validate every N steps, or 'auto'.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="If another sweep holds the folder, wait for it to end.")] = False,
) -> None:
    """The rank sweep (models × ranks), one run after another; re-run to resume; ends with the combined report."""
    from rich.console import Console

    from budgetreason.checks import int_list
    from budgetreason.sweeps import sweep
    from cli.train import _val_every

    settings = {k_: v for k_, v in dict(gpu=None if gpu == "auto" and recipe else gpu, seed=seed, lora_alpha=alpha,
                                        num_generations=k, max_completion_length=max_completion,
                                        val_every=_val_every(val_every), progress=False if no_progress else None).items()
                if v is not None}
    state = sweep([m.strip() for m in models.split(",") if m.strip()],
                  int_list(ranks, "--ranks"), output=output, dataset=dataset,
                  hours_each=hours_each, max_steps_each=max_steps_each, recipe=recipe, console=Console(stderr=True),
                  wait=wait,
                  **settings)
    for item in state["queue"]:  # what `eval --adapter` takes (also in sweep.json)
        typer.echo(f"{item['model']} rank {item['rank']}: {item['output']}")
    typer.echo(f"sweep finished: {len(state['queue'])} runs; report {state['report']}")
