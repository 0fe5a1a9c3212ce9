"""The memory/time planner: what GRPO configuration fits this GPU, model and budget, and why.

``plan()`` keeps every value the user fixed, starts from the micro-budget paper's recipe
(k=8, 3584-token completions, 512-token prompts, LoRA rank 256 on all seven projections)
and, when that does not fit with the requested headroom, steps down in a documented order:
first what costs only time (micro-batch, vLLM share, standby), then 4-bit weights, then
what changes the recipe (completion length, k, rank). Reduced knobs are then raised back as
far as memory allows, completion length first. Finally it picks the most prompts per
optimizer step that one vLLM wave can hold, keeping at least MIN_STEPS steps in the budget.
See docs/planner.md for every term and constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from budgetreason.errors import BudgetError
from budgetreason.plan import memory, timing
from budgetreason.plan.architectures import ModelArch
from budgetreason.plan.architectures import catalog as model_catalog
from budgetreason.plan.hardware import GIB, GPU
from budgetreason.plan.hardware import catalog as gpu_catalog
from budgetreason.plan.shape import BACKENDS, OPTIMIZERS, Shape

#: The micro-budget paper's recipe (Khan et al.): the planner's target.
TARGET = Shape(lora_rank=256, lora_alpha=1024, num_generations=8, per_device_train_batch_size=8,
               max_prompt_length=512, max_completion_length=3584)
DEFAULT_HEADROOM = 0.10
#: Prompts per optimizer step are capped here (16 × k=8 = 128 completions per update, about 400
#: updates in 24 h on an A40 for a 1.5B model; the micro-budget paper made about 300) ...
MAX_PROMPTS_PER_STEP = 16
#: ... and lowered until the budget holds at least this many updates (the paper: ~300 in 24 h).
MIN_STEPS = 50
MICRO_BATCHES = (16, 8, 4, 2, 1)
COMPLETION_STEP, COMPLETION_FLOOR = 512, 1024
K_LADDER = (8, 6, 4, 2)
RANK_FLOOR = 8
#: Tina keeps alpha = 4·r across its rank ablation (used only when neither recipe nor user fixes alpha).
ALPHA_PER_RANK = 4
#: Validation during training may take about this share of the training time (sets `--val-every auto`).
VAL_SHARE = 0.10

#: Settings a user may fix (Shape field names) and their CLI flags, for messages.
FLAGS = {"lora_rank": "--rank", "num_generations": "--k", "per_device_train_batch_size": "--batch",
         "gradient_accumulation_steps": "--grad-accum", "max_prompt_length": "--max-prompt",
         "max_completion_length": "--max-completion", "load_in_4bit": "--load-in-4bit",
         "vllm_gpu_memory_utilization": "--vllm-share", "lora_target_modules": "--targets",
         "vllm_standby": "--standby", "lora_alpha": "--alpha", "backend": "--backend", "optim": "--optim",
         "prompts_per_step": "--prompts-per-step"}
#: Recipe settings that change the estimates (LoRA dropout keeps a copy of each adapter input; a KL
#: term adds a forward pass) but that the planner never reduces.
RECIPE_SETTINGS = ("lora_dropout", "beta")


@dataclass
class Plan:
    """A configuration for one GPU, model and budget, with the memory and time it predicts."""

    fits: bool
    gpu: GPU
    model: ModelArch
    hours: float
    shape: Shape
    memory: memory.MemoryEstimate
    step: timing.StepTime
    est_steps: int
    headroom: float
    reductions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    fixed: dict = field(default_factory=dict)
    validation: dict | None = None
    """Cost and cadence of validation during training (validation_cost), when asked for."""

    @property
    def usable_bytes(self) -> int:
        return int(self.gpu.vram_mib * 1024**2 * (1 - self.headroom))

    @property
    def est_cost_usd(self) -> float | None:
        return None if self.gpu.price_usd_hr is None else round(self.hours * self.gpu.price_usd_hr, 2)

    @property
    def config(self) -> dict:
        """The settings a run needs (what ``train`` consumes), in TRL's names."""
        s = self.shape
        return {
            "lora_rank": s.lora_rank,
            "lora_alpha": s.lora_alpha,
            "lora_target_modules": list(s.lora_target_modules),
            "num_generations": s.num_generations,
            "per_device_train_batch_size": s.per_device_train_batch_size,
            "gradient_accumulation_steps": s.gradient_accumulation_steps,
            "max_prompt_length": s.max_prompt_length,
            "max_completion_length": s.max_completion_length,
            "load_in_4bit": s.load_in_4bit,
            "vllm_gpu_memory_utilization": self.memory.vllm_gpu_memory_utilization,
            "vllm_standby": s.vllm_standby,
            "backend": s.backend,
            "generation": "vllm" if s.uses_vllm else "hf",
            "optim": s.optim,
            "dtype": self.gpu.dtype if self.gpu.is_cuda else "float32",
        }

    def to_dict(self) -> dict:
        mem = self.memory.gib()
        mem["total"] = round(self.memory.total / GIB, 3)
        mem["available"] = round(self.gpu.vram_gib, 3)
        mem["usable"] = round(self.usable_bytes / GIB, 3)
        return {
            "fits": self.fits,
            "gpu": self.gpu.to_dict(),
            "model": self.model.to_dict(),
            "hours": self.hours,
            "config": self.config,
            "memory_gib": mem,
            "peak_phase": self.memory.peak_phase,
            "headroom": self.headroom,
            "base_params": self.model.param_count(),
            "lora_trainable_params": memory.lora_param_count(self.model, self.shape),
            "prompts_per_step": self.shape.prompts_per_step,
            "lora_scale": round(self.shape.lora_alpha / self.shape.lora_rank, 4),
            "generation_batch_size": self.shape.generation_batch_size,
            "generation_concurrency": self.shape.concurrency,
            "generation_engine": self.shape.engine,
            "est_step_seconds": round(self.step.total_s, 1),
            "est_step_breakdown": self.step.to_dict(),
            "est_steps": self.est_steps,
            "est_cost_usd": self.est_cost_usd,
            "reductions": list(self.reductions),
            "warnings": list(self.warnings),
            "suggestions": list(self.suggestions),
            "fixed": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fixed.items()},
            "validation": self.validation,
        }


# ---- the search ----------------------------------------------------------------------------
class _Search:
    """Holds the fixed inputs so candidate checks stay one-liners."""

    def __init__(self, arch: ModelArch, gpu: GPU, hours: float, fixed: dict, headroom: float, correction=None):
        self.arch, self.gpu, self.hours, self.fixed = arch, gpu, hours, fixed
        self.usable = gpu.vram_mib * 1024**2 * (1 - headroom)
        self.share = fixed.get("vllm_gpu_memory_utilization")
        self.correction = correction
        """A correction.Correction fitted on this GPU, or None for the model's own numbers."""

    def is_fixed(self, name: str) -> bool:
        return name in self.fixed

    def estimate(self, s: Shape) -> memory.MemoryEstimate:
        est = memory.estimate(self.arch, self.gpu, s)
        if self.correction is not None:
            corrected = self.correction.memory(est.total)
            est.terms["calibration"] = corrected - est.total
            est.total = corrected
            est.notes.append(f"corrected with {self.correction.points} measurements on this GPU")
        return est

    def step_time(self, s: Shape) -> timing.StepTime:
        t = timing.step_time(self.arch, self.gpu, s)
        if self.correction is not None:
            t = timing.StepTime(*self.correction.times(t.generate_s, t.train_s, t.overhead_s))
        return t

    def fits(self, s: Shape) -> bool:
        return self.estimate(s).total <= self.usable

    def share_concurrency(self, s: Shape) -> int:
        """Sequences a fixed vLLM share holds: (share·memory − weights − profile peak) / KV per sequence."""
        pool = self.share * self.gpu.vram_mib * 1024**2
        free = pool - memory.base_weight_bytes(self.arch, s) - memory.vllm_activation_bytes(self.arch, s)
        return int(free // self.arch.kv_bytes(s.seq_len, memory.W))

    def micro_batches(self, g: int) -> list[int]:
        if self.is_fixed("per_device_train_batch_size"):
            return [self.fixed["per_device_train_batch_size"]]
        return [b for b in MICRO_BATCHES if b <= g and g % b == 0] or [1]

    def generation_batches(self, k: int) -> list[int]:
        """Candidate generation batches, largest first: multiples of k (fixed batch × accum if both fixed)."""
        if self.is_fixed("per_device_train_batch_size") and self.is_fixed("gradient_accumulation_steps"):
            return [self.fixed["per_device_train_batch_size"] * self.fixed["gradient_accumulation_steps"]]
        if self.is_fixed("prompts_per_step"):  # pinned by the recipe or the user: only the split may change
            return [k * self.fixed["prompts_per_step"]]
        out = [k * m for m in range(MAX_PROMPTS_PER_STEP, 0, -1)]
        if self.is_fixed("gradient_accumulation_steps"):
            g = self.fixed["gradient_accumulation_steps"]
            out = [x for x in out if x % g == 0]
        if self.is_fixed("per_device_train_batch_size"):
            b = self.fixed["per_device_train_batch_size"]
            out = [x for x in out if x % b == 0]
        return out

    def schedule(self, base: Shape, allow_waves: bool) -> Shape | None:
        """Best (generation batch, micro-batch, concurrency) for fixed recipe knobs, or None.

        Most prompts per step first (one wave holding the whole generation batch, unless
        waves are allowed), then the largest micro-batch; a step must leave MIN_STEPS in the budget.
        """
        fallback: Shape | None = None
        for g in self.generation_batches(base.num_generations):
            for b in self.micro_batches(g):
                s = base.replace(per_device_train_batch_size=b, gradient_accumulation_steps=g // b)
                for c in self._concurrencies(s, allow_waves):
                    s_c = s.replace(generation_concurrency=c)
                    if not self.fits(s_c):
                        continue
                    if self.is_fixed("prompts_per_step") or self._enough_steps(s_c):
                        return s_c  # pinned prompts per step: the step count is the recipe's business
                    fallback = s_c  # keep the smallest batch that fits, if no batch leaves enough steps
                    break
        return fallback

    def _concurrencies(self, s: Shape, allow_waves: bool) -> list[int | None]:
        g = s.generation_batch_size
        if not s.uses_vllm:
            return [None]
        if self.share is not None:
            c = self.share_concurrency(s)
            return [min(c, g)] if c >= 1 else []
        if not allow_waves:
            return [None]
        out, c = [], g // 2
        while c >= min(s.num_generations, g):
            out.append(c)
            c //= 2
        return out

    def _enough_steps(self, s: Shape) -> bool:
        step = self.step_time(s).total_s
        return timing.steps_in_budget(step, self.hours, s.engine) >= MIN_STEPS


def _ladder(search: _Search, start: Shape, ctx_limit: int) -> list[tuple[str, Shape]]:
    """Recipe knobs stepped down in the documented order; each entry is (what changed, shape)."""
    steps: list[tuple[str, Shape]] = []
    s = start
    if s.uses_vllm and not search.is_fixed("vllm_standby") and not s.vllm_standby:
        s = s.replace(vllm_standby=True)
        steps.append(("standby", s))
    if not search.is_fixed("load_in_4bit") and not s.load_in_4bit and search.gpu.is_cuda:
        s = s.replace(load_in_4bit=True)
        steps.append(("4bit", s))
    if not search.is_fixed("max_completion_length"):
        c = s.max_completion_length
        while c - COMPLETION_STEP >= COMPLETION_FLOOR:
            c -= COMPLETION_STEP
            s = s.replace(max_completion_length=c)
            steps.append(("completion", s))
    if not search.is_fixed("num_generations"):
        for k in K_LADDER:
            if k < s.num_generations:
                s = s.replace(num_generations=k)
                steps.append(("k", s))
    if not search.is_fixed("lora_rank"):
        r = s.lora_rank
        while r // 2 >= RANK_FLOOR:
            r //= 2
            alpha = s.lora_alpha if search.is_fixed("lora_alpha") else ALPHA_PER_RANK * r
            s = s.replace(lora_rank=r, lora_alpha=alpha)
            steps.append(("rank", s))
    return steps


def _restore(search: _Search, found: Shape, target: Shape) -> Shape:
    """Raise reduced knobs back while something still fits: completion, then k, then 16-bit, then standby off."""
    s = found
    while s.max_completion_length < target.max_completion_length:
        up = s.replace(max_completion_length=min(target.max_completion_length, s.max_completion_length + COMPLETION_STEP))
        if not _feasible(search, up):
            break
        s = up
    for k in K_LADDER:  # largest first
        if s.num_generations < k <= target.num_generations and _feasible(search, s.replace(num_generations=k)):
            s = s.replace(num_generations=k)
            break
    if s.load_in_4bit and not target.load_in_4bit and _feasible(search, s.replace(load_in_4bit=False)):
        s = s.replace(load_in_4bit=False)
    if s.vllm_standby and not target.vllm_standby and _feasible(search, s.replace(vllm_standby=False)):
        s = s.replace(vllm_standby=False)
    return s


def _feasible(search: _Search, s: Shape) -> bool:
    """Whether the smallest schedule (one prompt per step, micro-batch 1, waves) fits."""
    k = s.num_generations
    g = k
    if search.is_fixed("per_device_train_batch_size") or search.is_fixed("gradient_accumulation_steps"):
        gs = search.generation_batches(k)
        if not gs:
            return False
        g = gs[-1]
    b = search.micro_batches(g)[-1]
    probe = s.replace(per_device_train_batch_size=b, gradient_accumulation_steps=g // b)
    concs = search._concurrencies(probe, allow_waves=True) or ([] if search.share is not None else [None])
    c = concs[-1] if concs else None
    if search.share is not None and not concs:
        return False
    return search.fits(probe.replace(generation_concurrency=c if c else min(k, g)))


def plan(gpu: GPU | str = "auto", model: ModelArch | str = "Qwen/Qwen2.5-1.5B-Instruct", hours: float = 24.0, *,
         vram_gb: float | None = None, headroom: float = DEFAULT_HEADROOM, backend: str | None = None,
         generation: str | None = None, calibration: str | None = None, val_problems: int | None = None,
         val_samples: int = 1, **fixed) -> Plan:
    """Plan a GRPO run: what fits `gpu` for `model` in `hours`, and why.

    `gpu` and `model` take catalog names (or objects); `fixed` takes the settings the user
    pins, by Shape field name (``lora_rank=64``, ``num_generations=4``, ...), plus
    ``vllm_gpu_memory_utilization``. ``lora_target_modules`` also takes "all", "attn", "q_proj,v_proj".
    `generation` is vllm or hf (the unsloth back-end only: Unsloth's kernels without vLLM); None takes
    the back-end's own engine (vLLM for unsloth and trl, transformers' generate for hf).
    With `val_problems`, the plan also prices validation during training (``Plan.validation``).

    >>> p = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", hours=24)
    >>> p.fits, p.config["lora_rank"], p.config["num_generations"], p.config["max_completion_length"]
    (True, 256, 8, 3584)
    """
    from budgetreason.plan.architectures import parse_targets, resolve_model
    from budgetreason.plan.hardware import resolve_gpu

    if isinstance(gpu, str) or vram_gb is not None:
        gpu = resolve_gpu(gpu if isinstance(gpu, str) else gpu.key, vram_gb)
    if isinstance(model, str):
        model = resolve_model(model)
    fixed = {k: v for k, v in fixed.items() if v is not None}
    unknown = set(fixed) - set(FLAGS) - set(RECIPE_SETTINGS)
    if unknown:
        raise TypeError(f"plan() got unknown settings: {', '.join(sorted(unknown))}")
    if "lora_target_modules" in fixed:
        fixed["lora_target_modules"] = parse_targets(fixed["lora_target_modules"])
    _validate(gpu, model, hours, headroom, fixed)
    backend = backend or ("unsloth" if gpu.is_cuda else "hf")
    if backend not in BACKENDS:
        raise BudgetError(f"Unknown backend '{backend}'; use one of {', '.join(BACKENDS)}.")
    if not gpu.is_cuda and backend != "hf":
        raise BudgetError(f"Backend '{backend}' needs a CUDA GPU; on the CPU use --backend hf.")
    generation = _generation(backend, generation)
    if not (gpu.is_cuda and backend in ("unsloth", "trl") and generation == "vllm") and "vllm_gpu_memory_utilization" in fixed:
        raise BudgetError("--vllm-share applies only to vLLM generation (the unsloth and trl backends).")
    correction = None
    if calibration:
        from budgetreason.plan.correction import load_correction

        correction = load_correction(calibration, gpu.key, Shape(backend=backend, generation=generation).engine)
    search = _Search(model, gpu, hours, fixed, headroom, correction)
    warnings: list[str] = []
    reductions: list[str] = []

    target = TARGET.replace(backend=backend, generation=generation, **{k: v for k, v in fixed.items() if k in Shape.__dataclass_fields__})
    if "lora_rank" in fixed and "lora_alpha" not in fixed:
        target = target.replace(lora_alpha=ALPHA_PER_RANK * fixed["lora_rank"])
    if not gpu.is_cuda:
        target = target.replace(load_in_4bit=False, vllm_standby=False)
    target = _fit_context(target, model, fixed, reductions)

    start = target
    if not _feasible(search, start):
        found = None
        for _what, s in _ladder(search, start, model.max_context):
            if _feasible(search, s):
                found = s
                break
        if found is None:
            return _no_fit(search, target, fixed, warnings, reductions, hours)
        start = _restore(search, found, target)
    shape = search.schedule(start, allow_waves=False) or search.schedule(start, allow_waves=True)
    if shape is None:  # feasible guarantees a schedule with waves; keep the type checker honest
        return _no_fit(search, target, fixed, warnings, reductions, hours)
    reductions += _describe_reductions(search, target, shape)
    warnings += _warnings(search, shape)
    if correction is not None and correction.time_note:
        warnings.append(f"memory corrected from {correction.points} measurement(s) on this GPU: "
                        f"total × {correction.a:.3f} {correction.b_gib:+.2f} GiB; {correction.time_note}")
    elif correction is not None:
        warnings.append(f"memory and time corrected from {correction.points} measurement(s) on this GPU: "
                        f"total × {correction.a:.3f} {correction.b_gib:+.2f} GiB, time × {correction.time_ratio:.2f}"
                        + (f" (generation × {correction.generate_ratio:.2f}, training × {correction.train_ratio:.2f}, "
                           f"measured with {correction.engine})" if correction.generate_ratio is not None else ""))
    result = _finish(search, shape, True, reductions, warnings, [], hours)
    if val_problems:
        result.validation = validation_cost(search, result, val_problems, val_samples)
    return result


def validation_cost(search: _Search, p: Plan, problems: int, samples: int) -> dict:
    """Seconds of one validation (problems × samples completions, decoded like a generation batch) and the
    cadence that keeps validation near VAL_SHARE of the training time; the standard error's bound (at 50%
    accuracy, one sample per problem; more samples per problem lower it)."""
    import math

    s = p.shape
    n = problems * samples
    concurrency = min(n, s.concurrency if s.uses_vllm else 16 * samples)
    vshape = s.replace(per_device_train_batch_size=n, gradient_accumulation_steps=1, generation_concurrency=concurrency)
    seconds = timing.generate_seconds(search.arch, search.gpu, vshape)
    if search.correction is not None:
        seconds = search.correction.times(seconds, 0.0, 0.0)[0]
    every = max(1, math.ceil(seconds / (VAL_SHARE * max(p.step.total_s, 1e-9))))
    return {"problems": problems, "samples": samples, "seconds_each": round(seconds, 1), "every": every,
            "count": p.est_steps // every, "share": VAL_SHARE,
            "stderr_max": round(0.5 / math.sqrt(problems), 4)}


def _generation(backend: str, generation: str | None) -> str:
    """The generation engine's switch for this back-end: trl always generates with vLLM, hf never."""
    from budgetreason.plan.shape import GENERATIONS

    if generation is None:
        return "hf" if backend == "hf" else "vllm"
    if generation not in GENERATIONS:
        raise BudgetError(f"--generation must be one of {', '.join(GENERATIONS)}, got '{generation}'.")
    if backend == "trl" and generation == "hf":
        raise BudgetError("--backend trl always generates with vLLM; for transformers' generate use --backend hf.")
    if backend == "hf" and generation == "vllm":
        raise BudgetError("--backend hf generates with transformers; for vLLM use --backend trl or unsloth.")
    return generation


def _finish(search: _Search, shape: Shape, fits: bool, reductions, warnings, suggestions, hours) -> Plan:
    est = search.estimate(shape)
    step = search.step_time(shape)
    steps = timing.steps_in_budget(step.total_s, hours, shape.engine)
    if fits and steps < MIN_STEPS:
        warnings.append(f"the budget holds only about {steps} optimizer steps (at {step.total_s:.0f} s each); "
                        "consider more hours or a shorter --max-completion")
    return Plan(fits=fits, gpu=search.gpu, model=search.arch, hours=hours, shape=shape, memory=est, step=step,
                est_steps=steps, headroom=1 - search.usable / (search.gpu.vram_mib * 1024**2),
                reductions=reductions, warnings=warnings, suggestions=suggestions, fixed=dict(search.fixed))


def _fit_context(s: Shape, model: ModelArch, fixed: dict, reductions: list[str]) -> Shape:
    """Prompt + completion must fit the model's context: shorten the completion, or refuse."""
    if s.seq_len <= model.max_context:
        return s
    if "max_completion_length" in fixed:
        room = model.max_context - s.max_prompt_length
        hint = f"lower --max-completion to {room}" if room >= 256 else "lower --max-prompt"
        raise BudgetError(
            f"max prompt {s.max_prompt_length} + completion {s.max_completion_length} = {s.seq_len} tokens exceeds "
            f"{model.id}'s context of {model.max_context}; {hint}."
        )
    new_c = model.max_context - s.max_prompt_length
    if new_c < 256:
        raise BudgetError(f"max prompt {s.max_prompt_length} leaves no room for a completion in {model.id}'s "
                          f"context of {model.max_context}; lower --max-prompt.")
    reductions.append(f"completion length {s.max_completion_length} → {new_c}: prompt {s.max_prompt_length} + "
                      f"completion must fit {model.id}'s context of {model.max_context} tokens")
    return s.replace(max_completion_length=new_c)


def _describe_reductions(search: _Search, target: Shape, s: Shape) -> list[str]:
    """One line per knob the plan moved below the target, with the reason (the term it shrinks)."""
    out = []
    mem = search.estimate(target.replace(per_device_train_batch_size=1, gradient_accumulation_steps=target.num_generations))
    gib = mem.gib()

    def top(*terms: str) -> str:
        return ", ".join(f"{t} {gib[t]:.1f} GiB" for t in terms)

    if s.lora_rank < target.lora_rank:
        out.append(f"LoRA rank {target.lora_rank} → {s.lora_rank} (alpha {s.lora_alpha}): "
                   f"adapter, gradients and AdamW states need {top('lora_params', 'optimizer_states')}")
    if s.num_generations < target.num_generations:
        out.append(f"group size k {target.num_generations} → {s.num_generations}: fewer sequences held at once")
    if s.max_completion_length < target.max_completion_length:
        out.append(f"completion length {target.max_completion_length} → {s.max_completion_length}: "
                   f"activations and KV cache grow with length ({top('activations', 'kv_cache')} at the target)")
    if s.load_in_4bit and not target.load_in_4bit:
        out.append(f"4-bit NF4 base weights (QLoRA): 16-bit weights need {gib['base_weights']:.1f} GiB"
                   + (" twice (training and vLLM copies)" if s.backend == "trl" else ""))
    if s.vllm_standby and not target.vllm_standby:
        out.append("vLLM standby: the KV cache is released during training so both phases fit, at about 2 s per step")
    b_target = min(target.per_device_train_batch_size, s.generation_batch_size)
    if s.per_device_train_batch_size < b_target and not search.is_fixed("per_device_train_batch_size"):
        out.append(f"micro-batch {b_target} → {s.per_device_train_batch_size} completions: activations of "
                   f"{b_target}×{s.seq_len} tokens do not fit beside the rest")
    if s.uses_vllm and s.concurrency < s.generation_batch_size:
        out.append(f"vLLM share: the KV cache holds {s.concurrency} of {s.generation_batch_size} sequences, "
                   "so generation runs in waves (slower, same result)")
    return out


def _warnings(search: _Search, s: Shape) -> list[str]:
    w = []
    if search.gpu.is_cuda and not search.gpu.bf16:
        w.append(f"{search.gpu.name} has no bfloat16: training and vLLM run in float16 with loss scaling")
    if s.load_in_4bit and s.backend == "trl":
        w.append("TRL's colocated vLLM loads 16-bit weights even when training in 4-bit; prefer --backend unsloth")
    if not search.arch.verified:
        w.append(f"{search.arch.id}: architecture numbers read from a derivative config (catalog 'verified': false)")
    if search.gpu.key.startswith("custom"):
        w.append(f"{search.gpu.name} is not in the catalog: throughput and price are the A40's")
    return w


def _no_fit(search: _Search, target: Shape, fixed: dict, warnings, reductions, hours) -> Plan:
    """Nothing fits. A fixed value is to blame: one clear error. Otherwise: a plan with fits=False and what would fit."""
    floor = _ladder(search, target, search.arch.max_context)
    smallest = floor[-1][1] if floor else target
    probe = smallest.replace(per_device_train_batch_size=1, gradient_accumulation_steps=smallest.num_generations,
                             generation_concurrency=min(smallest.num_generations, smallest.num_generations))
    est = search.estimate(probe)
    term = est.largest_term()
    need, have = est.total / GIB, search.usable / GIB
    user_fixed = [k for k in fixed if k in FLAGS]
    if user_fixed:
        flags = ", ".join(f"{FLAGS[k]} {_fmt(fixed[k])}" for k in user_fixed)
        raise BudgetError(
            f"Does not fit: with {flags}, even the smallest configuration needs {need:.1f} GiB of the "
            f"{have:.1f} GiB usable on {search.gpu.name}; the largest term is {term} ({est.terms[term] / GIB:.1f} GiB). "
            "Relax a fixed value, or use a bigger GPU."
        )
    suggestions = []
    bigger = [g for g in gpu_catalog().values() if g.vram_mib > search.gpu.vram_mib]
    for g in sorted(bigger, key=lambda g: g.vram_mib):
        try:
            if plan(g, search.arch, hours, headroom=1 - search.usable / (search.gpu.vram_mib * 1024**2),
                    backend=target.backend, generation=target.generation).fits:
                suggestions.append(f"a bigger GPU: {g.name} ({g.vram_gib:.0f} GiB)")
                break
        except BudgetError:
            continue
    smaller = [m for m in model_catalog().values() if m.param_count() < search.arch.param_count()]
    for m in sorted(smaller, key=lambda m: -m.param_count()):
        if _feasible(_Search(m, search.gpu, hours, {}, 1 - search.usable / (search.gpu.vram_mib * 1024**2)),
                     floor[-1][1] if floor else target):
            suggestions.append(f"a smaller model: {m.id} ({m.param_count() / 1e9:.1f}B)")
            break
    warnings.append(f"nothing fits: the smallest configuration needs {need:.1f} GiB of {have:.1f} GiB usable; "
                    f"largest term {term} ({est.terms[term] / GIB:.1f} GiB)")
    return _finish(search, probe, False, reductions, warnings, suggestions, hours)


def _fmt(v) -> str:
    return ",".join(v) if isinstance(v, (list, tuple)) else str(v)


def _validate(gpu: GPU, model: ModelArch, hours: float, headroom: float, fixed: dict) -> None:
    if not hours or hours <= 0:
        raise BudgetError(f"--hours must be more than 0, got {hours:g}.")
    if not 0 <= headroom < 0.9:
        raise BudgetError(f"--headroom is a fraction of GPU memory kept free, between 0 and 0.9; got {headroom:g}.")
    checks = {
        "lora_rank": lambda v: v >= 1, "lora_alpha": lambda v: v > 0, "num_generations": lambda v: v >= 2,
        "per_device_train_batch_size": lambda v: v >= 1, "gradient_accumulation_steps": lambda v: v >= 1,
        "max_prompt_length": lambda v: v >= 16, "max_completion_length": lambda v: v >= 16,
        "vllm_gpu_memory_utilization": lambda v: 0 < v < 1,
    }
    rules = {"lora_rank": "at least 1", "lora_alpha": "positive", "num_generations": "at least 2 (GRPO compares a group)",
             "per_device_train_batch_size": "at least 1", "gradient_accumulation_steps": "at least 1",
             "max_prompt_length": "at least 16 tokens", "max_completion_length": "at least 16 tokens",
             "vllm_gpu_memory_utilization": "a fraction between 0 and 1"}
    for k, ok in checks.items():
        if k in fixed and not ok(fixed[k]):
            raise BudgetError(f"{FLAGS[k]} must be {rules[k]}, got {fixed[k]}.")
    if "optim" in fixed and fixed["optim"] not in OPTIMIZERS:
        raise BudgetError(f"--optim must be one of {', '.join(OPTIMIZERS)}, got {fixed['optim']}.")
    b, g, k = (fixed.get(x) for x in ("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations"))
    pps = fixed.get("prompts_per_step")
    if pps is not None and pps < 1:
        raise BudgetError(f"--prompts-per-step must be at least 1, got {pps}.")
    if pps and b and g and b * g != pps * (k or TARGET.num_generations):
        raise BudgetError(f"--batch {b} × --grad-accum {g} = {b * g} completions per step, but --prompts-per-step "
                          f"{pps} × k={k or TARGET.num_generations} needs {pps * (k or TARGET.num_generations)}; "
                          "change one of them.")
    if b and g and (b * g) % (k or TARGET.num_generations):
        raise BudgetError(f"--batch {b} × --grad-accum {g} = {b * g} completions per step must be a multiple of "
                          f"k={k or TARGET.num_generations} (whole groups); change one of them.")
