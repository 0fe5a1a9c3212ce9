"""Unsloth: fast LoRA kernels, and vLLM colocated on the same copy of the weights (or no vLLM).

Unsloth must be imported before TRL (and transformers/peft): the import patches TRL's
GRPOTrainer so that, given a model with a ``vllm_engine``, it generates with that engine
(one copy of the base weights) instead of starting a second vLLM. ``budgetreason.train``
therefore loads the model through this module before it imports anything from TRL.
Standby (``UNSLOTH_VLLM_STANDBY=1``, set before the import) frees vLLM's KV cache while
training. Without a CUDA GPU Unsloth falls back to an SFT-only CPU backend and patches
nothing, so this module is only used on a GPU.

Without vLLM (``fast_inference=False``: ``--generation hf``) the model has no ``vllm_engine``, so
Unsloth's patched GRPOTrainer keeps ``use_vllm=False`` and generates with transformers'
``generate`` inside ``FastLanguageModel.for_inference`` (unsloth/models/rl.py,
``unsloth_unwrap_model_for_generation``), switching back with ``for_training`` afterwards.
``from_pretrained`` imports bitsandbytes even for 16-bit LoRA (REFERENCE.md, measured on an H100).
"""

from __future__ import annotations

import os
import sys

from budgetreason.errors import BudgetError
from budgetreason.models.backends import Loaded, model_path


def check_import_order() -> None:
    """Refuse to go on if TRL was imported before Unsloth: its GRPOTrainer would stay unpatched."""
    if "trl" in sys.modules and "unsloth" not in sys.modules:
        raise BudgetError("TRL was imported before Unsloth, so Unsloth cannot patch its GRPOTrainer; start a fresh "
                          "Python process (or notebook runtime) and call budgetreason.train before importing trl.")


def from_pretrained_kwargs(model_id: str, *, dtype: str, load_in_4bit: bool, max_seq_length: int, seed: int,
                           lora_rank: int, gpu_memory_utilization: float | None, fast_inference: bool) -> dict:
    """Arguments of ``FastLanguageModel.from_pretrained`` (unsloth/models/loader.py); vLLM's only with vLLM."""
    import torch

    kwargs = dict(model_name=model_path(model_id), max_seq_length=max_seq_length,
                  dtype={"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype],
                  load_in_4bit=load_in_4bit, load_in_16bit=not load_in_4bit, fast_inference=fast_inference,
                  random_state=seed)
    if fast_inference:  # colocated vLLM on the training weights
        kwargs.update(gpu_memory_utilization=gpu_memory_utilization, max_lora_rank=lora_rank)
    return kwargs


def load(model_id: str, *, dtype: str, load_in_4bit: bool, lora: dict, seed: int, max_seq_length: int,
         gpu_memory_utilization: float | None, standby: bool, fast_inference: bool = True) -> Loaded:
    """FastLanguageModel (with its vLLM engine when `fast_inference`) and its LoRA; the model carries the adapter."""
    if standby and fast_inference:
        os.environ["UNSLOTH_VLLM_STANDBY"] = "1"
    check_import_order()
    import torch

    if not torch.cuda.is_available():
        raise BudgetError("The unsloth backend needs a CUDA GPU; use --backend hf on the CPU.")
    from unsloth import FastLanguageModel  # before any trl import

    model, tokenizer = FastLanguageModel.from_pretrained(**from_pretrained_kwargs(
        model_id, dtype=dtype, load_in_4bit=load_in_4bit, max_seq_length=max_seq_length, seed=seed,
        lora_rank=lora["r"], gpu_memory_utilization=gpu_memory_utilization, fast_inference=fast_inference))
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=list(lora["target_modules"]),
        use_gradient_checkpointing="unsloth",  # offloads checkpointed activations to CPU RAM
        random_state=seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(model=model, tokenizer=tokenizer, peft_config=None)
