"""The training shape: every setting that decides GPU memory and step time.

The planner searches over these; the memory and time models read them; ``Plan.config``
hands the chosen one to the run configuration. Names follow TRL's ``GRPOConfig`` where TRL
has the setting, so the translation to TRL stays one obvious function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from budgetreason.plan.architectures import ALL_LINEAR

#: Backends the planner models. ``unsloth``: Unsloth's kernels with vLLM colocated on one shared
#: copy of the weights. ``trl``: transformers + PEFT with TRL's colocated vLLM (a second copy).
#: ``hf``: transformers + PEFT generating with ``model.generate`` (CPU, or a GPU without vLLM).
BACKENDS = ("unsloth", "trl", "hf")
#: How completions are generated: ``vllm`` (colocated engine) or ``hf`` (transformers' generate, under
#: Unsloth's inference patches on the unsloth back-end: what a user gets where vLLM does not install).
GENERATIONS = ("vllm", "hf")
#: The three generation engines the time model tells apart (see ``Shape.engine``).
ENGINES = ("vllm", "unsloth", "transformers")
OPTIMIZERS = ("adamw_torch", "adamw_8bit")


@dataclass(frozen=True)
class Shape:
    """One GRPO configuration as far as memory and time are concerned."""

    lora_rank: int = 256
    """LoRA rank r (the micro-budget paper's best: 256)."""
    lora_alpha: int = 1024
    """LoRA alpha; budgetreason keeps Tina's ratio alpha = 4·r unless told otherwise."""
    lora_target_modules: tuple[str, ...] = ALL_LINEAR
    """Projections that get an adapter (default: all seven)."""
    num_generations: int = 8
    """Group size k: completions sampled per prompt."""
    per_device_train_batch_size: int = 8
    """Completions per training micro-batch (TRL's meaning)."""
    gradient_accumulation_steps: int = 8
    """Micro-batches per optimizer step; the generation batch is their product."""
    max_prompt_length: int = 512
    """Longest prompt in tokens (longer prompts are dropped from the dataset)."""
    max_completion_length: int = 3584
    """Longest completion in tokens."""
    load_in_4bit: bool = False
    """Base weights in bitsandbytes NF4 (QLoRA)."""
    vllm_standby: bool = False
    """Free vLLM's KV cache while training (Unsloth standby / TRL sleep mode)."""
    generation_concurrency: int | None = None
    """Sequences decoded at once; None means the whole generation batch in one wave."""
    backend: str = "unsloth"
    generation: str = "vllm"
    """vllm or hf; only the unsloth back-end has the choice (trl always uses vLLM, hf never)."""
    optim: str = "adamw_torch"
    lora_dropout: float = 0.0
    """LoRA dropout (Tina: 0.05); a dropout keeps one more copy of each adapter input."""
    beta: float = 0.0
    """KL coefficient; above 0 each step runs one more forward pass with the adapter disabled."""

    @property
    def generation_batch_size(self) -> int:
        """Completions generated per optimizer step (TRL: batch × steps_per_generation)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def prompts_per_step(self) -> int:
        return self.generation_batch_size // self.num_generations

    @property
    def concurrency(self) -> int:
        c = self.generation_concurrency or self.generation_batch_size
        return max(1, min(c, self.generation_batch_size))

    @property
    def seq_len(self) -> int:
        return self.max_prompt_length + self.max_completion_length

    @property
    def engine(self) -> str:
        """The generation engine: vllm, unsloth (Unsloth's patched generate) or transformers."""
        if self.backend == "trl" or (self.backend == "unsloth" and self.generation == "vllm"):
            return "vllm"
        return "unsloth" if self.backend == "unsloth" else "transformers"

    @property
    def uses_vllm(self) -> bool:
        return self.engine == "vllm"

    def replace(self, **kw) -> Shape:
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_target_modules"] = list(self.lora_target_modules)
        return d
