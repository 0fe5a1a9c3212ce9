"""Model back-ends: how the policy and its LoRA adapter are loaded.

``hf``: transformers + PEFT (CPU, or a GPU without Unsloth); generation by transformers,
or by TRL's colocated vLLM in the ``trl`` variant. ``unsloth``: Unsloth's FastLanguageModel
with its colocated vLLM engine sharing one copy of the weights, or (``generation="hf"``) with
TRL's transformers generation under Unsloth's inference patches, where vLLM is not installed. Every back-end returns the
same ``Loaded`` triple, and the same TRL GRPOTrainer trains it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from budgetreason.errors import BudgetError
from budgetreason.plan.hardware import GPU


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    peft_config: Any | None
    """A peft.LoraConfig for GRPOTrainer to apply, or None when the model already carries the adapter."""


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_backend(requested: str, gpu: GPU) -> str:
    """The back-end alone (see choose_engine)."""
    return choose_engine(requested, "auto", gpu)[0]


def choose_engine(requested: str, generation: str, gpu: GPU) -> tuple[str, str]:
    """(back-end, generation) for what is asked and installed.

    'auto' → unsloth with vLLM on a CUDA GPU with both installed; unsloth with transformers'
    generate (``generation="hf"``) when Unsloth is installed and vLLM is not (Windows, a new GPU,
    a torch vLLM does not support yet); trl with vLLM; else hf. ``generation`` is auto, vllm or hf.
    """
    if generation not in ("auto", "vllm", "hf"):
        raise BudgetError(f"--generation must be auto, vllm or hf, got '{generation}'.")
    if requested == "auto":
        if not gpu.is_cuda:
            requested = "hf"
        elif installed("unsloth"):
            requested = "unsloth"
        else:
            requested = "trl" if installed("vllm") and generation != "hf" else "hf"
    if requested in ("unsloth", "trl") and not gpu.is_cuda:
        raise BudgetError(f"--backend {requested} needs a CUDA GPU (vLLM and Unsloth's kernels); use --backend hf on the CPU.")
    if requested == "unsloth" and not installed("unsloth"):
        raise BudgetError("--backend unsloth needs the [gpu] extra: pip install -e '.[gpu]'.")
    if requested == "trl" and generation == "hf":
        raise BudgetError("--backend trl always generates with vLLM; for transformers' generate use --backend hf "
                          "(or --backend unsloth --generation hf).")
    if requested == "hf" and generation == "vllm":
        raise BudgetError("--backend hf generates with transformers; for vLLM use --backend trl or unsloth.")
    if requested == "hf":
        return "hf", "hf"
    if requested == "unsloth" and generation == "auto":
        generation = "vllm" if installed("vllm") else "hf"
    if generation in ("auto", "vllm") and not installed("vllm"):
        hint = " or --generation hf (Unsloth's kernels, transformers' generate)" if requested == "unsloth" else ""
        raise BudgetError(f"--backend {requested} with vLLM generation needs vLLM: pip install -e '.[gpu]'{hint}.")
    return requested, "vllm" if generation == "auto" else generation


def quiet_progress_bars() -> None:
    """transformers' "Loading weights" bars are noise in a CLI that prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def model_path(model_id: str) -> str:
    """Where to load weights from: the built-in tiny model's folder, or the id/path as given."""
    from pathlib import Path

    from budgetreason.plan.architectures import TINY_MODEL_ID, tiny_model_dir

    if model_id == TINY_MODEL_ID:
        return str(tiny_model_dir())
    if not Path(model_id).expanduser().is_dir():
        from budgetreason.online import offline_reason

        offline_reason()  # a hub id: without the hub, load from the cache only (no half-minute of retries)
    return model_id
