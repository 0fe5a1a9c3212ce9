"""Train: plan → run config → TRL's GRPO → run folder, inside the time budget.

Owns the run configuration (``config``) and the shipped recipes (``recipes``), the budget clock
and schedule (``budget``), TRL's arguments (``trainer_args``), the callbacks, the compatibility
shims (``compat``), validation during training, the user's own rewards (``custom_rewards``),
the training run (``training``) and multi-GPU launch (``launch``). Calling the package is
``training.train``: ``budgetreason.train(model=..., budget_hours=...)``.

May import: the shared modules, ``plan``, ``rewards``, ``data``, ``models``, ``runs``, ``evaluate``.
Must never import: report, measure, share, the orchestration on top, or ``cli``.
"""

from budgetreason.stage import callable_package

callable_package(__name__, "budgetreason.train.training", "train")
