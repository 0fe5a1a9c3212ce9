"""``export verl``: a budgetreason run or recipe as a verl GRPO job (the micro-budget paper's engine).

Three things come out, in the layout verl's docs ask for (docs/preparation/prepare_data.rst and
reward_function.rst, verl 0.9): the dataset as parquet rows of ``data_source``, ``prompt`` (chat
messages), ``ability``, ``reward_model`` {``style``: rule, ``ground_truth``} and ``extra_info``;
a reward module whose ``compute_score(data_source, solution_str, ground_truth, extra_info)``
calls budgetreason's rewards (so Math-Verify judges as in training); and the run's settings as
Hydra overrides of verl's ``ppo_trainer`` config with the ``python3 -m verl.trainer.main_ppo``
command. Every override key exists in verl's config (tests check them against verl's own
generated config); settings with no verl counterpart are listed in the export's notes and in
docs/scale-out.md.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.train.config import RunConfig, slug

#: verl version whose config keys the export writes (checked against its _generated_ppo_trainer.yaml).
VERL_VERSION = "0.9"
#: TRL loss_type → verl actor.loss_agg_mode (verl/trainer/ppo/core_algos.py ``agg_loss``):
#: grpo normalises each sequence by its length then averages sequences; dr_grpo sums tokens over a
#: constant length; dapo averages over all tokens of the batch.
LOSS_AGG_MODE = {"grpo": "seq-mean-token-mean", "dr_grpo": "seq-mean-token-sum-norm", "dapo": "token-mean",
                 "bnpo": "token-mean"}

REWARD_MODULE = '''"""verl reward for a budgetreason export: {describe}.

verl calls compute_score once per response with the decoded response (prompt excluded) and the
row's reward_model.ground_truth; budgetreason's rewards judge it with Math-Verify as in training.
Needs budgetreason installed where verl's reward workers run (pip install budgetreason).
"""

from budgetreason.rewards.functions import accuracy_reward, preset

#: Whether the chat template ends the prompt with <think> (DeepSeek-R1 distills): the format reward
#: then judges the response as if it opened with it. Read from the tokenizer at export time.
PROMPT_OPENS_THINK = {opens!r}
#: The run's own rewards (module:function specs) and weights, or none for the preset.
SPECS, SPEC_WEIGHTS = {specs!r}, {weights!r}
if SPECS:
    from budgetreason.train.custom_rewards import load_reward

    FUNCS, WEIGHTS = [load_reward(s) for s in SPECS], SPEC_WEIGHTS or [1.0] * len(SPECS)
else:
    _preset = preset({preset!r}, prompt_opens_think=PROMPT_OPENS_THINK)
    FUNCS, WEIGHTS = _preset.funcs, _preset.weights


def _score(fn, solution_str, ground_truth):
    return fn([solution_str], solution=[ground_truth])[0]


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """The run's weighted reward for one response: sum(weight * reward), as TRL sums reward_weights.

    A reward that could not judge (None) is left out of the sum, as TRL's nansum does; verl needs
    a number, so a response no reward judged scores 0.0.
    """
    scores = [(w, _score(f, solution_str, ground_truth)) for f, w in zip(FUNCS, WEIGHTS)]
    return float(sum(w * s for w, s in scores if s is not None))


def accuracy(data_source, solution_str, ground_truth, extra_info=None):
    """budgetreason's accuracy reward alone (custom_reward_function.name=accuracy); None becomes 0.0."""
    score = _score(accuracy_reward, solution_str, ground_truth)
    return 0.0 if score is None else float(score)
'''


@dataclass
class VerlExport:
    """What ``export verl`` wrote and the command that launches it."""

    output: Path
    files: list[Path]
    overrides: list[str]
    command: list[str]
    rows: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def shell_command(self) -> str:
        return " \\\n    ".join([shlex.join(self.command[:3])] + [shlex.quote(o) for o in self.overrides])


def _load_config(source: str, overrides: dict) -> tuple[RunConfig, dict | None]:
    """A run folder's config.yaml and plan.json, or a recipe / YAML file (with CLI overrides)."""
    from budgetreason.train.training import _user_config

    folder = Path(source)
    if (folder / "config.yaml").is_file():
        cfg = RunConfig.from_yaml(folder / "config.yaml").merged(**overrides)
        plan = folder / "plan.json"
        return cfg, json.loads(plan.read_text()) if plan.is_file() else None
    if folder.is_dir():
        raise BudgetError(f"{source} is a folder without config.yaml: not a budgetreason run folder.")
    return _user_config(source, overrides), None


def _shape(cfg: RunConfig, plan: dict | None, notes: list[str]):
    """The GRPO shape: the config's values, then the plan's, then the planner's target (noted)."""
    from budgetreason.plan.planner import MAX_PROMPTS_PER_STEP, TARGET

    p = (plan or {}).get("config", {})
    out = {}
    for name in ("lora_rank", "lora_alpha", "num_generations", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "max_prompt_length", "max_completion_length", "lora_target_modules"):
        value = getattr(cfg, name)
        if value is None:
            value = p.get(name)
        if value is None:
            value = getattr(TARGET, name)
            if name == "lora_alpha" and cfg.lora_rank:
                value = 4 * cfg.lora_rank
            notes.append(f"{name} not set by the run or recipe: the planner's target {value!r} is used")
        out[name] = list(value) if isinstance(value, tuple) else value
    if isinstance(out["lora_target_modules"], str):
        from budgetreason.plan.architectures import parse_targets

        out["lora_target_modules"] = list(parse_targets(out["lora_target_modules"]))
    generation = out["per_device_train_batch_size"] * out["gradient_accumulation_steps"]
    given = cfg.per_device_train_batch_size and cfg.gradient_accumulation_steps or plan
    out["prompts_per_step"] = (getattr(cfg, "prompts_per_step", None) or (plan or {}).get("prompts_per_step")
                               or (generation // out["num_generations"] if given else None))
    if out["prompts_per_step"] is None:
        out["prompts_per_step"] = MAX_PROMPTS_PER_STEP
        notes.append(f"prompts per step not fixed by the recipe: {MAX_PROMPTS_PER_STEP} (the planner's cap)")
    return out


def overrides_for(cfg: RunConfig, shape: dict, *, train_file: str, val_file: str, reward_file: str,
                  gpus: int, total_steps: int | None, checkpoint_dir: str, notes: list[str]) -> list[str]:
    """The run's settings as verl Hydra overrides (``key=value``), one to one where verl has the setting."""
    beta = cfg.beta or 0.0
    o: dict[str, object] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": _scale(cfg) != "none",  # TRL scale_rewards group (or none)
        "algorithm.use_kl_in_reward": False,
        "data.train_files": train_file,
        "data.val_files": val_file,
        "data.prompt_key": "prompt",
        "data.train_batch_size": shape["prompts_per_step"],
        "data.max_prompt_length": shape["max_prompt_length"],
        "data.max_response_length": shape["max_completion_length"],
        # long_prompts drop: verl filters them out before training (and 'error' then never fires);
        # truncate_left: verl keeps the last max_prompt_length tokens, as Tina's prompt_ids[:, -512:]
        "data.filter_overlong_prompts": cfg.long_prompts != "truncate_left",
        "data.truncation": "left" if cfg.long_prompts == "truncate_left" else "error",
        "data.seed": cfg.seed,
        "actor_rollout_ref.model.path": cfg.model,
        "actor_rollout_ref.model.lora_rank": shape["lora_rank"],
        "actor_rollout_ref.model.lora_alpha": shape["lora_alpha"],
        "actor_rollout_ref.model.target_modules": "[" + ",".join(shape["lora_target_modules"]) + "]",
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.optim.lr": cfg.learning_rate or 1e-6,
        "actor_rollout_ref.actor.optim.weight_decay": getattr(cfg, "weight_decay", 0.0),
        "actor_rollout_ref.actor.optim.lr_scheduler_type": "constant" if getattr(cfg, "lr_scheduler", "") == "constant"
        else "cosine",
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio": cfg.warmup_ratio,
        "actor_rollout_ref.actor.optim.min_lr_ratio": cfg.min_lr_ratio,
        "actor_rollout_ref.actor.optim.clip_grad": cfg.max_grad_norm,
        "actor_rollout_ref.actor.ppo_mini_batch_size": shape["prompts_per_step"],  # one update per step (TRL num_iterations=1)
        "actor_rollout_ref.actor.ppo_epochs": 1,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": shape["per_device_train_batch_size"],
        "actor_rollout_ref.actor.loss_agg_mode": LOSS_AGG_MODE[cfg.loss],
        "actor_rollout_ref.actor.clip_ratio_low": cfg.epsilon,
        "actor_rollout_ref.actor.clip_ratio_high": cfg.epsilon_high or (0.28 if cfg.loss == "dapo" else cfg.epsilon),
        "actor_rollout_ref.actor.use_kl_loss": beta > 0,
        "actor_rollout_ref.actor.kl_loss_coef": beta,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",  # k3, TRL's per-token KL estimator
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": shape["num_generations"],
        "actor_rollout_ref.rollout.temperature": cfg.temperature,
        "actor_rollout_ref.rollout.top_p": cfg.top_p,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": shape["per_device_train_batch_size"],
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": shape["per_device_train_batch_size"],
        "reward.custom_reward_function.path": reward_file,
        "reward.custom_reward_function.name": "compute_score",
        "trainer.critic_warmup": 0,
        "trainer.n_gpus_per_node": gpus,
        "trainer.nnodes": 1,
        "trainer.logger": "[console" + ("" if cfg.report_to == "none" else f",{cfg.report_to}") + "]",
        "trainer.project_name": "budgetreason",
        "trainer.experiment_name": slug(cfg.output or f"{cfg.model}-{cfg.dataset}"),
        "trainer.default_local_dir": checkpoint_dir,
        "trainer.val_before_train": False,
        "trainer.test_freq": -1,
        "trainer.save_freq": cfg.save_steps or -1,
    }
    if cfg.vllm_gpu_memory_utilization:
        o["actor_rollout_ref.rollout.gpu_memory_utilization"] = cfg.vllm_gpu_memory_utilization
    if total_steps:
        o["trainer.total_training_steps"] = total_steps
    if cfg.loss == "dr_grpo":
        o["actor_rollout_ref.actor.loss_scale_factor"] = shape["max_completion_length"]  # Dr. GRPO's constant
    notes.extend(_unmapped(cfg, total_steps))
    return [f"{k}={_value(v)}" for k, v in o.items()]


def _scale(cfg: RunConfig) -> str:
    """TRL's scale_rewards as the run means it: None is none for dr_grpo, else group."""
    return getattr(cfg, "scale_rewards", None) or ("none" if cfg.loss == "dr_grpo" else "group")


def _value(v) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    return str(v)


def _unmapped(cfg: RunConfig, total_steps: int | None) -> list[str]:
    """Settings with no verl counterpart (or only an approximate one), in one line each."""
    out = []
    if cfg.long_prompts == "truncate_left":
        out.append("long_prompts truncate_left: data.truncation=left keeps the last max_prompt_length tokens of the "
                   "rendered prompt, as Tina's trainer does; budgetreason cuts the problem text and keeps the template")
    if cfg.budget_hours and not cfg.max_steps:
        out.append(f"budget_hours {cfg.budget_hours:g}: verl stops by steps, not time; "
                   + (f"trainer.total_training_steps={total_steps} is the plan's estimate" if total_steps
                      else "set trainer.total_training_steps (or trainer.total_epochs)"))
    horizon = getattr(cfg, "schedule_steps", None)
    if horizon and horizon != cfg.max_steps:
        out.append(f"schedule_steps {horizon}: verl's schedule spans trainer.total_training_steps, which is also where "
                   f"it stops ({total_steps}); there is no separate horizon")
    elif not horizon and not cfg.max_steps:
        out.append("the learning-rate schedule: budgetreason's horizon comes from the time budget, verl's from "
                   "trainer.total_training_steps (same warm-up ratio, cosine and floor)")
    if _scale(cfg) == "batch":
        out.append("scale_rewards batch: verl's GRPO divides by the group's std (norm_adv_by_std_in_grpo) or not at all")
    if cfg.loss == "bnpo":
        out.append("loss bnpo: verl's token-mean averages over the mini-batch, TRL's bnpo over each micro-batch")
    for name in ("vllm_importance_sampling_correction", "use_bias_correction_kl"):
        if getattr(cfg, name, False):
            out.append(f"{name}: TRL 1.15's, not exported (verl has its own algorithm.rollout_correction)")
    if cfg.lora_dropout:
        out.append(f"lora_dropout {cfg.lora_dropout:g}: verl's FSDP actor has no LoRA dropout setting "
                   "(actor_rollout_ref.model.lora.dropout is the Megatron backend's)")
    if cfg.load_in_4bit:
        out.append("load_in_4bit: verl's FSDP actor trains 16-bit base weights (no QLoRA)")
    if cfg.optim == "adamw_8bit":
        out.append("optim adamw_8bit: verl's actor uses torch.optim.AdamW")
    if cfg.vllm_standby:
        out.append("vllm_standby: verl's hybrid engine frees vLLM's memory between phases on its own "
                   "(rollout.free_cache_engine)")
    out.append(f"save_minutes {cfg.save_minutes:g}: verl saves every trainer.save_freq steps"
               + ("" if cfg.save_steps else " (-1: at the end only)"))
    if cfg.val_every:
        out.append("validation during training: export the benchmark as parquet and set data.val_files, "
                   "trainer.test_freq")
    if cfg.oom_retries:
        out.append("oom_retries: verl has no retry with a smaller micro-batch")
    return out


def _opens_think(model: str) -> bool | None:
    """Whether the model's chat template opens <think> in the prompt; None when the tokenizer is not at hand."""
    try:
        from transformers import AutoTokenizer

        from budgetreason.models.backends import model_path

        tok = AutoTokenizer.from_pretrained(model_path(model))
    except Exception:  # offline, or not a model we can read: the reward module says how to set it
        return None
    if not getattr(tok, "chat_template", None):
        return False
    text = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], add_generation_prompt=True, tokenize=False)
    return text.rstrip().endswith("<think>")


def verl_rows(rows: list[dict], data_source: str, split: str) -> list[dict]:
    """budgetreason's normalised rows (prompt messages, solution) as verl's five fields."""
    out = []
    for i, r in enumerate(rows):
        problem = next((m["content"] for m in r["prompt"] if m["role"] == "user"), "")
        out.append({"data_source": data_source, "prompt": r["prompt"], "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": str(r["solution"])},
                    "extra_info": {"split": split, "index": i, "problem": problem}})
    return out


def export(source: str, output: str | None = None, *, gpus: int = 1, **overrides) -> VerlExport:
    """Write the verl job for a run folder or recipe into `output` (default: exports/verl-<name>).

    `overrides` are RunConfig fields (the CLI's --data, --model...). Nothing is overwritten: an
    existing non-empty output folder is refused.
    """
    from budgetreason.data.datasets import load_dataset_recipe

    if gpus < 1:
        raise BudgetError(f"--gpus must be at least 1, got {gpus}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg, plan = _load_config(source, overrides)
    if cfg.model is None:
        raise BudgetError("The recipe names no model; pass --model.")
    dataset = cfg.dataset or ("arith" if cfg.model == "tiny-arith" else "open-rs")
    out = Path(output or Path("exports") / f"verl-{slug(Path(source).name)}")
    if out.exists() and any(out.iterdir()):
        raise BudgetError(f"{out} exists and is not empty; choose another --output (nothing was overwritten).")
    notes: list[str] = []
    shape = _shape(cfg, plan, notes)
    per_gpu = shape["prompts_per_step"] * shape["num_generations"] // gpus
    if (shape["prompts_per_step"] * shape["num_generations"]) % gpus:
        raise BudgetError(f"{shape['prompts_per_step']} prompts × k={shape['num_generations']} do not split over "
                          f"{gpus} GPUs; choose --gpus that divides {shape['prompts_per_step'] * shape['num_generations']}.")
    while per_gpu % shape["per_device_train_batch_size"]:  # verl: each GPU's share is whole micro-batches
        shape["per_device_train_batch_size"] -= 1
    kwargs = dict(data_files=cfg.data_path, problem_column=cfg.problem_column, answer_column=cfg.answer_column,
                  seed=cfg.seed, val_size=cfg.val_size, limit=cfg.dataset_limit)
    for name, field_name in (("config", "dataset_config"), ("split", "split")):  # a hub dataset's subset and split
        value = getattr(cfg, field_name, None)
        if value is not None:
            kwargs[name] = value
    prepared = load_dataset_recipe(dataset, **kwargs)
    if cfg.long_prompts == "drop":
        notes.append("prompts longer than max_prompt_length are dropped by verl (data.filter_overlong_prompts), "
                     "as budgetreason drops them")

    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    source_name = f"budgetreason/{dataset}"
    files, rows = [], {}
    for split, part in (("train", prepared.train), ("val", prepared.val)):
        if part is None or len(part) == 0:
            continue
        path = out / f"{split}.parquet"
        data = verl_rows(list(part), source_name, split)
        pq.write_table(pa.Table.from_pylist(data), path)
        files.append(path)
        rows[split] = len(data)
    opens = _opens_think(cfg.model)
    if opens is None:
        notes.append(f"could not read {cfg.model}'s chat template here: set PROMPT_OPENS_THINK in reward.py "
                     "(True for the DeepSeek-R1 distills, whose template ends the prompt with <think>)")
    from budgetreason.rewards.functions import preset

    specs = list(getattr(cfg, "reward_funcs", None) or [])
    weights = list(getattr(cfg, "reward_weights", None) or [])
    describe = (" + ".join(f"{w:g}·{s}" for s, w in zip(specs, weights or [1.0] * len(specs))) if specs
                else f"the {cfg.rewards} preset ({preset(cfg.rewards).describe()})")
    if specs:
        notes.append("your reward functions get the response and the gold answer only (verl passes no other "
                     "dataset columns; extra_info holds split, index and problem)")
    reward = out / "reward.py"
    reward.write_text(REWARD_MODULE.format(preset=cfg.rewards, describe=describe, opens=opens, specs=specs,
                                           weights=weights))
    files.append(reward)
    total_steps = cfg.max_steps or (plan or {}).get("est_steps")
    val = out / ("val.parquet" if "val" in rows else "train.parquet")
    ov = overrides_for(cfg, shape, train_file=str((out / "train.parquet").resolve()), val_file=str(val.resolve()),
                       reward_file=str(reward.resolve()), gpus=gpus, total_steps=total_steps,
                       checkpoint_dir=str((out / "checkpoints").resolve()), notes=notes)
    command = ["python3", "-m", "verl.trainer.main_ppo", *ov]
    result = VerlExport(output=out, files=files, overrides=ov, command=command, rows=rows, notes=notes)
    import yaml

    (out / "overrides.yaml").write_text(yaml.safe_dump({"verl": VERL_VERSION, "overrides": ov, "notes": notes},
                                                       sort_keys=False, allow_unicode=True))
    launch = out / "launch.sh"
    launch.write_text("#!/usr/bin/env bash\n# verl GRPO job exported by budgetreason (verl "
                      f"{VERL_VERSION}); extra key=value arguments override.\nset -euo pipefail\n"
                      + result.shell_command() + ' \\\n    "$@"\n')
    os.chmod(launch, 0o755)
    files += [out / "overrides.yaml", launch]
    return result
