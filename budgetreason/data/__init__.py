"""Data: the papers' training sets and local files in one schema, and the synthetic arithmetic task.

Owns the dataset recipes and their loading (``datasets``) and the ``arith`` task behind the
built-in tiny model (``arith``).

May import: the shared modules.
Must never import: plan, rewards, models, runs, evaluate, train, report, measure, share, the
orchestration on top, or ``cli``.
"""
