"""Models: loading a policy (tokenizer, weights, LoRA adapter) through a back-end, and the models budgetreason builds.

Owns the back-ends (``backends``: transformers + PEFT, Unsloth), the built-in tiny model
(``tiny``) and random-weight models at real sizes for measuring (``synthetic``). Training and
evaluation both load through here.

May import: the shared modules, ``plan`` (architectures, GPUs), ``data`` (the tiny model's task).
Must never import: rewards, runs, evaluate, train, report, measure, share, the orchestration on
top, or ``cli``.
"""
