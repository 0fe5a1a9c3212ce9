"""``budgetreason train``: GRPO on LoRA inside a time budget; re-running the same command resumes."""

from __future__ import annotations

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
    HoursOpt,
    KOpt,
    MaxCompletionOpt,
    MaxPromptOpt,
    RankOpt,
    StandbyOpt,
    TargetsOpt,
    VllmShareOpt,
    VramOpt,
)


def train_cmd(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Catalog model, hub id, folder, or tiny-arith (default without a GPU).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d",
                                                help="Recipe (see `budgetreason recipes`), hub dataset ORG/NAME, or a local file.")] = None,
    dataset_config: Annotated[str | None, typer.Option("--dataset-config",
                                                       help="Configuration (subset) of a hub dataset, e.g. main.")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split to train on (default: the recipe's, else train).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Local copy of the recipe's data in the hub's shape.")] = None,
    problem_column: Annotated[str | None, typer.Option("--problem-column")] = None,
    answer_column: Annotated[str | None, typer.Option("--answer-column")] = None,
    gpu: GpuOpt = "auto", vram_gb: VramOpt = None, hours: HoursOpt = None,
    budget_usd: Annotated[float | None, typer.Option("--budget-usd", help="Budget in dollars (GPU catalog price).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")] = None,
    rank: RankOpt = None, alpha: AlphaOpt = None, k: KOpt = None, batch: BatchOpt = None, grad_accum: GradAccumOpt = None,
    max_prompt: MaxPromptOpt = None, max_completion: MaxCompletionOpt = None, load_in_4bit: FourBitOpt = None,
    vllm_share: VllmShareOpt = None, standby: StandbyOpt = None, targets: TargetsOpt = None,
    prompts_per_step: Annotated[int | None, typer.Option("--prompts-per-step", help="Prompts per optimizer step (the planner splits it).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    schedule_steps: Annotated[int | None, typer.Option("--schedule-steps", help="Steps the LR schedule spans (--max-steps).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="grpo, bnpo (Tina's Dr.GRPO), dr_grpo or dapo.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="KL coefficient.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    rewards: Annotated[str | None, typer.Option("--rewards", help="Reward preset: micro_budget, tina, tina_cosine.")] = None,
    reward: Annotated[list[str] | None, typer.Option(
        "--reward", help="Your reward, module:function or file.py:function (repeatable; replaces the preset).")] = None,
    reward_weight: Annotated[list[float] | None, typer.Option("--reward-weight", help="Weight of each --reward, in order (default 1).")] = None,
    save_steps: Annotated[int | None, typer.Option("--save-steps")] = None,
    save_minutes: Annotated[float | None, typer.Option("--save-minutes", help="Checkpoint every N minutes (30).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Run folder.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start afresh; the old folder is moved aside.")] = False,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    backend: BackendOpt = None,
    generation: GenerationOpt = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML file or shipped recipe name.")] = None,
    report_to: Annotated[str | None, typer.Option("--report-to", help="wandb, tensorboard, trackio or none.")] = None,
    oom_retries: Annotated[int | None, typer.Option("--oom-retries")] = None,
    val_every: Annotated[str | None, typer.Option("--val-every", help="Validate every N steps, or 'auto' (as the budget allows).")] = None,
    val_benchmark: Annotated[str | None, typer.Option("--val-benchmark")] = None,
    val_size: Annotated[int | None, typer.Option("--val-size", help="Problems per validation (default: the whole benchmark).")] = None,
    val_samples: Annotated[int | None, typer.Option("--val-samples", help="Samples per validation problem.")] = None,
    val_data: Annotated[str | None, typer.Option("--val-data", help="Local copy of the validation benchmark.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (logs only).")] = False,
    gpus: GpusOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --gpus: write the accelerate config and the commands, run nothing.")] = False,
    port: Annotated[int, typer.Option("--port", help="With --gpus: the vLLM server's port.")] = 8000,
    wait: Annotated[bool, typer.Option("--wait", help="If another run holds the folder, wait for it to end.")] = False,
) -> None:
    """Train with GRPO on LoRA until the budget or --max-steps ends; re-run the same command to resume."""
    from budgetreason.errors import BudgetError
    from budgetreason.train.training import train, train_overrides_from_folder

    if dry_run and not gpus:
        raise BudgetError("--dry-run writes the several-GPU launch files; give it with --gpus N.")

    base = config
    if resume:
        base = train_overrides_from_folder(resume)
        output = output or resume
    overrides = dict(
        model=model, dataset=dataset, dataset_config=dataset_config, split=split, data_path=data,
        problem_column=problem_column, answer_column=answer_column,
        gpu=None if gpu == "auto" and resume else gpu, vram_gb=vram_gb, budget_hours=hours, budget_usd=budget_usd,
        max_steps=max_steps, lora_rank=rank, lora_alpha=alpha, num_generations=k, per_device_train_batch_size=batch,
        gradient_accumulation_steps=grad_accum, max_prompt_length=max_prompt, max_completion_length=max_completion,
        load_in_4bit=load_in_4bit, vllm_gpu_memory_utilization=vllm_share, vllm_standby=standby,
        lora_target_modules=targets, learning_rate=lr, prompts_per_step=prompts_per_step, schedule_steps=schedule_steps,
        loss=loss, beta=beta, temperature=temperature, rewards=rewards,
        reward_funcs=reward or None, reward_weights=reward_weight or None,
        save_steps=save_steps, save_minutes=save_minutes, output=output, overwrite=overwrite or None, seed=seed,
        backend=backend, generation=generation, report_to=report_to, oom_retries=oom_retries,
        val_every=_val_every(val_every), val_benchmark=val_benchmark, val_size_benchmark=val_size,
        val_samples=val_samples, val_data=val_data,
        progress=False if no_progress else None,
    )
    if gpus:
        _launch(gpus, base, overrides, dry_run, port, wait)
        return
    try:
        result = train(base, wait=wait, **overrides)
    except KeyboardInterrupt as e:  # the run saved a checkpoint first (budgetreason.train.callbacks.GracefulStop)
        typer.echo(f"stopped: {e}" if str(e) else "stopped.", err=True)
        raise typer.Exit(130) from None
    if result.nothing_to_do:
        typer.echo(f"already finished at step {result.steps} ({result.stop_reason}); nothing to do (run folder "
                   f"{result.output}; a larger --max-steps or --hours continues it)")
        return
    typer.echo(f"{result.stop_reason}: {result.steps} steps in {result.elapsed_s / 60:.1f} min; "
               f"run folder {result.output} (adapter in {result.output}/adapter)")


def _val_every(value: str | None) -> int | str | None:
    """--val-every N or auto."""
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        from budgetreason.errors import BudgetError

        raise BudgetError(f"--val-every must be a step count or 'auto', got '{value}'.") from None


def _launch(gpus: int, base, overrides: dict, dry_run: bool, port: int, wait: bool) -> None:
    from rich.console import Console

    from budgetreason.train import launch
    overrides = {k: v for k, v in overrides.items() if k not in ("backend", "progress")} | {
        "backend": overrides.get("backend"), "gpu": None if overrides.get("gpu") == "auto" else overrides.get("gpu")}
    plan = launch.prepare(gpus, base, port=port, wait=wait, **overrides)
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)
    if dry_run:
        for path in plan.write():
            typer.echo(f"wrote {path}")
        typer.echo("\n".join(plan.shell_lines()))
        return
    raise typer.Exit(launch.run(plan, Console(stderr=True)))
