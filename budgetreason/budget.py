"""The budget is wall-clock time: a clock that survives restarts, and a schedule that spans it.

``BudgetClock`` counts seconds spent on a run across sessions (time before a preemption
counts), and says what fraction of the budget is gone: by time when there is a deadline, by
steps when there is a step limit, whichever is further along. The learning-rate schedule
(linear warm-up, then cosine to a floor) is a function of that fraction, so a 24-hour run
and a 2-hour run both warm up and decay over their whole budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class BudgetClock:
    """Seconds spent on the run, counting earlier sessions, against a budget of time and/or steps."""

    budget_s: float | None = None
    max_steps: int | None = None
    spent_before_s: float = 0.0
    """Seconds spent in earlier sessions (restored from the checkpoint on resume)."""
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.spent_before_s + (time.monotonic() - self.started)

    def remaining_s(self) -> float | None:
        return None if self.budget_s is None else self.budget_s - self.elapsed()

    def fraction(self, step: int) -> float:
        """How far through the budget the run is, in [0, 1]."""
        parts = [0.0]
        if self.budget_s:
            parts.append(self.elapsed() / self.budget_s)
        if self.max_steps:
            parts.append(step / self.max_steps)
        return min(1.0, max(parts))


def lr_multiplier(fraction: float, warmup_ratio: float, min_lr_ratio: float) -> float:
    """Linear warm-up over the first `warmup_ratio` of the budget, then cosine down to `min_lr_ratio`.

    >>> round(lr_multiplier(0.05, 0.1, 0.1), 3), lr_multiplier(0.1, 0.1, 0.1), round(lr_multiplier(1.0, 0.1, 0.1), 3)
    (0.5, 1.0, 0.1)
    """
    if warmup_ratio > 0 and fraction < warmup_ratio:
        return max(fraction / warmup_ratio, 1e-3)
    progress = (fraction - warmup_ratio) / max(1e-9, 1 - warmup_ratio)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def install_budget_schedule(trainer, clock: BudgetClock, warmup_ratio: float, min_lr_ratio: float) -> None:
    """Make `trainer` build a LambdaLR whose multiplier follows the budget clock, not a step count.

    Trainer.create_scheduler is its documented override point; it is replaced on this instance
    only. The lambda ignores LambdaLR's own step counter and reads the trainer's global step.
    """
    import torch

    def create_scheduler(num_training_steps: int, optimizer=None):
        opt = optimizer if optimizer is not None else trainer.optimizer
        if trainer.lr_scheduler is None:
            trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda _: lr_multiplier(clock.fraction(trainer.state.global_step + 1), warmup_ratio, min_lr_ratio))
            trainer._created_lr_scheduler = True
        return trainer.lr_scheduler

    trainer.create_scheduler = create_scheduler
