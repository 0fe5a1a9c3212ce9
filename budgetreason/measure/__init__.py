"""Measure: what this machine really does, before and after paying for GPU time.

Owns ``doctor`` (is this machine ready), ``calibrate`` (peak memory and step time per step,
which ``plan`` reads back as a file), ``bench`` (budgetreason against plain TRL + PEFT), the
version matrix (``versions``) and their tables.

May import: every stage below it: the shared modules, plan, rewards, data, models, runs,
evaluate, train.
Must never import: report, share, the orchestration on top, or ``cli``.
"""
