"""budgetreason: teach a small language model to reason with GRPO on LoRA, on one GPU, on a budget.

The public API is imported lazily so ``import budgetreason`` (and the CLI) stays fast:
heavy libraries (torch, transformers, TRL) load only when a training or evaluation function
is called. ``plan``, ``train``, ``evaluate`` and ``report`` are the stages' packages, callable
as their entry functions (see ``budgetreason.stage``); docs/layout.md shows how the parts stack.

    >>> import budgetreason
    >>> budgetreason.plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", hours=24).fits
    True
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "plan": ("budgetreason.plan", None),
    "Plan": ("budgetreason.plan.planner", "Plan"),
    "RunConfig": ("budgetreason.train.config", "RunConfig"),
    "train": ("budgetreason.train", None),
    "evaluate": ("budgetreason.evaluate", None),
    "compare": ("budgetreason.evaluate.comparison", "compare"),
    "report": ("budgetreason.report", None),
    "sweep": ("budgetreason.sweeps", "sweep"),
    "demo": ("budgetreason.demonstration", "demo"),
    "detect_local_gpu": ("budgetreason.plan.hardware", "detect_local_gpu"),
    "BudgetError": ("budgetreason.errors", "BudgetError"),
    "answers_match": ("budgetreason.rewards.verify", "answers_match"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        found = importlib.import_module(module)
        return found if attr is None else getattr(found, attr)
    raise AttributeError(f"module 'budgetreason' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
