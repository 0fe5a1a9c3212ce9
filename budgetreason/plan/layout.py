"""Several GPUs on one machine: how many serve vLLM, how many train, and with which ZeRO stage.

The layout is open-r1's and TRL's: G GPUs run a vLLM server (``trl vllm-serve``, tensor
parallel over the G cards), the other T = N − G train the LoRA adapter under
``accelerate launch`` (DDP, or DeepSpeed ZeRO-2/3), and after every optimizer step TRL merges
the adapter and streams the weights to the server over NCCL. Generation and training take
turns (TRL's server mode is synchronous), so a step is generation on G cards plus training on
T cards. ``plan_layout`` tries every valid (G, ZeRO stage, micro-batch), keeps those whose
per-GPU memory fits each role, and picks the fastest per completion; ZeRO-3 or another server
GPU must buy at least MIN_GAIN to be chosen. Terms and constants: docs/scale-out.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from budgetreason.errors import BudgetError
from budgetreason.plan import memory, timing
from budgetreason.plan.architectures import ModelArch
from budgetreason.plan.hardware import GIB, GPU
from budgetreason.plan.planner import ALPHA_PER_RANK, MAX_PROMPTS_PER_STEP, MICRO_BATCHES, TARGET
from budgetreason.plan.shape import Shape

#: Tensor-parallel sizes vLLM is given; G must also divide the attention heads.
TP_SIZES = (1, 2, 4, 8)
#: Decode and prefill speed-up per extra tensor-parallel GPU (an all-reduce per layer eats the rest).
TP_EFFICIENCY = 0.8
#: GPU-to-GPU bandwidth for ZeRO-3's weight all-gathers, bytes/s: PCIe 4.0 x16 in practice
#: (A40, L40S, most rented multi-GPU boxes). NVLink machines are faster; ZeRO-3 is then cheaper.
INTERCONNECT_BYTES_PER_S = 20e9
#: DeepSpeed's default stage3_max_live_parameters: ZeRO-3 keeps at most this many gathered params.
ZERO3_MAX_LIVE_PARAMS = 10**9
#: ZeRO-3 or one more server GPU is chosen only when it makes a completion this much faster.
MIN_GAIN = 0.02
ZERO_STAGES = (0, 2, 3)
#: Settings the layout planner takes, as in planner.plan (Shape names).
SHAPE_SETTINGS = ("lora_rank", "lora_alpha", "lora_target_modules", "num_generations", "max_prompt_length",
                  "max_completion_length", "per_device_train_batch_size", "lora_dropout", "beta", "optim")
SERVER_TERMS = ("cuda_context", "vllm_weights", "kv_cache", "vllm_activations", "cuda_graphs")
TRAINER_TERMS = ("cuda_context", "base_weights", "zero3_gathered", "lora_params", "lora_grads", "ddp_buckets",
                 "optimizer_states", "activations", "logits", "fragmentation")


@dataclass
class RoleMemory:
    """Bytes per GPU of one role (the vLLM server, or one training process) and the peak they make."""

    role: str
    gpus: int
    terms: dict[str, int]
    total: int
    usable: int
    peak_phase: str = "train"
    """trainer: 'train', or 'weight sync' when ZeRO-3 gathers the whole model to merge the adapter."""

    @property
    def fits(self) -> bool:
        return self.total <= self.usable

    def to_dict(self) -> dict:
        d = {k: round(v / GIB, 3) for k, v in self.terms.items()}
        return {"gpus": self.gpus, "memory_gib": d, "total_gib": round(self.total / GIB, 3),
                "usable_gib": round(self.usable / GIB, 3), "peak_phase": self.peak_phase, "fits": self.fits}


@dataclass
class Layout:
    """N GPUs split into a vLLM server and a trainer, with the shape, memory per role and time."""

    fits: bool
    gpu: GPU
    model: ModelArch
    hours: float
    num_gpus: int
    server_gpus: int
    trainer_gpus: int
    zero_stage: int
    """0 = DDP (or a single process), 2/3 = DeepSpeed ZeRO stage."""
    shape: Shape
    """Per process: micro-batch and accumulation; generation_batch_size here is per training process."""
    server: RoleMemory
    trainer: RoleMemory
    step: timing.StepTime
    est_steps: int
    headroom: float
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    @property
    def tensor_parallel_size(self) -> int:
        return self.server_gpus

    @property
    def completions_per_step(self) -> int:
        return self.shape.generation_batch_size * self.trainer_gpus

    @property
    def server_concurrency(self) -> int:
        return self.shape.generation_concurrency or self.completions_per_step

    @property
    def vllm_gpu_memory_utilization(self) -> float:
        """The server's --gpu_memory_utilization: its weights, KV cache and profile peak over the card."""
        t = self.server.terms
        share = (t["vllm_weights"] + t["kv_cache"] + t["vllm_activations"]) / (self.gpu.vram_mib * 1024**2)
        return min(0.95, math.ceil(share * 100 - 1e-9) / 100)

    @property
    def config(self) -> dict:
        """What ``train`` consumes, as planner.Plan.config (per training process)."""
        s = self.shape
        return {
            "lora_rank": s.lora_rank, "lora_alpha": s.lora_alpha, "lora_target_modules": list(s.lora_target_modules),
            "num_generations": s.num_generations, "per_device_train_batch_size": s.per_device_train_batch_size,
            "gradient_accumulation_steps": s.gradient_accumulation_steps, "max_prompt_length": s.max_prompt_length,
            "max_completion_length": s.max_completion_length, "load_in_4bit": False,
            "vllm_gpu_memory_utilization": self.vllm_gpu_memory_utilization, "vllm_standby": False,
            "backend": "trl", "optim": s.optim, "dtype": self.gpu.dtype,
        }

    def to_dict(self) -> dict:
        return {
            "fits": self.fits, "gpu": self.gpu.to_dict(), "model": self.model.to_dict(), "hours": self.hours,
            "num_gpus": self.num_gpus, "server_gpus": self.server_gpus, "trainer_gpus": self.trainer_gpus,
            "tensor_parallel_size": self.tensor_parallel_size, "zero_stage": self.zero_stage,
            "distributed": distributed_name(self.zero_stage, self.trainer_gpus),
            "config": self.config, "completions_per_step": self.completions_per_step,
            "prompts_per_step": self.completions_per_step // self.shape.num_generations,
            "server_concurrency": self.server_concurrency,
            "roles": {"server": self.server.to_dict(), "trainer": self.trainer.to_dict()},
            "est_step_seconds": round(self.step.total_s, 1), "est_step_breakdown": self.step.to_dict(),
            "est_steps": self.est_steps, "est_cost_usd": self.est_cost_usd, "headroom": self.headroom,
            "reasons": list(self.reasons), "warnings": list(self.warnings), "suggestions": list(self.suggestions),
        }

    @property
    def est_cost_usd(self) -> float | None:
        price = self.gpu.price_usd_hr
        return None if price is None else round(self.hours * price * self.num_gpus, 2)


def distributed_name(zero_stage: int, trainer_gpus: int) -> str:
    if trainer_gpus == 1:
        return "single process"
    return "DDP" if zero_stage == 0 else f"DeepSpeed ZeRO-{zero_stage}"


# ---- memory per role -------------------------------------------------------------------------------
def server_memory(arch: ModelArch, gpu: GPU, shape: Shape, tp: int, usable: int) -> tuple[RoleMemory, int]:
    """One server GPU: its weight shard, the KV cache that is left, vLLM's profile peak, CUDA graphs.

    A dedicated server gives vLLM everything but the headroom, so the KV cache is what remains,
    capped at the sequences one step generates; returns (memory, sequences decoded at once).
    With tensor parallelism each GPU holds 1/tp of the weights and of every sequence's KV cache.
    """
    g = shape.generation_batch_size  # here: completions of the whole step
    weights = memory.base_weight_bytes(arch, shape.replace(load_in_4bit=False)) // tp
    kv_seq = arch.kv_bytes(shape.seq_len, memory.W) // tp
    probe = shape.replace(generation_concurrency=min(g, memory.VLLM_MAX_NUM_SEQS))
    act = memory.vllm_activation_bytes(arch, probe)
    graphs = memory.cuda_graph_bytes(arch, probe)
    free = usable - memory.CUDA_CONTEXT_BYTES - weights - act - graphs
    concurrency = max(0, min(g, memory.VLLM_MAX_NUM_SEQS, free // kv_seq if free > 0 else 0))
    terms = {"cuda_context": memory.CUDA_CONTEXT_BYTES, "vllm_weights": weights,
             "kv_cache": concurrency * kv_seq, "vllm_activations": act, "cuda_graphs": graphs}
    total = sum(terms.values()) if concurrency else memory.CUDA_CONTEXT_BYTES + weights + act + graphs + kv_seq
    return RoleMemory("server", tp, terms, int(total), usable), int(concurrency)


def trainer_memory(arch: ModelArch, shape: Shape, gpus: int, zero_stage: int, usable: int) -> RoleMemory:
    """One training process: base weights (sharded under ZeRO-3), the fp32 adapter, its gradients and
    AdamW states (sharded from ZeRO-2; ZeRO-1's optimizer sharding is included in 2), activations and
    the log-prob working set of one micro-batch, fragmentation on what is freed every step.

    ZeRO-3 keeps up to two layers and the embeddings gathered while computing. With PEFT, TRL
    gathers the whole model at once to merge the adapter before each weight sync
    (trl/generation/vllm_generation.py, ``_iter_named_params``), so the peak is the larger of the
    training phase and that sync phase: full weights beside the adapter and sharded optimizer states.
    """
    s = shape.replace(backend="trl", load_in_4bit=False)
    shard = gpus if zero_stage else 1
    w = memory.base_weight_bytes(arch, s)
    lora = memory.lora_param_bytes(arch, s)
    opt = memory.optimizer_bytes(arch, s)
    t = dict.fromkeys(TRAINER_TERMS, 0)
    t["cuda_context"] = memory.CUDA_CONTEXT_BYTES
    t["base_weights"] = w // gpus if zero_stage == 3 else w
    if zero_stage == 3:
        layer = (arch.param_count() - arch.embedding_params()) // arch.num_layers
        live = min(ZERO3_MAX_LIVE_PARAMS, 2 * layer + arch.embedding_params())
        t["zero3_gathered"] = live * memory.W
    t["lora_params"] = lora // gpus if zero_stage == 3 else lora
    t["lora_grads"] = lora // shard if zero_stage >= 2 else lora
    if zero_stage == 0 and gpus > 1:
        # DDP all-reduces through its own gradient buckets, a second copy of the adapter's gradients
        # (accelerate's DistributedDataParallelKwargs: gradient_as_bucket_view=False by default).
        t["ddp_buckets"] = lora
    t["optimizer_states"] = opt // shard
    t["activations"] = memory.activation_bytes(arch, s)
    t["logits"] = memory.logits_bytes(arch, s)
    t["fragmentation"] = int(memory.FRAGMENTATION * (t["activations"] + t["logits"] + t["lora_grads"]))
    train_phase = sum(t.values())
    phase, total = "train", train_phase
    if zero_stage == 3:
        sync_phase = memory.CUDA_CONTEXT_BYTES + w + lora + t["optimizer_states"]
        if sync_phase > train_phase:
            phase, total = "weight sync", sync_phase
    return RoleMemory("trainer", gpus, t, int(total), usable, phase)


# ---- time ----------------------------------------------------------------------------------------------
def step_time(arch: ModelArch, gpu: GPU, shape: Shape, tp: int, trainer_gpus: int, zero_stage: int,
              concurrency: int) -> timing.StepTime:
    """Generation on the tp server GPUs, then training split over the trainer GPUs, then the sync.

    `shape` is per process; the step's completions are its generation batch × trainer_gpus.
    tensor parallelism scales decode bandwidth and prefill FLOPs by tp·TP_EFFICIENCY; ZeRO-3 adds
    three all-gathers of the base weights (forward, recompute, backward) per micro-batch.
    """
    whole = shape.replace(backend="trl", gradient_accumulation_steps=shape.gradient_accumulation_steps * trainer_gpus,
                          generation_concurrency=concurrency)
    speed = 1 + (tp - 1) * TP_EFFICIENCY
    server_gpu = replace(gpu, mem_bw_gbs=gpu.mem_bw_gbs * speed, tflops_16bit=gpu.tflops_16bit * speed)
    gen = timing.generate_seconds(arch, server_gpu, whole)
    train = timing.train_seconds(arch, gpu, whole) / trainer_gpus
    if zero_stage == 3:
        w = memory.base_weight_bytes(arch, whole)
        train += shape.gradient_accumulation_steps * 3 * w * (trainer_gpus - 1) / trainer_gpus / INTERCONNECT_BYTES_PER_S
    return timing.StepTime(gen, train, timing.overhead_seconds(arch, gpu, whole))


# ---- the search ------------------------------------------------------------------------------------------
@dataclass
class _Candidate:
    tp: int
    trainers: int
    stage: int
    shape: Shape
    server: RoleMemory
    trainer: RoleMemory
    concurrency: int
    step: timing.StepTime

    @property
    def seconds_per_completion(self) -> float:
        return self.step.total_s / (self.shape.generation_batch_size * self.trainers)


def valid_tp(arch: ModelArch, tp: int) -> bool:
    """vLLM splits attention heads across tensor-parallel ranks: tp must divide them
    (KV heads are replicated when tp exceeds them, so tp must then be a multiple)."""
    kv_ok = arch.num_kv_heads % tp == 0 or tp % arch.num_kv_heads == 0
    return arch.num_heads % tp == 0 and kv_ok


def plan_layout(gpus: int, gpu: GPU | str = "auto", model: ModelArch | str = "Qwen/Qwen2.5-1.5B-Instruct",
                hours: float = 24.0, *, vram_gb: float | None = None, headroom: float = 0.10,
                prompts_per_step: int | None = None, **fixed) -> Layout:
    """Split `gpus` cards of one machine into a vLLM server and trainers for `model`, and plan the shape.

    `fixed` takes the recipe's settings by Shape name (``lora_rank``, ``num_generations``,
    ``max_completion_length``, ``lora_dropout``, ``beta``...); the rest come from the
    micro-budget target. ``prompts_per_step`` defaults to the single-GPU planner's cap.

    >>> lay = plan_layout(2, "l40s", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 16, lora_rank=32, num_generations=6)
    >>> lay.fits, lay.server_gpus, lay.trainer_gpus
    (True, 1, 1)
    """
    from budgetreason.plan.architectures import parse_targets, resolve_model
    from budgetreason.plan.hardware import resolve_gpu

    if isinstance(gpu, str) or vram_gb is not None:
        gpu = resolve_gpu(gpu if isinstance(gpu, str) else gpu.key, vram_gb)
    if isinstance(model, str):
        model = resolve_model(model)
    if gpus < 2:
        raise BudgetError(f"--gpus {gpus}: a server/trainer layout needs at least 2 GPUs; for one GPU leave --gpus out.")
    if not gpu.is_cuda:
        raise BudgetError("--gpus needs CUDA GPUs (vLLM serves on some, accelerate trains on the others); "
                          "pass --gpu KEY for the card you will rent.")
    if hours <= 0:
        raise BudgetError(f"--hours must be more than 0, got {hours:g}.")
    fixed = {k: v for k, v in fixed.items() if v is not None}
    unknown = set(fixed) - set(SHAPE_SETTINGS)
    if unknown:
        raise TypeError(f"plan_layout() got unknown settings: {', '.join(sorted(unknown))}")
    if "lora_target_modules" in fixed:
        fixed["lora_target_modules"] = parse_targets(fixed["lora_target_modules"])
    base = TARGET.replace(backend="trl", **fixed)
    if "lora_rank" in fixed and "lora_alpha" not in fixed:
        base = base.replace(lora_alpha=ALPHA_PER_RANK * fixed["lora_rank"])
    if base.seq_len > model.max_context:
        raise BudgetError(f"max prompt {base.max_prompt_length} + completion {base.max_completion_length} = "
                          f"{base.seq_len} tokens exceeds {model.id}'s context of {model.max_context}; "
                          "lower --max-completion.")
    if prompts_per_step is not None and prompts_per_step < 1:
        raise BudgetError(f"prompts per step must be at least 1, got {prompts_per_step}.")
    usable = int(gpu.vram_mib * 1024**2 * (1 - headroom))

    cands: list[_Candidate] = []
    closest: _Candidate | None = None
    for tp in TP_SIZES:
        trainers = gpus - tp
        if trainers < 1 or not valid_tp(model, tp):
            continue
        prompts = _prompts(prompts_per_step, base.num_generations, trainers)
        if prompts is None:
            continue
        completions = prompts * base.num_generations
        server, conc = server_memory(model, gpu, base.replace(per_device_train_batch_size=completions,
                                                             gradient_accumulation_steps=1), tp, usable)
        for stage in ZERO_STAGES if trainers > 1 else (0,):
            for b in _micro_batches(fixed, completions, trainers):
                s = base.replace(per_device_train_batch_size=b, gradient_accumulation_steps=completions // (b * trainers))
                trainer = trainer_memory(model, s, trainers, stage, usable)
                c = _Candidate(tp, trainers, stage, s, server, trainer, conc,
                               step_time(model, gpu, s, tp, trainers, stage, max(conc, 1)))
                if closest is None or max(trainer.total, server.total) < max(closest.trainer.total, closest.server.total):
                    closest = c
                if trainer.fits and server.fits and conc >= base.num_generations:
                    cands.append(c)
                    break  # the largest micro-batch that fits this (tp, stage)
    if closest is None:
        raise BudgetError(f"{model.id} has {model.num_heads} attention heads: no tensor-parallel size in "
                          f"{TP_SIZES} below {gpus} GPUs divides them; use more GPUs.")
    best = _choose(cands)
    if best is None:
        return _no_fit(closest, gpu, model, hours, gpus, headroom)
    layout = _layout(best, gpu, model, hours, gpus, headroom, fits=True)
    layout.reasons = _reasons(best, cands, model, gpus)
    layout.warnings = _warnings(layout)
    return layout


def _prompts(fixed: int | None, k: int, trainers: int) -> int | None:
    """Prompts per step: the fixed number, or the most up to MAX_PROMPTS_PER_STEP whose k·prompts
    completions split evenly over the training processes (TRL deals whole batches to each)."""
    options = [fixed] if fixed else range(MAX_PROMPTS_PER_STEP, 0, -1)
    return next((p for p in options if (p * k) % trainers == 0), None)


def _micro_batches(fixed: dict, completions: int, trainers: int) -> list[int]:
    if "per_device_train_batch_size" in fixed:
        b = fixed["per_device_train_batch_size"]
        return [b] if completions % (b * trainers) == 0 else []
    return [b for b in MICRO_BATCHES if completions % (b * trainers) == 0]


def _choose(cands: list[_Candidate]) -> _Candidate | None:
    """Fewest server GPUs and the lowest ZeRO stage first; a choice that costs more GPUs or more
    communication (ZeRO-3's weight all-gathers) must be MIN_GAIN faster per completion (the step's
    size may differ between splits). ZeRO-2 moves what DDP moves (a reduce-scatter and an
    all-gather are one all-reduce), so it only has to be faster: it is when it fits a bigger micro-batch."""
    best = None
    for c in sorted(cands, key=lambda c: (c.tp, c.stage)):
        free = best is not None and c.tp == best.tp and c.stage == 2
        if best is None or c.seconds_per_completion < best.seconds_per_completion * (1 - (0 if free else MIN_GAIN)):
            best = c
    return best


def _layout(c: _Candidate, gpu: GPU, model: ModelArch, hours: float, gpus: int, headroom: float, fits: bool) -> Layout:
    shape = c.shape.replace(generation_concurrency=c.concurrency or None)
    steps = timing.steps_in_budget(c.step.total_s, hours, "vllm")
    return Layout(fits=fits, gpu=gpu, model=model, hours=hours, num_gpus=gpus, server_gpus=c.tp,
                  trainer_gpus=c.trainers, zero_stage=c.stage, shape=shape, server=c.server, trainer=c.trainer,
                  step=c.step, est_steps=steps, headroom=headroom)


def _gib(x: int) -> str:
    return f"{x / GIB:.1f} GiB"


def _reasons(best: _Candidate, cands: list[_Candidate], model: ModelArch, gpus: int) -> list[str]:
    """Why this many server GPUs and this ZeRO stage, in the terms that decided it."""
    out = []
    total = best.shape.generation_batch_size * best.trainers
    waves = math.ceil(total / best.concurrency)
    out.append(f"{best.tp} GPU(s) serve vLLM (tensor parallel {best.tp}): each holds {_gib(best.server.terms['vllm_weights'])} "
               f"of weights and KV cache for {best.concurrency} of the step's {total} completions"
               + (f" ({waves} waves)" if waves > 1 else "") + f"; {best.trainers} GPU(s) train")
    others = [c for c in cands if c.tp != best.tp]
    if others:
        alt = min(others, key=lambda c: c.step.total_s)
        out.append(f"{alt.tp} server GPU(s) would take {alt.seconds_per_completion:.2f} s per completion against "
                   f"{best.seconds_per_completion:.2f} s")
    t = best.trainer.terms
    same_tp = {c.stage: c for c in cands if c.tp == best.tp}
    if best.trainers == 1:
        out.append("one training process: no DDP or ZeRO needed")
    elif best.stage == 0:
        out.append(f"DDP: every trainer GPU holds the full {_gib(t['base_weights'])} of base weights and its own adapter "
                   f"state, and micro-batch {best.shape.per_device_train_batch_size} still fits"
                   + ("; a ZeRO stage would not make the step faster" if len(same_tp) > 1 else ""))
    else:
        ddp = same_tp.get(0)
        before = (f"DDP fits only micro-batch {ddp.shape.per_device_train_batch_size} ({ddp.step.total_s:.0f} s per step)"
                  if ddp else "DDP does not fit")
        if best.stage == 2:
            full = t["lora_grads"] * best.trainers * 2 + t["optimizer_states"] * best.trainers  # DDP: grads + buckets
            why = (f"ZeRO-2 shards the adapter's gradients and AdamW states over {best.trainers} GPUs "
                   f"({_gib(t['lora_grads'] + t['optimizer_states'])} per GPU instead of DDP's {_gib(full)} with its "
                   "gradient buckets) at DDP's communication cost")
        else:
            why = (f"ZeRO-3 also shards the {_gib(t['base_weights'] * best.trainers)} of base weights "
                   f"({_gib(t['base_weights'])} per GPU), at three weight all-gathers per micro-batch; "
                   f"the weight sync still gathers the whole model (peak: {best.trainer.peak_phase})")
        out.append(f"{before}; {why}: micro-batch {best.shape.per_device_train_batch_size}, "
                   f"{best.step.total_s:.0f} s per step")
    return out


def _warnings(layout: Layout) -> list[str]:
    w = []
    if not layout.gpu.bf16:
        w.append(f"{layout.gpu.name} has no bfloat16: training and vLLM run in float16")
    if not layout.model.verified:
        w.append(f"{layout.model.id}: architecture numbers read from a derivative config (catalog 'verified': false)")
    if layout.zero_stage:
        w.append("DeepSpeed must be installed on the machine (pip install deepspeed)")
    if layout.est_steps < 50:
        w.append(f"the budget holds only about {layout.est_steps} optimizer steps")
    return w


def _no_fit(c: _Candidate, gpu: GPU, model: ModelArch, hours: float, gpus: int, headroom: float) -> Layout:
    lay = _layout(c, gpu, model, hours, gpus, headroom, fits=False)
    role = c.trainer if not c.trainer.fits else c.server
    term = max(role.terms, key=role.terms.get)
    lay.warnings.append(f"nothing fits: the {role.role} needs {_gib(role.total)} of {_gib(role.usable)} usable per GPU "
                        f"at best; largest term {term} ({_gib(role.terms[term])})")
    lay.suggestions = ["more GPUs", "a lower --rank or --max-completion", "a GPU with more memory"]
    return lay


def layout_for_config(gpus: int, config, hours: float | None = None) -> Layout:
    """The layout for a RunConfig (a recipe or a YAML file): the settings it fixes stay fixed."""
    from budgetreason.plan.architectures import TINY_MODEL_ID

    model = config.model or "Qwen/Qwen2.5-1.5B-Instruct"
    if model == TINY_MODEL_ID:
        raise BudgetError("--gpus needs a hub model; the tiny model trains on the CPU.")
    fixed = {k: getattr(config, k) for k in SHAPE_SETTINGS if getattr(config, k, None) is not None}
    if config.gradient_accumulation_steps and config.per_device_train_batch_size:
        raise BudgetError("With --gpus, give --batch (per GPU) and let the planner choose --grad-accum.")
    gpu = config.gpu if config.gpu not in (None, "") else "auto"
    return plan_layout(gpus, gpu, model, hours or config.budget_hours or 24.0, vram_gb=config.vram_gb,
                       headroom=config.headroom, prompts_per_step=getattr(config, "prompts_per_step", None), **fixed)


def layout_view(layout: Layout):
    """A rich rendering: the split, the shape, memory per role term by term, time, and why."""
    from rich.console import Group
    from rich.table import Table

    d = layout.to_dict()
    title = (f"{layout.model.id} on {layout.num_gpus}× {layout.gpu.name}, {layout.hours:g} h — "
             f"{'fits' if layout.fits else 'does NOT fit'}")
    top = Table(title=title, show_header=False, box=None)
    c = d["config"]
    for k, v in [("server", f"{layout.server_gpus} GPU(s), vLLM tensor parallel {layout.tensor_parallel_size}, "
                            f"--gpu_memory_utilization {layout.vllm_gpu_memory_utilization:.2f}"),
                 ("trainer", f"{layout.trainer_gpus} GPU(s), {d['distributed']}"),
                 ("LoRA", f"rank {c['lora_rank']}, alpha {c['lora_alpha']}"),
                 ("per step", f"{d['prompts_per_step']} prompts × k={c['num_generations']} = {d['completions_per_step']} completions"),
                 ("per trainer GPU", f"micro-batch {c['per_device_train_batch_size']} × "
                                     f"{c['gradient_accumulation_steps']} accumulation"),
                 ("prompt / completion", f"{c['max_prompt_length']} / {c['max_completion_length']} tokens"),
                 ("time", f"{d['est_step_seconds']:.0f} s per step, about {d['est_steps']} steps"
                          + (f", ${d['est_cost_usd']:.2f}" if d["est_cost_usd"] is not None else ""))]:
        top.add_row(k, v)
    mem = Table(title="Memory per GPU (GiB)")
    mem.add_column("term")
    mem.add_column("server", justify="right")
    mem.add_column("trainer", justify="right")
    s, t = d["roles"]["server"], d["roles"]["trainer"]
    for term in dict.fromkeys(SERVER_TERMS + TRAINER_TERMS):
        sv, tv = s["memory_gib"].get(term, 0.0), t["memory_gib"].get(term, 0.0)
        if sv or tv:
            mem.add_row(term, f"{sv:.2f}" if term in s["memory_gib"] else "", f"{tv:.2f}" if term in t["memory_gib"] else "")
    mem.add_row("total (peak)", f"{s['total_gib']:.2f}", f"{t['total_gib']:.2f} ({t['peak_phase']})")
    mem.add_row("usable", f"{s['usable_gib']:.2f}", f"{t['usable_gib']:.2f}")
    notes = Table(show_header=False, box=None)
    for r in layout.reasons:
        notes.add_row("why", r)
    for w in layout.warnings:
        notes.add_row("warning", w)
    for sug in layout.suggestions:
        notes.add_row("would fit", sug)
    return Group(top, mem, notes)
