"""``budgetreason export verl SOURCE``: print what the verl export wrote (budgetreason.share.verl_export)."""

from __future__ import annotations

import typer


def verl_export(source: str, output: str | None, *, gpus: int, data: str | None, model: str | None,
                max_steps: int | None) -> None:
    """A verl GRPO job: the dataset as parquet, a compute_score reward module, and the main_ppo command."""
    from budgetreason.share.verl_export import export

    result = export(source, output, gpus=gpus, model=model, data_path=data, max_steps=max_steps)
    for path in result.files:
        typer.echo(f"wrote {path}")
    typer.echo(f"rows: {', '.join(f'{k} {v}' for k, v in result.rows.items())}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(result.shell_command())
