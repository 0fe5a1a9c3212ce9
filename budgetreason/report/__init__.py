"""Report: the papers' curves and tables for finished or running runs, and the verdicts on them.

Owns reading run folders into figures and Markdown (``reporting``). Calling the package is
``reporting.report``: ``budgetreason.report([run_dir])``.

May import: the shared modules, ``plan``, ``rewards``, ``data``, ``models``, ``runs``, ``evaluate``.
Must never import: ``train`` (a report reads what training wrote, through ``runs``), measure,
share, the orchestration on top, or ``cli``.
"""

from budgetreason.stage import callable_package

callable_package(__name__, "budgetreason.report.reporting", "report")
