"""One typed run configuration for YAML files, CLI flags and notebook parameters.

``RunConfig`` holds what the user asked for; settings left as ``None`` are filled from the
planner (``resolve``), and the resolved copy is written to the run folder as config.yaml.
The translation to TRL's ``GRPOConfig`` lives in one function in budgetreason.train.trainer_args.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from budgetreason.errors import BudgetError

LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
LONG_PROMPTS = ("drop", "truncate_left")
IS_MODES = ("sequence_mask", "sequence_truncate", "token_mask", "token_truncate")
REPORT_TO = ("none", "wandb", "tensorboard", "trackio")
#: Fields that define what is trained. A run folder whose config differs in any of these is a
#: different run; the others (budget, checkpoint cadence, logging) may change on resume.
IDENTITY_FIELDS = (
    "model", "dataset", "dataset_config", "split", "data_path", "problem_column", "answer_column", "rewards", "reward_funcs", "reward_weights",
    "loss", "learning_rate",
    "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "num_generations",
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_prompt_length", "beta", "epsilon",
    "epsilon_high", "temperature", "top_p", "seed", "warmup_ratio", "min_lr_ratio", "val_size", "lr_scheduler",
    "schedule_steps", "weight_decay", "scale_rewards", "long_prompts", "drop_duplicates", "vllm_importance_sampling_correction",
    "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max", "use_bias_correction_kl",
)


#: Why validation during training is refused with --gpus (TRL's server mode has no engine in the trainers).
SERVER_MODE_VALIDATION = ("validation during training samples on the trainer's colocated vLLM engine, but with --gpus N "
                          "TRL generates on its vLLM server; drop --val-every (val_every in the config) and evaluate "
                          "the run's checkpoints with `budgetreason eval`.")


@dataclass
class RunConfig:
    """Everything a training run needs. ``None`` means: let the planner (or the backend) decide."""

    # --- what to train
    model: str | None = None
    """Catalog model, hub id, local folder, or 'tiny-arith' (default without a GPU)."""
    dataset: str | None = None
    """Recipe name (see `budgetreason recipes`), a hub dataset id (org/name) or a local file; default 'arith' for
    tiny-arith, else 'open-rs'."""
    dataset_config: str | None = None
    """Configuration (subset) of a hub dataset, e.g. 'main' for openai/gsm8k (--dataset-config)."""
    split: str | None = None
    """Split to train on: default the recipe's, else 'train' (--split)."""
    data_path: str | None = None
    """A local copy of the recipe's data in the hub's shape (--data)."""
    problem_column: str | None = None
    answer_column: str | None = None
    dataset_limit: int | None = None
    """Use only the first N rows after shuffling (quick trials)."""
    val_size: int | float = 0
    """Held-out rows of the training data kept out of training (a count, or a fraction below 1; not the
    validation benchmark)."""
    long_prompts: str = "drop"
    """Prompts over max_prompt_length: drop them (budgetreason's rule) or keep their last tokens (Tina's)."""
    drop_duplicates: bool = True
    """Drop repeated problems (budgetreason's rule; neither paper's trainer did)."""
    rewards: str = "micro_budget"
    """Reward preset: micro_budget (0.2·format + accuracy), tina, tina_cosine."""
    reward_funcs: list[str] = field(default_factory=list)
    """Your own rewards as 'module:function' (or a built-in name); when given they replace the preset."""
    reward_weights: list[float] | None = None
    """Weights of reward_funcs, one each (default 1 each)."""

    # --- where and how long
    gpu: str = "auto"
    """GPU key, 'auto' or 'cpu'."""
    vram_gb: float | None = None
    backend: str = "auto"
    """auto (unsloth on a CUDA GPU when installed, else hf), unsloth, trl, hf."""
    generation: str = "auto"
    """How completions are generated: auto, vllm or hf (transformers' generate; on the unsloth back-end
    under Unsloth's patches, fast_inference=False). auto: vLLM where installed."""
    budget_hours: float | None = None
    """Wall-clock budget in hours; training stops before it with time left to save."""
    budget_usd: float | None = None
    """A budget in dollars, converted to hours with the GPU's catalog price."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (whichever of steps and budget ends first)."""
    num_train_epochs: int | None = None
    """Stop after this many passes over the training prompts (stop_reason end_of_data), whichever of steps,
    budget and epochs ends first; None: no limit, so a budget loops over a small dataset (each pass is an
    `epoch` event). No shipped recipe sets it: Tina's Table 5 says 1 epoch, but its runs stopped on max_steps
    (Appendix D: LIMR checkpoints at step 200 of 174 per epoch), as transformers' max_steps overrides epochs."""

    # --- LoRA and GRPO shape (None: the planner's choice)
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | str | None = None
    num_generations: int | None = None
    prompts_per_step: int | None = None
    """Prompts per optimizer step (completions ÷ k). A recipe pins it and the planner only splits it into
    micro-batch × accumulation; None lets the planner choose."""
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    max_prompt_length: int | None = None
    max_completion_length: int | None = None
    load_in_4bit: bool | None = None
    vllm_gpu_memory_utilization: float | None = None
    vllm_standby: bool | None = None
    headroom: float = 0.10

    # --- optimisation
    loss: str = "grpo"
    """TRL loss_type: grpo (per-sequence mean), bnpo (token mean per micro-batch; Tina's 'Dr.GRPO'), dr_grpo
    (constant normaliser, no std scaling) or dapo (token mean over the step, clip-higher)."""
    scale_rewards: str | None = None
    """group, batch or none (advantages not divided by the std); None: none for dr_grpo, else group."""
    learning_rate: float | None = None
    """Peak learning rate; default 1e-6 (Tina) for hub models, 2e-4 for tiny-arith."""
    lr_scheduler: str = "cosine_with_min_lr"
    """cosine_with_min_lr (linear warm-up, cosine to min_lr_ratio) or constant (after the warm-up)."""
    schedule_steps: int | None = None
    """The schedule's horizon in optimizer steps (Tina: 1500, stopping at max_steps 850). None: max_steps,
    or with only --hours the planner's estimate, refined once from measured step times (docs/training.md)."""
    warmup_ratio: float = 0.1
    """Share of the horizon's steps spent warming the learning rate up (Tina: 0.1)."""
    min_lr_ratio: float = 0.1
    """Cosine decays to this fraction of the peak (Tina: 'cosine with min LR', 0.1)."""
    weight_decay: float = 0.0
    beta: float = 0.0
    """KL coefficient (Tina: 0.04); 0 skips the reference forward pass."""
    epsilon: float = 0.2
    epsilon_high: float | None = None
    """Upper clip (DAPO's clip-higher: 0.28); None keeps it equal to epsilon (dapo sets 0.28)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_grad_norm: float = 1.0
    # TRL 1.15 settings that neither paper's trainer had; TRL's defaults here, recipes pin them.
    logprob_temperature: str = "sampling"
    """Log-probs in the loss are computed at the sampling temperature: TRL 1.15 always does this (no switch)."""
    vllm_importance_sampling_correction: bool = True
    """Reweight by vLLM-vs-trainer log-prob ratios (vLLM back-ends only)."""
    vllm_importance_sampling_mode: str = "sequence_mask"
    vllm_importance_sampling_clip_max: float | None = 3.0
    use_bias_correction_kl: bool = True
    """Multiply the KL term by the importance ratio (changes the KL gradient whenever beta != 0)."""
    optim: str | None = None
    """adamw_torch (default) or adamw_8bit."""
    seed: int = 42

    # --- the run folder
    output: str | None = None
    """Run folder; default runs/<model>-<dataset>-r<rank>-s<seed>."""
    resume: bool = True
    """Continue from the newest complete checkpoint when the folder holds the same run."""
    overwrite: bool = False
    """Start afresh in a folder that holds another run (the old one is moved aside, not deleted)."""
    save_steps: int | None = None
    save_minutes: float = 30.0
    save_total_limit: int = 3
    logging_steps: int = 1
    report_to: str = "none"
    oom_retries: int = 2
    progress: bool = True
    """Show the rich progress bar."""

    # --- validation during training
    val_every: int | str | None = None
    """Validate every N steps, or 'auto': as often as keeps validation near VAL_SHARE of the budget."""
    val_benchmark: str = "math500"
    val_size_benchmark: int | None = None
    """Problems per validation: None is the whole benchmark (MATH500: 500); a subset is seeded and fixed."""
    val_samples: int = 1
    """Samples per problem (a subset of >= 250 problems with 2 samples has about the full set's noise)."""
    val_data: str | None = None

    extra: dict[str, Any] = field(default_factory=dict)
    """Further GRPOConfig fields passed through unchanged (advanced)."""

    def __post_init__(self) -> None:
        self.validate()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        given = self.__dict__.get("_given")
        if given is not None and name in self.__dataclass_fields__:
            given.add(name)  # `cfg.save_minutes = 30` after construction is a setting the user gave too

    def given(self) -> dict[str, Any]:
        """The settings passed to the constructor (or assigned since), defaults left out.

        A value equal to its dataclass default is still given: ``RunConfig(model="tiny-arith",
        save_minutes=30.0)`` keeps 30 minutes where the model's recipe says 5, as the same dict does.
        """
        given = self.__dict__.get("_given")
        return {k: v for k, v in self.to_dict().items() if given is None or k in given}

    def validate(self) -> None:
        """Reject contradictions and impossible values with one line each."""
        def bad(msg: str) -> None:
            raise BudgetError(msg)

        for f in fields(self):  # types first: the checks below compare numbers (not recorded as given)
            self.__dict__[f.name] = coerce(f.name, getattr(self, f.name))
        if self.lora_rank is not None and self.lora_rank < 1:
            bad(f"--rank must be at least 1, got {self.lora_rank}.")
        if self.num_generations is not None and self.num_generations < 2:
            bad(f"--k must be at least 2 (GRPO compares completions within a group), got {self.num_generations}.")
        if self.budget_hours is not None and self.budget_hours <= 0:
            bad(f"--hours must be more than 0, got {self.budget_hours:g}.")
        if self.budget_usd is not None and self.budget_usd <= 0:
            bad(f"--budget-usd must be more than 0, got {self.budget_usd:g}.")
        if self.budget_hours is not None and self.budget_usd is not None:
            bad("Give either --hours or --budget-usd, not both.")
        if self.max_steps is not None and self.max_steps < 1:
            bad(f"--max-steps must be at least 1, got {self.max_steps}.")
        if self.num_train_epochs is not None and self.num_train_epochs < 1:
            bad(f"num_train_epochs must be at least 1, got {self.num_train_epochs}.")
        if self.loss not in LOSSES:
            bad(f"--loss must be one of {', '.join(LOSSES)}, got '{self.loss}'.")
        if self.backend not in ("auto", "hf", "unsloth", "trl"):
            bad(f"--backend must be auto, hf, unsloth or trl, got '{self.backend}'.")
        if self.generation not in ("auto", "vllm", "hf"):
            bad(f"--generation must be auto, vllm or hf, got '{self.generation}'.")
        if self.report_to not in REPORT_TO:
            bad(f"--report-to must be one of {', '.join(REPORT_TO)}, got '{self.report_to}'.")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            bad(f"--lr must be between 0 and 1, got {self.learning_rate:g}.")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            bad("warmup_ratio must be in [0, 1) and min_lr_ratio in [0, 1].")
        if self.save_minutes is not None and self.save_minutes <= 0:
            bad(f"--save-minutes must be more than 0, got {self.save_minutes:g}.")
        if self.save_steps is not None and self.save_steps < 1:
            bad(f"--save-steps must be at least 1, got {self.save_steps}.")
        if self.oom_retries < 0:
            bad("--oom-retries cannot be negative.")
        if self.val_every is not None and self.val_every != "auto" and (
                not isinstance(self.val_every, int) or self.val_every < 1):
            bad(f"--val-every must be a step count of at least 1 or 'auto', got {self.val_every}.")
        if self.val_size_benchmark is not None and self.val_size_benchmark < 1:
            bad(f"--val-size must be at least 1, got {self.val_size_benchmark}.")
        if self.val_samples < 1:
            bad(f"val_samples must be at least 1, got {self.val_samples}.")
        from budgetreason.train.budget import SCHEDULES

        if self.lr_scheduler not in SCHEDULES:
            bad(f"lr_scheduler must be one of {', '.join(SCHEDULES)}, got '{self.lr_scheduler}'.")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            bad(f"schedule_steps must be at least 1, got {self.schedule_steps}.")
        if self.prompts_per_step is not None and self.prompts_per_step < 1:
            bad(f"--prompts-per-step must be at least 1, got {self.prompts_per_step}.")
        if self.scale_rewards is not None and self.scale_rewards not in SCALE_REWARDS:
            bad(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, got '{self.scale_rewards}'.")
        if self.long_prompts not in LONG_PROMPTS:
            bad(f"long_prompts must be one of {', '.join(LONG_PROMPTS)}, got '{self.long_prompts}'.")
        if self.vllm_importance_sampling_mode not in IS_MODES:
            bad(f"vllm_importance_sampling_mode must be one of {', '.join(IS_MODES)}.")
        if self.logprob_temperature != "sampling":
            bad("logprob_temperature can only be 'sampling': TRL 1.15 always scales the loss's logits by it.")
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            bad(f"{len(self.reward_weights)} --reward-weight value(s) for {len(self.reward_funcs)} --reward "
                "function(s); give one weight per --reward.")
        if self.temperature <= 0:
            bad(f"temperature must be positive, got {self.temperature}.")

    # ---- conversions ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config", where: dict[str, str] | None = None
                  ) -> RunConfig:
        """Build from settings; `where` maps a setting to the place it came from (" (file, line N)")."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BudgetError(f"Unknown setting(s) in {source}: {', '.join(unknown)}. See docs/training.md for the fields.")
        where = where or {}
        return cls(**{k: coerce(k, v, where.get(k, "")) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        data, lines = read_yaml(path)
        return cls.from_dict(data, source=str(path), where={k: f" ({path}, line {n})" for k, n in lines.items()})

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def merged(self, **overrides: Any) -> RunConfig:
        """A copy with the overrides that are not None (CLI flags over a YAML file)."""
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return RunConfig.from_dict(data)

    def identity(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in IDENTITY_FIELDS}


def _recording_given(init):
    """Wrap the dataclass __init__ so each RunConfig knows which fields its caller passed."""
    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        names = [f.name for f in fields(self)]
        self.__dict__["_given"] = set(names[:len(args)]) | set(kwargs)

    return __init__


RunConfig.__init__ = _recording_given(RunConfig.__init__)


def read_yaml(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """A YAML file of settings and the line of each top-level key; one-line errors for a missing,
    malformed or non-mapping file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise BudgetError(f"Config file '{path}' does not exist.")
    text = p.read_text(errors="replace")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).strip().splitlines()[0]
        raise BudgetError(f"Config file '{path}' is not valid YAML{at}: {what}; fix the file (YAML is "
                          "'name: value', one per line).") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise BudgetError(f"Config file '{path}' must hold a mapping of settings (name: value lines).")
    lines = {}
    if isinstance(node, yaml.MappingNode):
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return data, lines


@lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text", dict: "a mapping of name: value"}
_NO = object()


def _scalar(kind, value):
    """`value` as `kind` (bool, int, float, str), or _NO."""
    if kind is bool:
        return value if isinstance(value, bool) else _NO
    if isinstance(value, bool):
        return _NO
    if kind is int:
        return value if isinstance(value, int) else _NO
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else _NO
    if kind is str:
        return value if isinstance(value, str) else _NO
    return value  # Any and other types: not checked


def _describe_type(t) -> str:
    if (typing.get_origin(t) or t) is list:
        (item,) = typing.get_args(t) or (Any,)
        return f"a list of {_KINDS.get(item, 'values').replace('a whole number', 'whole numbers').replace('a number', 'numbers')}"
    return _KINDS.get(typing.get_origin(t) or t, getattr(t, "__name__", str(t)))


def coerce(name: str, value: Any, where: str = "") -> Any:
    """`value` as the type of RunConfig's field `name`, or a one-line BudgetError.

    Integers are accepted where floats are meant, and so are numeric strings: PyYAML reads
    `1e-3` (no dot) as the string '1e-3', which users mean as a number.
    """
    hint = _hints().get(name)
    if hint is None:
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None and type(None) in options:
        return None
    kinds = [t for t in options if t is not type(None)]
    for t in kinds:
        kind = typing.get_origin(t) or t
        if kind is list:
            if isinstance(value, (list, tuple)):
                (item,) = typing.get_args(t) or (Any,)
                items = [_scalar(item, v) for v in value]
                if _NO not in items:
                    return items
            continue
        if kind is dict:
            if isinstance(value, dict):
                return value
            continue
        got = _scalar(kind, value)
        if got is not _NO:
            return got
    want = " or ".join(dict.fromkeys(_describe_type(t) for t in kinds))
    empty = " (or empty)" if type(None) in options else ""
    raise BudgetError(f"{name} must be {want}{empty}, got {value!r}{where}; fix the value.")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text.split("/")[-1]).strip("-").lower()
