"""Share: a trained run, outside budgetreason.

Owns exporting an adapter or a merged model (``export``), the model card and the push to the
Hugging Face Hub (``hub_card``, ``hub``), the ``vllm serve`` command (``serving``) and the run as
a verl job (``verl_export``).

May import: every stage below it: the shared modules, plan, rewards, data, models, runs,
evaluate, train, report.
Must never import: measure, the orchestration on top, or ``cli``.
"""
