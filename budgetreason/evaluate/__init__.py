"""Evaluate: pass@k, length and entropy on the papers' benchmarks, one protocol for every model.

Owns the benchmarks, sampling (``generation``), the metrics, the evaluation run
(``evaluation``), baseline-vs-final comparison and the evaluation table. Calling the package is
``evaluation.evaluate``: ``budgetreason.evaluate(model, adapter=run_dir)``.

May import: the shared modules, ``plan``, ``rewards``, ``data``, ``models``, ``runs``.
Must never import: train, report, measure, share, the orchestration on top, or ``cli``
(validation during training uses evaluation; evaluation knows nothing of training).
"""

from budgetreason.stage import callable_package

callable_package(__name__, "budgetreason.evaluate.evaluation", "evaluate")
