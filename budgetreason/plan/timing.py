"""Seconds per GRPO step, steps in a budget, and dollars.

A step is generation (decode bound by memory bandwidth, or by FLOPs at large batch), then
training (bound by FLOPs), then fixed overheads (rewards, syncing the adapter into vLLM,
logging). The constants below are the model's only free numbers; docs/planner.md compares
its predictions with the papers' published timings, and ``budgetreason calibrate`` replaces
them with measurements on your GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from budgetreason.plan.architectures import ModelArch
from budgetreason.plan.hardware import GPU
from budgetreason.plan.shape import Shape

#: Fraction of peak memory bandwidth a decode step reaches, per generation engine (``Shape.engine``):
#: vLLM (CUDA graphs, paged KV), Unsloth's patched transformers generate, transformers' generate.
DECODE_BW_EFFICIENCY = {"vllm": 0.6, "unsloth": 0.5, "transformers": 0.5}
#: Fraction of peak 16-bit FLOP/s reached by decode at large batch, by prefill, and by training
#: (LoRA + checkpointing on 1-8B models: MFU of 0.3-0.4 is typical for single-GPU fine-tuning).
DECODE_FLOP_EFFICIENCY = 0.5
PREFILL_FLOP_EFFICIENCY = 0.4
TRAIN_MFU = 0.3
#: Small micro-batches use the GPU less well: MFU scales by tokens / (tokens + this many tokens).
TRAIN_HALF_EFFICIENCY_TOKENS = 512
#: Fixed cost of one micro-batch (kernel launches through every layer three times, Python).
MICRO_STEP_OVERHEAD_S = {"unsloth": 0.05, "trl": 0.05, "hf": 0.01}
#: Per decode step: scheduling, sampling and detokenisation (vLLM) or Python and sampling overhead.
DECODE_STEP_OVERHEAD_S = {"vllm": 0.004, "unsloth": 0.01, "transformers": 0.015}
#: Per decode step and decoder layer: eager kernel launches and Python, which CUDA graphs remove.
#: transformers: fitted to the one measured point (H100, Qwen2.5-1.5B, 128 × 256 tokens: 17 s/step, 2 steps,
#: the first included; the model now says 16.6 s, see docs/planner.md); Unsloth's inference mode: half of it
#: (its "2x faster inference"), not yet measured.
#: On the CPU the GPU-launch part does not exist; the term applies to CUDA GPUs only.
DECODE_LAYER_OVERHEAD_S = {"vllm": 0.0, "unsloth": 0.00065, "transformers": 0.0013}
#: Completion lengths as fractions of the maximum: the mean, and the longest in a generation
#: batch (which sets the wave's duration and TRL's padding). Reasoning models at 3584 tokens
#: run at least one sample to the limit in most batches.
MEAN_COMPLETION_FRACTION = 0.55
LONGEST_COMPLETION_FRACTION = 1.0
#: Longest prompt in a batch as a fraction of max_prompt_length (prompts are padded to it).
LONGEST_PROMPT_FRACTION = 0.6
#: Fixed per-step work: reward scoring, logging, tokenisation (seconds), by back-end.
STEP_FIXED_S = {"unsloth": 2.0, "trl": 3.0, "hf": 0.2}
#: Of it, what only the vLLM path pays (switching the engine between generation and training).
VLLM_STEP_FIXED_S = {"unsloth": 1.5, "trl": 2.5}
#: Host-device copies when syncing weights into vLLM (bytes/s).
SYNC_BYTES_PER_S = 5e9
#: Start-up (model load, vLLM profile, CUDA graph capture; Unsloth's patching) and the final save, in
#: seconds, by generation engine.
STARTUP_S = {"vllm": 240.0, "unsloth": 60.0, "transformers": 20.0}
FINAL_SAVE_S = 60.0


@dataclass
class StepTime:
    generate_s: float
    train_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return self.generate_s + self.train_s + self.overhead_s

    def to_dict(self) -> dict:
        return {"generate_s": round(self.generate_s, 2), "train_s": round(self.train_s, 2),
                "overhead_s": round(self.overhead_s, 2), "total_s": round(self.total_s, 2)}


def _peak_flops(gpu: GPU) -> float:
    return gpu.tflops_16bit * 1e12


def generate_seconds(arch: ModelArch, gpu: GPU, shape: Shape) -> float:
    """Decode the generation batch in waves of `concurrency` sequences.

    Each decode step reads the 16-bit weights (4-bit NF4 decodes no faster in vLLM: the
    dequantisation eats the saving), the LoRA weights (vLLM applies the adapter unmerged) and
    the KV cache of the active sequences; at large batch the 2·N·active FLOPs bound it instead.
    A wave lasts as long as its longest completion; sequences leave as they finish.
    """
    c, g = shape.concurrency, shape.generation_batch_size
    waves = math.ceil(g / c)
    p, cmax = shape.max_prompt_length * LONGEST_PROMPT_FRACTION, shape.max_completion_length
    steps = cmax * LONGEST_COMPLETION_FRACTION
    active = c * MEAN_COMPLETION_FRACTION / LONGEST_COMPLETION_FRACTION
    avg_ctx = p + MEAN_COMPLETION_FRACTION * cmax / 2
    n_params = arch.param_count()
    n_lora = arch.lora_params(shape.lora_rank, shape.lora_target_modules)
    bytes_per_step = (n_params + n_lora) * 2 + active * arch.kv_bytes(int(avg_ctx))
    flops = 2 * (n_params + n_lora) * active / (_peak_flops(gpu) * DECODE_FLOP_EFFICIENCY)
    engine = shape.engine
    bw = gpu.mem_bw_gbs * 1e9 * DECODE_BW_EFFICIENCY[engine]
    launches = arch.num_layers * DECODE_LAYER_OVERHEAD_S[engine] if gpu.is_cuda else 0.0
    step_s = max(bytes_per_step / bw, flops) + DECODE_STEP_OVERHEAD_S[engine] + launches
    prefill = g * p * 2 * n_params / (_peak_flops(gpu) * PREFILL_FLOP_EFFICIENCY)
    return waves * steps * step_s + prefill


def train_flops(arch: ModelArch, shape: Shape) -> float:
    """FLOPs of one optimizer step over the padded generation batch.

    Per token, frozen projections cost 6·N (forward, checkpoint recompute, activation
    gradients; no weight gradients), LoRA 8·N_lora (its weight gradients too), attention
    8·L·q·S (causal QKᵀ and AV, three passes), the LM head 6·V·h on completion tokens only
    (TRL's fused head skips prompt positions and recomputes tiles in backward); a KL term
    (beta > 0) adds one forward pass with the adapter disabled.
    """
    p = shape.max_prompt_length * LONGEST_PROMPT_FRACTION
    cpad = shape.max_completion_length * LONGEST_COMPLETION_FRACTION
    seq = p + cpad
    tokens = shape.generation_batch_size * seq
    n_proj = arch.linear_params()
    n_lora = arch.lora_params(shape.lora_rank, shape.lora_target_modules)
    q = arch.num_heads * arch.head_dim
    per_token = 6 * n_proj + 8 * n_lora + 8 * arch.num_layers * q * seq
    if shape.beta > 0:
        per_token += 2 * n_proj + 4 * arch.num_layers * q * seq / 3
    head = 6 * arch.vocab_size * arch.hidden_size * shape.generation_batch_size * cpad
    if shape.beta > 0:
        head += 2 * arch.vocab_size * arch.hidden_size * shape.generation_batch_size * cpad
    return tokens * per_token + head


def train_seconds(arch: ModelArch, gpu: GPU, shape: Shape) -> float:
    """FLOPs at TRAIN_MFU, scaled down for small micro-batches, plus a fixed cost per micro-batch."""
    micro_tokens = shape.per_device_train_batch_size * (
        shape.max_prompt_length * LONGEST_PROMPT_FRACTION + shape.max_completion_length * LONGEST_COMPLETION_FRACTION)
    mfu = TRAIN_MFU * micro_tokens / (micro_tokens + TRAIN_HALF_EFFICIENCY_TOKENS)
    micro_steps = shape.generation_batch_size / shape.per_device_train_batch_size
    return train_flops(arch, shape) / (_peak_flops(gpu) * mfu) + micro_steps * MICRO_STEP_OVERHEAD_S[shape.backend]


def overhead_seconds(arch: ModelArch, gpu: GPU, shape: Shape) -> float:
    """Fixed work plus moving weights into vLLM: Unsloth loads the fp32 adapter, TRL the merged model."""
    fixed = STEP_FIXED_S[shape.backend]
    if shape.backend == "unsloth" and not shape.uses_vllm:
        fixed -= VLLM_STEP_FIXED_S["unsloth"]  # no engine to switch, no adapter to sync
    elif shape.backend == "unsloth":
        fixed += arch.lora_params(shape.lora_rank, shape.lora_target_modules) * 4 / SYNC_BYTES_PER_S
    elif shape.backend == "trl":
        fixed += arch.param_count() * 2 / SYNC_BYTES_PER_S
    if shape.vllm_standby and shape.uses_vllm:
        fixed += 2.0  # releasing and re-allocating the KV cache
    return fixed


def step_time(arch: ModelArch, gpu: GPU, shape: Shape) -> StepTime:
    return StepTime(generate_seconds(arch, gpu, shape), train_seconds(arch, gpu, shape),
                    overhead_seconds(arch, gpu, shape))


def steps_in_budget(step_s: float, hours: float, engine: str) -> int:
    """Optimizer steps that fit in `hours`, after start-up (by generation engine) and the final save."""
    usable = hours * 3600 - STARTUP_S[engine] - FINAL_SAVE_S
    return max(0, int(usable // step_s)) if step_s > 0 else 0
