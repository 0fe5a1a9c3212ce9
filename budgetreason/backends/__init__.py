"""Model back-ends: how the policy and its LoRA adapter are loaded.

``hf``: transformers + PEFT (CPU, or a GPU without Unsloth); generation by transformers,
or by TRL's colocated vLLM in the ``trl`` variant. ``unsloth``: Unsloth's FastLanguageModel
with its colocated vLLM engine sharing one copy of the weights. Every back-end returns the
same ``Loaded`` triple, and the same TRL GRPOTrainer trains it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from budgetreason.errors import BudgetError
from budgetreason.hardware import GPU


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    peft_config: Any | None
    """A peft.LoraConfig for GRPOTrainer to apply, or None when the model already carries the adapter."""


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_backend(requested: str, gpu: GPU) -> str:
    """'auto' → unsloth on a CUDA GPU with Unsloth and vLLM installed, else trl with vLLM, else hf."""
    if requested == "auto":
        if not gpu.is_cuda:
            return "hf"
        if installed("unsloth") and installed("vllm"):
            return "unsloth"
        return "trl" if installed("vllm") else "hf"
    if requested in ("unsloth", "trl") and not gpu.is_cuda:
        raise BudgetError(f"--backend {requested} needs a CUDA GPU (vLLM and Unsloth's kernels); use --backend hf on the CPU.")
    if requested == "unsloth" and not installed("unsloth"):
        raise BudgetError("--backend unsloth needs the [gpu] extra: pip install -e '.[gpu]'.")
    if requested in ("unsloth", "trl") and not installed("vllm"):
        raise BudgetError(f"--backend {requested} needs vLLM: pip install -e '.[gpu]'.")
    return requested


def quiet_progress_bars() -> None:
    """transformers' "Loading weights" bars are noise in a CLI that prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def model_path(model_id: str) -> str:
    """Where to load weights from: the built-in tiny model's folder, or the id/path as given."""
    from budgetreason.models import TINY_MODEL_ID, tiny_model_dir

    return str(tiny_model_dir()) if model_id == TINY_MODEL_ID else model_id
