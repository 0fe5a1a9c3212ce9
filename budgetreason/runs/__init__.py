"""Runs: the run-folder format, the one place training writes and evaluation and reports read.

Owns the run folder (``folder``: layout, lock, checkpoint manifests, events) and which process
owns it when several train (``ranks``). It sits below both ``train`` (which writes it) and
``report`` (which reads it), so neither needs the other.

May import: the shared modules.
Must never import: any other part, the orchestration on top, or ``cli``.
"""
