"""``budgetreason export``: the run's adapter merged into its base (a plain model), or the adapter alone."""

from __future__ import annotations

from typing import Annotated

import typer


def export_cmd(
    kind: Annotated[str, typer.Argument(help="merged (base + adapter in one model), adapter, or verl (a verl GRPO job).")],
    run: Annotated[str, typer.Argument(help="Run folder (verl: or a recipe name / YAML file).")],
    output: Annotated[str, typer.Option("--output", "-o", help="New (or empty) folder to write.")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="final, best (by val/accuracy), or a step N.")] = "final",
    adapter_only: Annotated[bool, typer.Option("--adapter-only", help="Copy the adapter alone (same as KIND adapter).")] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="Merged weights: bfloat16, float16 or float32.")] = "bfloat16",
    base: Annotated[str | None, typer.Option("--base", help="Base model to merge into / name (default: the run's).")] = None,
    gpus: Annotated[int, typer.Option("--gpus", help="verl: GPUs on the node (trainer.n_gpus_per_node).")] = 1,
    data: Annotated[str | None, typer.Option("--data", help="verl: local copy of the recipe's data in the hub's shape.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="verl: override the recipe's model.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="verl: trainer.total_training_steps.")] = None,
) -> None:
    """Export for transformers, vLLM or the Hub: merged 16-bit safetensors with tokenizer, or the adapter."""
    from budgetreason.errors import BudgetError
    from budgetreason.share.export import export_adapter, export_merged

    if kind == "verl":
        from cli.export_verl import verl_export

        return verl_export(run, output, gpus=gpus, data=data, model=model, max_steps=max_steps)
    if kind not in ("merged", "adapter"):
        raise BudgetError(f"export what? 'merged', 'adapter' or 'verl', got '{kind}'.")
    if adapter_only or kind == "adapter":
        result = export_adapter(run, output, checkpoint=checkpoint, base=base)
    else:
        result = export_merged(run, output, checkpoint=checkpoint, dtype=dtype, base=base)
    typer.echo(f"{result.kind} ({result.checkpoint}, base {result.base_model}) → {result.output}: "
               f"{len(result.files)} files")
