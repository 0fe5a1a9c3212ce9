"""Plan: what GRPO configuration fits a GPU, a model and a number of hours, and why.

Owns the GPU and model-architecture catalogs (``hardware``, ``architectures``), the training
shape, the memory and time models, the search (``planner``), the multi-GPU layout (``layout``),
the calibration correction as a pure fit over a measurement file (``correction``) and the plan's
tables. Calling the package is ``planner.plan``: ``budgetreason.plan("a40", model, hours=24)``.

May import: the shared modules (``errors``, ``catalog``, ``online``, ``checks``, ``stage``).
Must never import: any other part (rewards, data, models, runs, evaluate, train, report,
measure, share), the orchestration on top, or ``cli``. The planner reads a calibration file;
it does not know the code that measures.
"""

from budgetreason.stage import callable_package

callable_package(__name__, "budgetreason.plan.planner", "plan")
