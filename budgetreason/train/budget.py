"""The budget is wall-clock time; the learning-rate schedule is a function of the optimizer step.

``BudgetClock`` counts seconds spent on a run across sessions (time before a preemption
counts) and says what fraction of the budget is gone (for the progress bar and the deadline).
The learning rate does not read the clock: it follows a step schedule over a fixed horizon
(``Horizon``), so validation, checkpoint saves and GPU speed do not move it and reruns of the
same steps get the same rates. With ``--max-steps`` (or ``schedule_steps``) the horizon is that
step count; with only ``--hours`` it is the planner's step estimate, refined once from the
measured step time after the first steps, written to the run folder and kept on resume.
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


SCHEDULES = ("cosine_with_min_lr", "constant")
#: With only a time budget, the horizon is re-estimated once, after this many measured steps.
REFINE_AFTER = 3
SCHEDULE_FILE = "schedule.json"


@dataclass
class Horizon:
    """The steps the warm-up and the cosine span. ``final`` is False until a time-only horizon is refined."""

    steps: int
    warmup_ratio: float
    min_lr_ratio: float
    kind: str = "cosine_with_min_lr"
    source: str = "max_steps"
    """schedule_steps (the recipe's), max_steps, planner (estimate for the hours) or measured (refined)."""
    final: bool = True
    set_at_step: int = 0

    @property
    def warmup_steps(self) -> int:
        """transformers' rule for a ratio: ceil(ratio × steps) (Tina: 0.1 × 1500 = 150)."""
        return math.ceil(self.steps * self.warmup_ratio)

    def multiplier(self, step: int) -> float:
        return lr_multiplier(step, self.steps, self.warmup_steps, self.min_lr_ratio, self.kind)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "warmup_steps": self.warmup_steps, "warmup_ratio": self.warmup_ratio,
                "min_lr_ratio": self.min_lr_ratio, "kind": self.kind, "source": self.source, "final": self.final,
                "set_at_step": self.set_at_step}

    @classmethod
    def from_dict(cls, d: dict) -> Horizon:
        return cls(steps=int(d["steps"]), warmup_ratio=float(d["warmup_ratio"]), min_lr_ratio=float(d["min_lr_ratio"]),
                   kind=d["kind"], source=d["source"], final=bool(d["final"]), set_at_step=int(d.get("set_at_step", 0)))


def lr_multiplier(step: int, horizon: int, warmup_steps: int, min_lr_ratio: float, kind: str = "cosine_with_min_lr") -> float:
    """The multiplier of the peak rate for the `step`-th optimizer update (0-based, as LambdaLR counts).

    transformers 5.17's ``cosine_with_min_lr`` and ``constant_with_warmup`` formulas (linear warm-up
    step/warmup_steps from 0, then cosine to `min_lr_ratio` at `horizon`), which Tina's trainer used;
    past the horizon it stays at the floor, where transformers' cosine would rise again.

    >>> [round(lr_multiplier(s, 1500, 150, 0.1), 3) for s in (0, 75, 150, 825, 1500, 2000)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    """
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, horizon - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def refined_steps(step: int, remaining_s: float, step_seconds: list[float]) -> int:
    """Total steps a time budget holds, from the median measured step time of this session."""
    times = sorted(step_seconds)
    per_step = times[len(times) // 2]
    return max(step + 1, step + int(remaining_s // max(per_step, 1e-6)))


def install_step_schedule(trainer, horizon: Horizon) -> None:
    """Make `trainer` build a LambdaLR that follows `horizon` by optimizer step.

    Trainer.create_scheduler is its documented override point; it is replaced on this instance
    only. LambdaLR's own counter is the optimizer step (restored from scheduler.pt on resume);
    the lambda reads the horizon object, so a refinement after the first steps takes effect.
    """
    import torch

    def create_scheduler(num_training_steps: int, optimizer=None):
        opt = optimizer if optimizer is not None else trainer.optimizer
        if trainer.lr_scheduler is None:
            trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(opt, horizon.multiplier)
            trainer._created_lr_scheduler = True
        return trainer.lr_scheduler

    trainer.create_scheduler = create_scheduler
