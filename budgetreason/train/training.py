"""``budgetreason.train(config)``: plan → run config → GRPO (TRL) → run folder.

The steps, in order: resolve the config (planner fills what the user left open), check the
run folder (same run: resume; another run: refuse unless --overwrite), load the model through
a back-end (Unsloth must be imported before TRL), load data and rewards, build TRL's
GRPOConfig in one function, and let TRL's GRPOTrainer run with budgetreason's callbacks.
An out-of-memory error is recorded and retried from the last checkpoint with the planner's
next smaller configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from budgetreason.checks import output_folder
from budgetreason.errors import BudgetError
from budgetreason.runs.folder import BUDGET_STATE, RunFolder
from budgetreason.train.config import RunConfig, slug

#: Hub models get Tina's learning rate; the tiny model's recipe sets its own.
DEFAULT_LR = 1e-6
#: Plan-derived settings the planner may change on an OOM retry (in this order).
OOM_STEPS = ("per_device_train_batch_size", "vllm_gpu_memory_utilization", "vllm_standby", "max_completion_length")


@dataclass
class ResolvedRun:
    """A config with every value decided, the plan that decided them, and the folder."""

    config: RunConfig
    plan: object
    folder: RunFolder
    backend: str
    gpu: object
    generation: str = "hf"
    """vllm or hf: how completions are generated (backends.choose_engine)."""
    resume_from: Path | None = None
    notes: list[str] = field(default_factory=list)
    rewards: object | None = None
    """The checked custom rewards (budgetreason.train.custom_rewards), or None for the preset."""
    finished: RunResult | None = None
    """Set when the folder holds this run already finished and the new budget allows no more."""


@dataclass
class RunResult:
    """What `train` returns (also written to summary.json)."""

    output: str
    steps: int
    stop_reason: str
    elapsed_s: float
    final_metrics: dict
    warnings: list[str]
    oom_retries: int = 0
    nothing_to_do: bool = False
    """True when the run had already finished and was left untouched."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- resolution -------------------------------------------------------------------------------------
def _user_config(config: RunConfig | dict | str | None, overrides: dict) -> RunConfig:
    from budgetreason.train.recipes import MODEL_DEFAULTS, load_recipe, load_recipe_lines, recipe_file

    where, source = {}, "config"
    if isinstance(config, str):
        base, lines = load_recipe_lines(config)
        source = str(recipe_file(config))
        where = {k: f" ({source}, line {n})" for k, n in lines.items() if overrides.get(k) is None}
    elif isinstance(config, RunConfig):
        base = config.given()  # not "differs from the default": an explicit default value is a choice too
    else:
        base = dict(config or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    model = base.get("model")
    if model in MODEL_DEFAULTS:  # a model's own recipe fills what neither file nor flags set
        base = {**load_recipe(MODEL_DEFAULTS[model]), **base}
    return RunConfig.from_dict(base, source=source, where=where)


def resolve(config: RunConfig, reward_objects: dict | None = None, planned=None) -> ResolvedRun:
    """Fill every open setting: GPU, back-end, model, dataset, budget, and the planner's shape.

    `reward_objects` maps reward specs to the callables a Python caller passed (train(rewards=[fn])).
    `planned` replaces the single-GPU planner (``train --gpus N`` passes its layout, which has the
    same ``fits``/``config``/``to_dict`` as a Plan).
    """
    from budgetreason.models.backends import choose_engine
    from budgetreason.plan.architectures import TINY_MODEL_ID, canonical_model_id, resolve_model
    from budgetreason.plan.hardware import resolve_gpu
    from budgetreason.plan.planner import plan

    if config.output:  # the cheap checks first: reading the local GPU may import torch
        output_folder(config.output)
    _check_tracker(config.report_to)
    gpu = resolve_gpu(config.gpu, config.vram_gb)
    backend, generation = choose_engine(config.backend, config.generation, gpu)
    model = canonical_model_id(config.model or (TINY_MODEL_ID if not gpu.is_cuda else "Qwen/Qwen2.5-1.5B-Instruct"))
    if model == TINY_MODEL_ID and config.model is None:
        config = _user_config(config, {"model": model})
    arch = resolve_model(model)
    dataset = config.dataset or ("arith" if model == TINY_MODEL_ID else "open-rs")
    from budgetreason.data.datasets import check_source

    check_source(dataset, config.data_path)
    custom = None
    if config.reward_funcs:  # checked on a sample batch here, before any model loads
        from budgetreason.train.custom_rewards import checked_rewards

        custom = checked_rewards(dataclasses.replace(config, dataset=dataset), reward_objects or {})
    elif config.rewards:
        from budgetreason.rewards.functions import preset

        preset(config.rewards)  # an unknown preset fails here, not after the model has loaded
    if config.extra:
        from budgetreason.train.trainer_args import check_extra

        check_extra(config.extra)  # likewise a misspelt GRPOConfig field
    hours = config.budget_hours
    if config.budget_usd is not None:
        if not gpu.price_usd_hr:
            raise BudgetError(f"{gpu.name} has no catalog price; give --hours instead of --budget-usd.")
        hours = config.budget_usd / gpu.price_usd_hr
    if hours is None and config.max_steps is None:
        raise BudgetError("Give a budget: --hours H, --budget-usd D, or --max-steps N.")
    fixed = dict(
        lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, num_generations=config.num_generations,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_prompt_length=config.max_prompt_length, max_completion_length=config.max_completion_length,
        load_in_4bit=config.load_in_4bit, vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        vllm_standby=config.vllm_standby, lora_target_modules=config.lora_target_modules, optim=config.optim,
        lora_dropout=config.lora_dropout, beta=config.beta, prompts_per_step=config.prompts_per_step,
    )
    if not gpu.is_cuda or generation != "vllm":
        fixed.pop("vllm_gpu_memory_utilization")
    p = planned or plan(gpu, arch, hours or 1.0, headroom=config.headroom, backend=backend, generation=generation,
                        val_problems=_val_problems(config), val_samples=config.val_samples, **fixed)
    if not p.fits:
        raise BudgetError(f"{model} does not fit {gpu.name}: {p.warnings[-1]}. Would fit: "
                          f"{'; '.join(p.suggestions) or 'nothing in the catalogs'}.")
    c = p.config
    resolved = dataclasses.replace(
        config, model=model, dataset=dataset, gpu=gpu.key, backend=backend, generation=generation, budget_hours=hours, budget_usd=None,
        lora_rank=c["lora_rank"], lora_alpha=c["lora_alpha"], lora_target_modules=list(c["lora_target_modules"]),
        num_generations=c["num_generations"], prompts_per_step=p.shape.prompts_per_step,
        per_device_train_batch_size=c["per_device_train_batch_size"],
        gradient_accumulation_steps=c["gradient_accumulation_steps"], max_prompt_length=c["max_prompt_length"],
        max_completion_length=c["max_completion_length"], load_in_4bit=c["load_in_4bit"],
        vllm_gpu_memory_utilization=c["vllm_gpu_memory_utilization"] if generation == "vllm" else None,
        vllm_standby=c["vllm_standby"] if generation == "vllm" else False, optim=c["optim"],
        learning_rate=config.learning_rate or DEFAULT_LR,
        epsilon_high=config.epsilon_high if config.epsilon_high is not None else (0.28 if config.loss == "dapo" else None),
    )
    if resolved.output is None:
        resolved.output = str(Path("runs") / f"{slug(model)}-{slug(dataset)}-r{resolved.lora_rank}-s{resolved.seed}")
    output_folder(resolved.output)
    return ResolvedRun(config=resolved, plan=p, folder=RunFolder(resolved.output), backend=backend, gpu=gpu,
                       rewards=custom, generation=generation)


def _val_problems(cfg: RunConfig) -> int | None:
    """Problems per validation (the benchmark's size unless val_size_benchmark cuts it), or None without validation."""
    if not cfg.val_every:
        return None
    if cfg.val_size_benchmark:
        return cfg.val_size_benchmark
    from budgetreason.evaluate.benchmarks import get

    return get(cfg.val_benchmark).size or None


def val_every(run: ResolvedRun) -> int | None:
    """The validation cadence in steps: the config's, or for 'auto' the planner's (docs/training.md)."""
    v = run.config.val_every
    if v == "auto":
        return (run.plan.validation or {}).get("every") or 1
    return v


#: --report-to value → the module transformers needs for it (tensorboard also works through tensorboardX).
TRACKERS = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",)}


def _check_tracker(report_to: str) -> None:
    """--report-to X needs X installed; say so now rather than after the model has loaded."""
    from budgetreason.models.backends import installed

    modules = TRACKERS.get(report_to)
    if modules and not any(installed(m) for m in modules):
        raise BudgetError(f"--report-to {report_to} needs the {modules[0]} package: pip install {modules[0]} "
                          "(or pip install 'budgetreason[track]' for wandb, tensorboard and trackio), or --report-to none.")


def _identity(cfg: RunConfig) -> dict:
    ident = cfg.identity()
    # The micro-batch split may change (a retry after OOM, another GPU); the completions per step may not.
    ident["generation_batch_size"] = (cfg.per_device_train_batch_size or 0) * (cfg.gradient_accumulation_steps or 0)
    ident.pop("per_device_train_batch_size")
    ident.pop("gradient_accumulation_steps")
    return ident


def check_folder(run: ResolvedRun) -> ResolvedRun:
    """Same run in the folder: resume from its newest complete checkpoint. Another run: refuse or move aside."""
    folder = run.folder
    if not folder.exists():
        if not folder.is_empty():
            if not run.config.overwrite:
                raise BudgetError(f"{folder.path} exists and is not a budgetreason run folder; choose another "
                                  "--output or pass --overwrite (the folder is moved aside, not deleted).")
            run.notes.append(f"moved the old folder to {folder.move_aside()}")
        return run
    saved = RunConfig.from_yaml(folder.config)
    mine, theirs = _identity(run.config), _identity(saved)
    differ = [k for k in mine if mine[k] != theirs.get(k)]
    if differ and not run.config.overwrite:
        what = ", ".join(f"{k} {theirs.get(k)!r} → {mine[k]!r}" for k in differ[:3])
        raise BudgetError(f"{folder.path} holds a different run ({what}); use another --output, or --overwrite to "
                          "start afresh (the old folder is moved aside, not deleted).")
    if differ or not run.config.resume:
        run.notes.append(f"moved the old run to {folder.move_aside()}")
        return run
    # Same run: keep the saved shape (the planner may answer differently on another GPU) unless an OOM retry changes it.
    keep = {k: getattr(saved, k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps",
                                           "vllm_gpu_memory_utilization", "vllm_standby", "load_in_4bit",
                                           "max_completion_length")}
    run.config = dataclasses.replace(run.config, **keep)
    folder.tidy_adapter()  # an adapter swap a kill cut short: the last good adapter/ back, leftovers gone
    moved = folder.set_aside_incomplete()
    if moved:
        run.notes.append(f"set aside {len(moved)} incomplete checkpoint(s)")
    run.resume_from, failed = folder.newest_verified_checkpoint()
    if failed:
        names = ", ".join(name for name, _ in failed)
        run.notes.append(f"{names} failed verification ({failed[0][1]}) and moved to incomplete/; resuming from "
                         f"{run.resume_from.name if run.resume_from else 'the start (no checkpoint verifies)'}")
    return _finished_or_continued(run, saved)


@contextlib.contextmanager
def _locked_and_checked(run: ResolvedRun, wait: bool = False, console=None):
    """Lock the folder and check_folder it, rank 0 first; yields the checked run, holding the lock.

    Rank 0 takes the lock and checks (sets aside, moves, verifies); the other ranks then read the
    folder it left (same resume point), and rank 0 writes nothing more until they have read it.
    Each hand-over is a collective that carries any refusal (RunFolderBusy, another run in the folder,
    an unreadable config): every rank then stops with the same one-line error instead of waiting for
    a rank that left. A single process just locks and checks.
    """
    from budgetreason.runs.ranks import agreed_error

    with contextlib.ExitStack() as held:
        error = None
        if run.folder.writer:
            try:
                held.enter_context(run.folder.locked(wait=wait, console=console))
                run = check_folder(run)
            except Exception as e:  # whatever it is, the other ranks must hear of it
                error = e
        _raise_agreed(error, agreed_error(_start_error(error)))
        if not run.folder.writer:
            try:
                run = check_folder(run)
            except Exception as e:
                error = e
        _raise_agreed(error, agreed_error(_start_error(error)))
        yield run


def _start_error(error: BaseException | None) -> str | None:
    if error is None or isinstance(error, BudgetError):
        return None if error is None else str(error)
    from budgetreason.runs.ranks import rank

    first = (str(error).strip().splitlines() or [""])[0][:200]
    return f"trainer process {rank()} failed to start ({type(error).__name__}: {first})"


def _raise_agreed(mine: BaseException | None, agreed: str | None) -> None:
    """This rank's own error as it is (its traceback, if any, stays), else the one another rank had."""
    if mine is not None:
        raise mine
    if agreed is not None:
        raise BudgetError(agreed)


#: Stop reasons that end a run (the others, interrupted, terminated and stopped, ask to be resumed).
FINISHED = ("max_steps", "deadline", "end_of_data")


def _finished_or_continued(run: ResolvedRun, saved: RunConfig) -> ResolvedRun:
    """A run that already ended stays untouched unless the new budget allows more; then say it continues."""
    folder, cfg = run.folder, run.config
    step = int(json.loads((run.resume_from / BUDGET_STATE).read_text())["step"]) if run.resume_from else 0
    summary = json.loads(folder.summary.read_text()) if folder.summary.is_file() else {}
    reason = summary.get("stop_reason") if summary.get("steps") == step else None
    if cfg.max_steps is not None and step >= cfg.max_steps:
        reason = reason if reason in FINISHED else "max_steps"
    elif reason not in FINISHED:
        return run
    elapsed = float(summary.get("elapsed_s") or 0)
    more_steps = cfg.max_steps is None or cfg.max_steps > step
    if reason == "deadline":
        more_time = cfg.budget_hours is not None and (saved.budget_hours is None or cfg.budget_hours > saved.budget_hours)
    else:
        more_time = cfg.budget_hours is None or cfg.budget_hours * 3600 > elapsed
    # end_of_data: the passes num_train_epochs asked for are done; only a larger (or no) limit trains more
    more_epochs = saved.num_train_epochs is not None and (cfg.num_train_epochs is None
                                                         or cfg.num_train_epochs > saved.num_train_epochs)
    if (reason == "end_of_data" and not more_epochs) or not (more_steps and more_time):
        run.finished = RunResult(output=str(folder.path), steps=step, stop_reason=reason or "max_steps",
                                 elapsed_s=elapsed, final_metrics=summary.get("final_metrics", {}),
                                 warnings=[], nothing_to_do=True)
        return run
    limits = [f"--max-steps {cfg.max_steps}"] if cfg.max_steps else []
    limits += [f"--hours {cfg.budget_hours:g}"] if cfg.budget_hours else []
    limits += [f"num_train_epochs {cfg.num_train_epochs}"] if reason == "end_of_data" and cfg.num_train_epochs else []
    run.notes.append(f"continuing the run that finished at step {step} ({reason}) up to {' and '.join(limits)}")
    return run


def train_overrides_from_folder(path: str) -> dict:
    """`--resume DIR`: the saved config of DIR as the base, so the same run continues."""
    folder = RunFolder(path)
    if not folder.exists():
        raise BudgetError(f"--resume {path}: no budgetreason run there (config.yaml missing).")
    data = RunConfig.from_yaml(folder.config).to_dict()
    data["output"] = str(folder.path)
    return data


# ---- the run -------------------------------------------------------------------------------------------
def train(config: RunConfig | dict | str | None = None, *, callbacks: list | None = None, console=None,
          planned=None, wait: bool = False, **overrides) -> RunResult:
    """Train with GRPO on LoRA inside the budget; returns how the run ended.

    `config` is a RunConfig, a dict of its fields, a recipe name or a YAML path; keyword
    arguments override it (None leaves a setting to the planner). ``rewards`` takes a preset
    name or, as TRL's ``reward_funcs``, a list of your own reward functions (callables or
    'module:function' strings) with ``reward_weights``. Extra TrainerCallbacks may be passed
    (tests use this to inject faults). Re-running the same call resumes; a run that already
    finished is left as it is. The run folder is locked for the whole run: another process
    training in it makes this call fail at once, or (`wait`) wait for it.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    objects = {}
    if isinstance(overrides.get("rewards"), (list, tuple)):
        from budgetreason.train.custom_rewards import split_user_rewards

        overrides["reward_funcs"], objects = split_user_rewards(overrides.pop("rewards"))
    run = resolve(_user_config(config, overrides), reward_objects=objects, planned=planned)
    from budgetreason.plan.architectures import require_weights_reachable

    require_weights_reachable(run.config.model)
    with _locked_and_checked(run, wait=wait, console=console) as run:
        for note in run.notes:
            console.print(note, soft_wrap=True, markup=False)
        if run.finished is not None:
            return run.finished
        retries = 0
        while True:
            try:
                return _train_once(run, callbacks or [], console)
            except Exception as e:  # only out-of-memory errors are retried
                if not _is_oom(e) or retries >= run.config.oom_retries:
                    raise
                retries += 1
                run = _after_oom(run, e, retries, console)


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _is_disk_full(e: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain, or torch's serializer failing on a short write."""
    import errno

    from budgetreason.runs.folder import DiskFull

    while e is not None:
        if isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        text = str(e)
        if "No space left" in text or "unexpected pos" in text or "file write failed" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def _after_disk_full(folder: RunFolder, state, error: BaseException, step: int) -> BudgetError:
    """Delete the half-written checkpoint (useless, and it holds the space), record it, say so in one line."""
    import shutil

    from budgetreason.runs.folder import COMPLETE, DiskFull
    from budgetreason.train.callbacks import disk_full_message

    partial = [p for p in folder.checkpoints() if not (p / COMPLETE).is_file()] if folder.writer else []
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    for tmp in folder.path.glob("*.tmp") if folder.writer else []:
        tmp.unlink(missing_ok=True) if tmp.is_file() else shutil.rmtree(tmp, ignore_errors=True)
    free = shutil.disk_usage(folder.path).free
    message = str(error) if isinstance(error, DiskFull) else \
        disk_full_message(folder, free, state.checkpoint_bytes or 0)
    try:
        folder.event("disk_full", message, step=step, deleted=[p.name for p in partial],
                     error=str(error).splitlines()[0][:200] if str(error) else type(error).__name__)
    except OSError:
        pass  # still no room even for one line; the message below says it all
    return BudgetError(message)


def _after_oom(run: ResolvedRun, error: BaseException, attempt: int, console) -> ResolvedRun:
    """Record the OOM, step the planner down one notch that keeps checkpoints compatible, resume."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    cfg = run.config
    change = None
    if cfg.per_device_train_batch_size > 1:
        b = cfg.per_device_train_batch_size // 2
        while (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps) % b:
            b -= 1
        change = {"per_device_train_batch_size": b,
                  "gradient_accumulation_steps": cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps // b}
    elif cfg.vllm_gpu_memory_utilization and cfg.vllm_gpu_memory_utilization > 0.15:
        change = {"vllm_gpu_memory_utilization": round(cfg.vllm_gpu_memory_utilization * 0.8, 2)}
    elif run.generation == "vllm" and not cfg.vllm_standby:
        change = {"vllm_standby": True}
    elif cfg.max_completion_length > 1024:
        change = {"max_completion_length": cfg.max_completion_length - 512}
    if change is None:
        raise BudgetError(f"Out of GPU memory and nothing left to reduce without restarting the run: {error}") from None
    what = ", ".join(f"{k} {getattr(cfg, k)} → {v}" for k, v in change.items())
    message = f"out of memory ({str(error).splitlines()[0][:160]}); retry {attempt} from the last checkpoint with {what}"
    run.folder.event("oom", message, change=change)
    console.print(f"[red]{message}[/]")
    run.config = dataclasses.replace(cfg, **change)
    run.resume_from = run.folder.latest_complete_checkpoint()
    run.folder.set_aside_incomplete()
    return run


def _train_once(run: ResolvedRun, extra_callbacks: list, console) -> RunResult:
    from budgetreason.train.budget import SCHEDULE_FILE, BudgetClock, install_step_schedule
    from budgetreason.train.callbacks import (
        BudgetCallback,
        GracefulStop,
        HealthCallback,
        MetricsCallback,
        ProgressCallback,
        RunState,
        ScheduleCallback,
    )

    cfg, folder = run.config, run.folder
    loaded = _load_model(run)  # Unsloth (if used) is imported here, before TRL
    from budgetreason.train.compat import ensure_logprob_head

    ensure_logprob_head()
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from budgetreason.train.trainer_args import grpo_config

    prepared = _load_data(cfg, loaded.tokenizer)
    _check_enough_rows(cfg, prepared)
    from trl.trainer.utils import get_callable_name

    from budgetreason.rewards.functions import preset
    from budgetreason.train.custom_rewards import bind_template

    opens_think = _template_opens_think(loaded.tokenizer, prepared.train)
    rewards = bind_template(run.rewards, opens_think) if run.rewards else preset(cfg.rewards,
                                                                                   prompt_opens_think=opens_think)

    # Everything is validated: only now does the run folder get written (a failed start leaves it as it was).
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.write_text(folder.config, cfg.to_yaml())
    folder.write_json(folder.plan, run.plan.to_dict())
    spent, start_step = 0.0, 0
    if run.resume_from is not None:
        state = json.loads((run.resume_from / BUDGET_STATE).read_text())
        spent, start_step = float(state["elapsed_s"]), int(state["step"])
        folder.truncate_metrics(start_step)
        folder.event("resume", f"resuming from {run.resume_from.name} after {spent / 60:.1f} min", step=start_step)
    else:
        folder.truncate_metrics(0)
    for note in run.notes:
        folder.event("note", note)
    for line in prepared.report.skipped_lines():
        folder.event("data", line)
        console.print(f"[yellow]{line}[/]", soft_wrap=True)
    clock = BudgetClock(budget_s=cfg.budget_hours * 3600 if cfg.budget_hours else None,
                        max_steps=cfg.max_steps, spent_before_s=spent)
    horizon = _horizon(run)
    folder.write_json(folder.path / SCHEDULE_FILE, horizon.to_dict())
    state = RunState(folder=folder, clock=clock, save_minutes=cfg.save_minutes,
                     save_total_limit=cfg.save_total_limit, console=console, epochs=cfg.num_train_epochs)
    from budgetreason.plan.planner import VAL_SHARE

    reserve = VAL_SHARE if cfg.val_every else 0.0  # validation time is not in the measured step time
    cbs = [BudgetCallback(state), ScheduleCallback(state, horizon, folder.path / SCHEDULE_FILE, reserve=reserve),
           MetricsCallback(state, [get_callable_name(f) for f in rewards.funcs]),
           HealthCallback(state, console=console)]
    if cfg.progress:
        cbs.append(ProgressCallback(state, cfg.max_steps, console=console))
    validation = None
    if cfg.val_every:
        from budgetreason.train.validation import ValidationCallback

        # Validation generates with the training run's engine: vLLM's, or transformers' generate.
        validation = ValidationCallback(state, cfg, loaded.tokenizer, run.backend if run.generation == "vllm" else "hf",
                                        every=val_every(run))
        cbs.append(validation)
    trainer = GRPOTrainer(model=loaded.model, reward_funcs=list(rewards.funcs), args=grpo_config(run, rewards),
                          train_dataset=prepared.train, processing_class=loaded.tokenizer,
                          peft_config=loaded.peft_config, callbacks=cbs + list(extra_callbacks))
    trainer.remove_callback(PrinterCallback)
    # TRL writes its auto card ("a fine-tuned version of [None]") into the run folder at every checkpoint;
    # the run folder is budgetreason's, and `budgetreason push` writes the real card from its files.
    trainer.create_model_card = _no_model_card
    if validation is not None:
        validation.trainer = trainer
    install_step_schedule(trainer, horizon)
    folder.event("start", f"training {cfg.model} on {cfg.dataset} with {run.backend} on {run.gpu.name}",
                 step=start_step)
    console.print(describe_shape(cfg, horizon))
    with GracefulStop(state, console=console):
        try:
            trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
        except Exception as e:
            if not _is_disk_full(e):
                raise
            raise _after_disk_full(folder, state, e, trainer.state.global_step) from None
    reason = state.stop_reason or _plain_stop_reason(cfg, trainer.state)
    try:
        _save_adapter(trainer, loaded.tokenizer, folder)
    except Exception as e:
        if not _is_disk_full(e):
            raise
        raise _after_disk_full(folder, state, e, trainer.state.global_step) from None
    rows = folder.read_metrics()
    result = RunResult(output=str(folder.path), steps=trainer.state.global_step, stop_reason=reason,
                       elapsed_s=round(clock.elapsed(), 1), final_metrics=rows[-1] if rows else {},
                       warnings=state.warnings)
    summary = result.to_dict() | {"model": cfg.model, "dataset": cfg.dataset, "backend": run.backend,
                                  "gpu": run.gpu.name, "data": prepared.report.summary(),
                                  "cost_usd": _cost(run, clock.elapsed()), "epochs": round(trainer.state.epoch or 0.0, 4),
                                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    folder.write_json(folder.summary, summary)
    folder.event("stop", f"stopped: {reason} at step {result.steps}", step=result.steps)
    if reason in ("interrupted", "terminated"):
        raise KeyboardInterrupt(f"stopped on request; checkpoint saved in {folder.path}")
    return result


def _plain_stop_reason(cfg: RunConfig, trainer_state) -> str:
    """Why training ended when no budget callback stopped it (num_train_epochs stops as end_of_data there).

    Only a run that reached its step limit or its data's end has finished; one stopped earlier by another
    callback (a user's, a notebook's) is 'stopped' and resumes on the next start, as a preempted run does.
    """
    step = trainer_state.global_step
    if cfg.max_steps and step >= cfg.max_steps:
        return "max_steps"
    if trainer_state.max_steps and step < trainer_state.max_steps:
        return "stopped"
    return "end_of_data"


def _horizon(run: ResolvedRun):
    """The schedule's horizon: the saved one on resume, else schedule_steps, max_steps or the planner's estimate."""
    from budgetreason.train.budget import SCHEDULE_FILE, Horizon

    saved = run.folder.path / SCHEDULE_FILE
    if run.resume_from is not None and saved.is_file():
        return Horizon.from_dict(json.loads(saved.read_text()))
    cfg = run.config
    if cfg.schedule_steps:
        steps, source = cfg.schedule_steps, "schedule_steps"
    elif cfg.max_steps:
        steps, source = cfg.max_steps, "max_steps"
    else:
        steps, source = max(1, run.plan.est_steps), "planner"
    return Horizon(steps=steps, warmup_ratio=cfg.warmup_ratio, min_lr_ratio=cfg.min_lr_ratio, kind=cfg.lr_scheduler,
                   source=source, final=source != "planner")


def describe_shape(cfg: RunConfig, horizon=None) -> str:
    """One line with what a reader checks first: LoRA scale α/r, prompts per step and its split, the schedule."""
    line = (f"LoRA rank {cfg.lora_rank}, alpha {cfg.lora_alpha} (α/r {cfg.lora_alpha / cfg.lora_rank:g}); "
            f"{cfg.prompts_per_step} prompts × k {cfg.num_generations} per step "
            f"(micro-batch {cfg.per_device_train_batch_size} × {cfg.gradient_accumulation_steps})")
    if horizon is not None:
        line += (f"; lr {cfg.learning_rate:g}, {horizon.kind} over {horizon.steps} steps ({horizon.source}), "
                 f"warm-up {horizon.warmup_steps}")
    return line


def _check_enough_rows(cfg: RunConfig, prepared) -> None:
    """One optimizer step samples batch × accumulation / k distinct prompts; fewer rows train nothing."""
    completions = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    need = completions // cfg.num_generations
    have = len(prepared.train)
    if have < need:
        raise BudgetError(f"{prepared.report.source}: {have} training rows, but one optimizer step needs {need} "
                          f"prompts ({completions} completions per step / {cfg.num_generations} per prompt); "
                          "add rows, or lower --batch/--grad-accum.")


def _no_model_card(*args, **kwargs) -> None:
    """Stands in for Trainer.create_model_card on budgetreason's trainers."""


def _template_opens_think(tokenizer, dataset) -> bool:
    """Whether the chat template ends the generation prompt with <think> (DeepSeek-R1 distills do)."""
    from budgetreason.evaluate.generation import template_opens_think

    if len(dataset) == 0:
        return False
    return template_opens_think(tokenizer, dataset[0]["prompt"])


def _cost(run: ResolvedRun, elapsed_s: float) -> float | None:
    price = run.gpu.price_usd_hr
    return None if price is None or not run.gpu.is_cuda else round(price * elapsed_s / 3600, 2)


def _load_model(run: ResolvedRun):
    cfg = run.config
    lora = {"r": cfg.lora_rank, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
            "target_modules": cfg.lora_target_modules}
    dtype = run.plan.config["dtype"]
    if run.backend == "unsloth":
        from budgetreason.models.backends import unsloth_backend

        return unsloth_backend.load(cfg.model, dtype=dtype, load_in_4bit=cfg.load_in_4bit, lora=lora, seed=cfg.seed,
                                    max_seq_length=cfg.max_prompt_length + cfg.max_completion_length,
                                    gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, standby=cfg.vllm_standby,
                                    fast_inference=run.generation == "vllm")
    from budgetreason.models.backends import hf

    return hf.load(cfg.model, dtype=dtype, load_in_4bit=cfg.load_in_4bit, lora=lora, seed=cfg.seed)


def _load_data(cfg: RunConfig, tokenizer):
    from budgetreason.data.datasets import load_dataset_recipe

    return load_dataset_recipe(cfg.dataset, data_files=cfg.data_path, problem_column=cfg.problem_column,
                               answer_column=cfg.answer_column, split=cfg.split, config=cfg.dataset_config,
                               seed=cfg.seed, val_size=cfg.val_size,
                               max_prompt_length=cfg.max_prompt_length, tokenizer=tokenizer, limit=cfg.dataset_limit,
                               long_prompts=cfg.long_prompts, drop_duplicates=cfg.drop_duplicates)


def _save_adapter(trainer, tokenizer, folder: RunFolder) -> None:
    """The final LoRA adapter and tokenizer in adapter/, written beside and renamed into place."""
    import shutil

    if not folder.writer:  # rank 0 saves the adapter (ZeRO-2/DDP keep the same LoRA weights on every rank)
        return
    tmp = folder.path / "adapter.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    folder.install_adapter(tmp)
