"""Option definitions shared by several commands (Typer ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

GpuOpt = Annotated[str, typer.Option("--gpu", help="GPU key (see `budgetreason gpus`), 'auto' to read the local GPU, or 'cpu'.")]
VramOpt = Annotated[float | None, typer.Option("--vram-gb", help="Memory of a GPU that is not in the catalog, in GB.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog model, hub id, local folder, or 'tiny-arith'.")]
HoursOpt = Annotated[float | None, typer.Option("--hours", help="Wall-clock budget in hours.")]
RankOpt = Annotated[int | None, typer.Option("--rank", help="LoRA rank r (default: the planner's choice, target 256).")]
AlphaOpt = Annotated[int | None, typer.Option("--alpha", help="LoRA alpha (default 4·r, as Tina).")]
KOpt = Annotated[int | None, typer.Option("--k", help="Group size: completions per prompt (target 8).")]
BatchOpt = Annotated[int | None, typer.Option("--batch", help="Completions per training micro-batch.")]
GradAccumOpt = Annotated[int | None, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")]
MaxPromptOpt = Annotated[int | None, typer.Option("--max-prompt", help="Longest prompt in tokens (target 512).")]
MaxCompletionOpt = Annotated[int | None, typer.Option("--max-completion", help="Longest completion in tokens (target 3584).")]
FourBitOpt = Annotated[bool | None, typer.Option("--load-in-4bit/--no-load-in-4bit", help="Fix 4-bit NF4 base weights on or off.")]
VllmShareOpt = Annotated[float | None, typer.Option("--vllm-share", help="Fraction of GPU memory for vLLM (weights + KV cache).")]
StandbyOpt = Annotated[bool | None, typer.Option("--standby/--no-standby", help="Fix vLLM standby (free the KV cache while training) on or off.")]
TargetsOpt = Annotated[str | None, typer.Option("--targets", help="LoRA targets: all, attn, mlp, or a comma list of projections.")]
HeadroomOpt = Annotated[float, typer.Option("--headroom", help="Fraction of GPU memory kept free.")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="unsloth (GPU default), trl (TRL's vLLM), hf (no vLLM; CPU).")]
GenerationOpt = Annotated[str | None, typer.Option(
    "--generation", help="vllm or hf (transformers' generate; with --backend unsloth: Unsloth's kernels, no vLLM).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
GpusOpt = Annotated[int | None, typer.Option("--gpus", help="GPUs on this machine (2 or more): vLLM serves on some, accelerate trains on the rest.")]
