"""budgetreason: teach a small language model to reason with GRPO on LoRA, on one GPU, on a budget.

The public API is imported lazily so ``import budgetreason`` (and the CLI) stays fast:
heavy libraries (torch, transformers, TRL) load only when a training or evaluation function
is called.

    >>> import budgetreason
    >>> budgetreason.plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", hours=24).fits
    True
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "plan": ("budgetreason.planner", "plan"),
    "Plan": ("budgetreason.planner", "Plan"),
    "RunConfig": ("budgetreason.config", "RunConfig"),
    "train": ("budgetreason.training", "train"),
    "evaluate": ("budgetreason.evaluation", "evaluate"),
    "compare": ("budgetreason.comparison", "compare"),
    "report": ("budgetreason.reporting", "report"),
    "sweep": ("budgetreason.sweeps", "sweep"),
    "demo": ("budgetreason.demonstration", "demo"),
    "detect_local_gpu": ("budgetreason.hardware", "detect_local_gpu"),
    "BudgetError": ("budgetreason.errors", "BudgetError"),
    "answers_match": ("budgetreason.verify", "answers_match"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'budgetreason' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
