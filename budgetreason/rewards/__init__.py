"""Rewards: verifiable rewards in TRL's contract, and the bounded answer checker under them.

Owns the Math-Verify judging in worker processes (``verify``) and the reward functions and the
papers' presets (``functions``).

May import: the shared modules (``errors``, ``catalog``, ``online``, ``checks``).
Must never import: any other part (plan, data, models, runs, evaluate, train, report, measure,
share), the orchestration on top, or ``cli``. A reward sees completions and answers, nothing else.
"""
