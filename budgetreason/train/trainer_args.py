"""The one translation from budgetreason's run configuration to TRL's ``GRPOConfig``."""

from __future__ import annotations

#: Trainer needs a step count; with a time budget the BudgetCallback ends the run, so the
#: count only has to be larger than any budget allows.
UNBOUNDED_STEPS = 10**7


def check_extra(extra: dict) -> None:
    """Refuse `extra:` keys that are not GRPOConfig fields (before any model loads)."""
    import dataclasses
    import difflib

    import trl
    from trl import GRPOConfig

    from budgetreason.errors import BudgetError

    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(extra) - known)
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        hint = "; ".join(f"{u} → did you mean {c[0]}?" for u, c in close.items() if c)
        raise BudgetError(f"extra: {', '.join(unknown)} not a GRPOConfig field in TRL {trl.__version__}"
                          f"{' (' + hint + ')' if hint else ''}; fix or remove it.")


def grpo_config(run, rewards):
    """GRPOConfig for a resolved run. Every GRPO setting is passed explicitly: TRL's defaults moved
    between releases (loss, beta, scaling, learning rate), and a run must mean what its config says."""
    from trl import GRPOConfig

    cfg, gpu = run.config, run.gpu
    cuda = gpu.is_cuda
    kwargs = dict(
        output_dir=str(run.folder.path),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        max_steps=cfg.max_steps or UNBOUNDED_STEPS,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",  # replaced by the step schedule over the run's horizon (budgetreason.train.budget)
        warmup_steps=0,
        optim=cfg.optim or "adamw_torch",
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        loss_type=cfg.loss,
        scale_rewards=scale_rewards(cfg),
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        num_iterations=1,
        reward_weights=list(rewards.weights),
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps or UNBOUNDED_STEPS,
        save_total_limit=cfg.save_total_limit,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda and gpu.bf16,
        fp16=cuda and not gpu.bf16,
        gradient_checkpointing=cuda,
        remove_unused_columns=False,
        shuffle_dataset=True,
        dataloader_num_workers=0,
        log_completions=False,
        use_bias_correction_kl=cfg.use_bias_correction_kl,
        vllm_importance_sampling_correction=cfg.vllm_importance_sampling_correction,
        vllm_importance_sampling_mode=cfg.vllm_importance_sampling_mode,
        vllm_importance_sampling_clip_max=cfg.vllm_importance_sampling_clip_max,
    )
    if run.backend in ("unsloth", "trl") and getattr(run, "generation", "vllm") == "vllm":
        kwargs.update(use_vllm=True, vllm_mode="colocate",
                      vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                      vllm_max_model_length=cfg.max_prompt_length + cfg.max_completion_length)
        if run.backend == "trl":
            kwargs["vllm_enable_sleep_mode"] = bool(cfg.vllm_standby)
    else:  # transformers' generate (under Unsloth's inference patches on the unsloth back-end)
        kwargs["use_vllm"] = False
    if cuda:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    kwargs.update(cfg.extra)
    return GRPOConfig(**kwargs)


def scale_rewards(cfg) -> str:
    """The advantage scaling: the config's, or none for dr_grpo and the group std otherwise."""
    if cfg.scale_rewards is not None:
        return cfg.scale_rewards
    return "none" if cfg.loss == "dr_grpo" else "group"
