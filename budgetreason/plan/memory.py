"""Peak GPU memory of one GRPO step with LoRA, gradient checkpointing and colocated vLLM.

Each term is a separate function of (model, GPU, shape) so the planner can show it and the
docs (docs/planner.md) can give its formula. All results are bytes; ``estimate`` returns GiB.

Symbols used in comments: L layers, h hidden, i intermediate, q = heads·head_dim,
kv = kv_heads·head_dim, V vocab, r LoRA rank, b micro-batch (completions), G generation batch,
P/C max prompt/completion tokens, S = P + C, w bytes per 16-bit value (2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from budgetreason.plan.architectures import ModelArch
from budgetreason.plan.hardware import GIB, GPU
from budgetreason.plan.shape import Shape

W = 2  # bytes of a bf16/fp16 value

#: CUDA context, cuBLAS workspaces and the allocator's first blocks: 0.3-0.7 GB in practice
#: (shared/REFERENCE.md); budgetreason takes the top of that range.
CUDA_CONTEXT_BYTES = int(0.7 * GIB)
#: bitsandbytes NF4 with double quantisation: 4 bits + 8-bit absmax per 64 values + fp32 absmax
#: of those per 256 blocks ≈ 4.127 bits per weight (QLoRA paper, Dettmers et al. 2023).
NF4_BITS = 4.127
#: TRL's fused LM head (trl/kernels/chunked_logprob.py): tiles of 4096 tokens × 32768 vocab.
TRL_TOKEN_TILE, TRL_VOCAB_TILE = 4096, 32768
#: vLLM's default token budget for one scheduler step, which its start-up profile run uses.
VLLM_MAX_BATCHED_TOKENS = 8192
#: vLLM's default cap on sequences decoded together (max_num_seqs).
VLLM_MAX_NUM_SEQS = 256
#: Allocator fragmentation: 10-20% of in-use memory in OOM reports (REFERENCE.md); applied to the
#: memory that is allocated and freed every step (activations, logits, gradients).
FRAGMENTATION = 0.15
#: Backward keeps gradients about as large as the saved forward tensors of the layer it is in.
BACKWARD_FACTOR = 2.0

TERMS = ("cuda_context", "base_weights", "lora_params", "lora_grads", "optimizer_states", "activations",
         "logits", "vllm_weights", "kv_cache", "vllm_activations", "cuda_graphs", "fragmentation")


@dataclass
class MemoryEstimate:
    """Bytes per term, the peak they add up to, and the vLLM memory share that holds vLLM's part."""

    terms: dict[str, int]
    total: int
    vllm_gpu_memory_utilization: float
    peak_phase: str = "train"
    """Which phase the total is the peak of: 'train', or 'generate' where generation is larger."""
    notes: list[str] = field(default_factory=list)

    def gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in self.terms.items()}

    def largest_term(self) -> str:
        return max(self.terms, key=self.terms.get)


# ---- static terms ----------------------------------------------------------------------
def base_weight_bytes(arch: ModelArch, shape: Shape) -> int:
    """16-bit: params·w. 4-bit: projections at NF4_BITS, embeddings/norms/biases stay 16-bit."""
    if not shape.load_in_4bit:
        return arch.param_count() * W
    return int(arch.linear_params() * NF4_BITS / 8) + (arch.embedding_params() + arch.small_params()) * W


def lora_param_count(arch: ModelArch, shape: Shape) -> int:
    return arch.lora_params(shape.lora_rank, shape.lora_target_modules)


def lora_param_bytes(arch: ModelArch, shape: Shape) -> int:
    """Adapters are kept in fp32 (PEFT's autocast_adapter_dtype upcasts bf16 adapters): 4 bytes each."""
    return lora_param_count(arch, shape) * 4


def optimizer_bytes(arch: ModelArch, shape: Shape) -> int:
    """AdamW: two fp32 moments (8 bytes/param); 8-bit AdamW: two int8 moments plus block scales (~2 bytes)."""
    per = 2.0 if shape.optim == "adamw_8bit" else 8.0
    return int(lora_param_count(arch, shape) * per)


# ---- per-step terms ----------------------------------------------------------------------
def layer_token_bytes(arch: ModelArch, shape: Shape) -> float:
    """Bytes one token holds while one decoder layer is recomputed and back-propagated.

    Saved forward tensors per token (16-bit): norm outputs and residuals (5h), q/k/v before and
    after RoPE plus the attention output (3q + 3kv), MLP gate, up, act(gate), act·up (4i), and
    fp32 RMSNorm temporaries (4h in 16-bit units). Each LoRA projection adds its input cast for
    the adapter (d_in) and the rank-r intermediate (r), twice with dropout. Backward holds
    gradients of about the same size (BACKWARD_FACTOR). Attention itself is SDPA/flash: O(S).
    """
    h, i = arch.hidden_size, arch.intermediate_size
    q, kv = arch.num_heads * arch.head_dim, arch.num_kv_heads * arch.head_dim
    elems = 5 * h + 3 * q + 3 * kv + 4 * i + 4 * h
    shapes = arch.linear_shapes()
    copies = 2 if shape.lora_dropout > 0 else 1
    elems += sum(copies * shapes[t][0] + shape.lora_rank for t in shape.lora_target_modules)
    return elems * W * BACKWARD_FACTOR


def activation_bytes(arch: ModelArch, shape: Shape) -> int:
    """Checkpointed boundaries plus one layer's recompute working set, for one micro-batch.

    Boundaries: one hidden state per layer, L·b·S·h·w. Unsloth's "unsloth" checkpointing
    offloads them to CPU RAM, keeping about two layers' worth on the GPU.
    """
    tokens = shape.per_device_train_batch_size * shape.seq_len
    boundary_layers = 2 if shape.backend == "unsloth" else arch.num_layers
    boundaries = boundary_layers * tokens * arch.hidden_size * W
    return int(boundaries + tokens * layer_token_bytes(arch, shape))


def logits_bytes(arch: ModelArch, shape: Shape) -> int:
    """Log-prob working set of the LM head for one micro-batch of N = b·C completion tokens.

    GPU paths never build the full [N, V] logits: TRL 1.15's fused head projects tiles of
    4096 tokens × 32768 vocab (a 16-bit tile, once in forward, once in backward) and keeps the
    selected hidden states (N·h·w), their fp32 gradient (N·h·4) and per-token fp32 statistics.
    Unsloth's GRPO loss also chunks; budgetreason models both with the same tile. Without the
    chunking (materialised logits) this term would be N·V·(w + 4): 2.2 GiB per 3584-token
    completion for a 152k vocabulary, which is why micro-batch size matters on older stacks.
    The hf backend on CPU uses budgetreason's plain-PyTorch head: fp32 tiles of 512 tokens.
    """
    n = shape.per_device_train_batch_size * shape.max_completion_length
    h, v = arch.hidden_size, arch.vocab_size
    if shape.backend == "hf":
        tile = min(n, 512) * v * 4 * 3  # logits, log_softmax, grad in fp32
    else:
        tile = min(n, TRL_TOKEN_TILE) * min(v, TRL_VOCAB_TILE) * W * 2
    return int(tile + n * (h * (W + 4) + 32))


def kv_cache_bytes(arch: ModelArch, shape: Shape) -> int:
    """KV cache for the sequences decoded together: concurrency · kv_bytes(S).

    kv_bytes(S) = 2 · L · kv_heads · head_dim · w · S (Qwen2.5-1.5B: 28 KiB per token);
    Gemma 3's sliding-window layers hold at most their window.
    """
    return shape.concurrency * arch.kv_bytes(shape.seq_len, W)


def vllm_activation_bytes(arch: ModelArch, shape: Shape) -> int:
    """vLLM's profiled forward peak: 8192 batched tokens through one layer, plus the sampler's fp32
    logits for up to 256 sequences. vLLM reserves it inside its memory share."""
    h, i = arch.hidden_size, arch.intermediate_size
    q, kv = arch.num_heads * arch.head_dim, arch.num_kv_heads * arch.head_dim
    per_token = (2 * h + q + 2 * kv + 2 * i) * W
    seqs = min(shape.concurrency, VLLM_MAX_NUM_SEQS)
    return VLLM_MAX_BATCHED_TOKENS * per_token + seqs * arch.vocab_size * 4


def cuda_graph_bytes(arch: ModelArch, shape: Shape) -> int:
    """vLLM captures decode CUDA graphs for batch sizes up to max_num_seqs; their private pools
    take 0.3-1.5 GiB in vLLM's start-up logs, growing with depth and width. Heuristic:
    0.25 GiB + 1e-5 GiB per (layer · hidden unit). Calibrate with ``budgetreason calibrate``."""
    return int((0.25 + 1e-5 * arch.num_layers * arch.hidden_size) * GIB)


def hf_generation_bytes(arch: ModelArch, shape: Shape) -> int:
    """transformers ``generate``: a dynamic KV cache for the whole generation batch plus the last
    position's fp32 logits for every sequence."""
    g = shape.generation_batch_size
    return g * arch.kv_bytes(shape.seq_len, W) + g * arch.vocab_size * 4 * 2


# ---- the sum -------------------------------------------------------------------------------
def estimate(arch: ModelArch, gpu: GPU, shape: Shape) -> MemoryEstimate:
    """All terms and the peak, for the shape's backend.

    unsloth: one weight copy lives in vLLM's pool and training reads it.
    trl:     training weights plus vLLM's own copy.
    hf, and unsloth with ``generation="hf"``: no vLLM (no KV pool, graphs or second share);
             generation and training alternate, the peak is the larger phase.
    With standby/sleep, the KV cache (and vLLM's activations and graphs) are released while
    training, so the peak is the larger of the generation phase and the training phase.
    """
    weights = base_weight_bytes(arch, shape)
    t = dict.fromkeys(TERMS, 0)
    t["cuda_context"] = CUDA_CONTEXT_BYTES if gpu.is_cuda else 0
    t["base_weights"] = weights
    t["lora_params"] = lora_param_bytes(arch, shape)
    t["lora_grads"] = lora_param_bytes(arch, shape)
    t["optimizer_states"] = optimizer_bytes(arch, shape)
    t["activations"] = activation_bytes(arch, shape)
    t["logits"] = logits_bytes(arch, shape)
    dynamic = t["activations"] + t["logits"] + t["lora_grads"]
    t["fragmentation"] = int(FRAGMENTATION * dynamic)
    notes: list[str] = []
    vllm_pool = 0
    if shape.uses_vllm:
        t["vllm_weights"] = weights if shape.backend == "trl" else 0
        t["kv_cache"] = kv_cache_bytes(arch, shape)
        t["vllm_activations"] = vllm_activation_bytes(arch, shape)
        t["cuda_graphs"] = cuda_graph_bytes(arch, shape)
        # vLLM's share holds its weights (shared ones too, in Unsloth's mode), KV and profile peak.
        vllm_pool = weights + t["kv_cache"] + t["vllm_activations"]
    static = t["cuda_context"] + t["base_weights"] + t["lora_params"] + t["optimizer_states"] + t["vllm_weights"]
    train_phase = static + dynamic + t["fragmentation"]
    gen_phase = static + t["kv_cache"] + t["vllm_activations"] + t["cuda_graphs"]
    phase = "train"
    if not shape.uses_vllm:
        t["kv_cache"] = hf_generation_bytes(arch, shape)
        gen_phase = static + t["kv_cache"]
        total = max(train_phase, gen_phase)
        phase = "generate" if gen_phase > train_phase else "train"
        notes.append("no vLLM: generation and training alternate; the peak is the larger phase")
    elif shape.vllm_standby:
        total = max(train_phase + t["cuda_graphs"], gen_phase)
        phase = "generate" if gen_phase > train_phase + t["cuda_graphs"] else "train"
        notes.append("standby: vLLM's KV cache is released while training")
    else:
        total = train_phase + t["kv_cache"] + t["vllm_activations"] + t["cuda_graphs"]
    util = 0.0
    if shape.uses_vllm:
        util = min(0.95, _round_up(vllm_pool / (gpu.vram_mib * 1024**2), 0.01))
    return MemoryEstimate(terms=t, total=int(total), vllm_gpu_memory_utilization=util, peak_phase=phase, notes=notes)


def _round_up(x: float, step: float) -> float:
    import math

    return round(math.ceil(x / step - 1e-9) * step, 4)
