"""``budgetreason plan``: what fits this GPU, model and budget, and why."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.options import (
    AlphaOpt,
    BackendOpt,
    BatchOpt,
    FourBitOpt,
    GenerationOpt,
    GpuOpt,
    GpusOpt,
    GradAccumOpt,
    HeadroomOpt,
    HoursOpt,
    JsonOpt,
    KOpt,
    MaxCompletionOpt,
    MaxPromptOpt,
    ModelOpt,
    RankOpt,
    StandbyOpt,
    TargetsOpt,
    VllmShareOpt,
    VramOpt,
)

DEFAULT_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


def plan_cmd(
    gpu: GpuOpt = "auto", vram_gb: VramOpt = None, model: ModelOpt = DEFAULT_MODEL,
    hours: HoursOpt = None, rank: RankOpt = None, alpha: AlphaOpt = None, k: KOpt = None, batch: BatchOpt = None,
    grad_accum: GradAccumOpt = None, max_prompt: MaxPromptOpt = None, max_completion: MaxCompletionOpt = None,
    load_in_4bit: FourBitOpt = None, vllm_share: VllmShareOpt = None, standby: StandbyOpt = None,
    targets: TargetsOpt = None, headroom: HeadroomOpt = 0.10, backend: BackendOpt = None, generation: GenerationOpt = None,
    as_json: JsonOpt = False,
    calibration: Annotated[str | None, typer.Option(
        "--calibration", help="calibration.jsonl (or an older calibration.json) from `budgetreason calibrate`.")] = None,
    gpus: GpusOpt = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="With --gpus: plan a recipe or YAML file's settings.")] = None,
    prompts_per_step: Annotated[int | None, typer.Option("--prompts-per-step", help="Pin prompts per optimizer step.")] = None,
    val_size: Annotated[int, typer.Option("--val-size", help="Validation problems priced in the plan (MATH500: 500; 0: none).")] = 500,
    val_samples: Annotated[int, typer.Option("--val-samples", help="Samples per validation problem.")] = 1,
) -> None:
    """Plan a GRPO run: the configuration that fits, memory term by term, time and cost."""
    from budgetreason.plan.planner import plan

    if gpus is not None:
        from budgetreason.train.launch import plan_for_cli

        _show(plan_for_cli(gpus, config, gpu=gpu, vram_gb=vram_gb, model=None if model == DEFAULT_MODEL else model,
                           budget_hours=hours, lora_rank=rank, lora_alpha=alpha, num_generations=k,
                           per_device_train_batch_size=batch, max_prompt_length=max_prompt,
                           max_completion_length=max_completion, lora_target_modules=targets, headroom=headroom),
              as_json)
        return
    if hours is None:
        hours = 24.0
    p = plan(gpu, model, hours, vram_gb=vram_gb, headroom=headroom, backend=backend, generation=generation,
             calibration=calibration, val_problems=val_size or None, val_samples=val_samples,
             prompts_per_step=prompts_per_step, lora_rank=rank,
             lora_alpha=alpha, num_generations=k, per_device_train_batch_size=batch,
             gradient_accumulation_steps=grad_accum, max_prompt_length=max_prompt,
             max_completion_length=max_completion, load_in_4bit=load_in_4bit,
             vllm_gpu_memory_utilization=vllm_share, vllm_standby=standby, lora_target_modules=targets)
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
    else:
        from rich.console import Console

        from budgetreason.plan.tables import plan_view

        Console().print(plan_view(p))
    if not p.fits:
        raise typer.Exit(1)


def _show(layout, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(layout.to_dict(), indent=2))
    else:
        from rich.console import Console

        from budgetreason.plan.layout import layout_view

        Console().print(layout_view(layout))
    if not layout.fits:
        raise typer.Exit(1)
