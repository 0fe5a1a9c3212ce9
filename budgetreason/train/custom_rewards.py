"""Your own reward functions, in TRL's contract, checked before the model loads.

A reward is given as a callable (Python: ``train(rewards=[fn, ...], reward_weights=[...])``) or as a
spec string (CLI: ``--reward module:function``, repeatable, with ``--reward-weight``):

- ``module:function`` imports ``module`` (the working directory is on the path) and takes its
  attribute ``function`` (dotted names reach into classes or factories' results);
- ``path/to/file.py:function`` loads the file;
- a bare name is one of budgetreason's rewards (``accuracy``, ``format``, ``tag_count``, ...);
- a call of one of budgetreason's reward factories with plain values,
  ``make_cosine_scaled_reward(max_len=3584, min_value_wrong=0.0)``.

A callable passed from Python is recorded in config.yaml as the spec that rebuilds it (see
:func:`spec_of`); one that no spec rebuilds is refused, so a resumed run never trains another reward.

The list replaces the ``--rewards`` preset, as TRL's ``reward_funcs`` does. Each one is checked at
start on a sample batch built from the run's own dataset (two rows, two completions each: a
well-formed one with the gold answer and a bare wrong one): importable, callable, and returning one
float or None per completion. A broken reward is one line and exit code 2, not a failure after the
model has loaded. Metric names come from TRL's ``get_callable_name`` (the ``__name__``), so a
custom reward is logged as ``rewards/<name>`` in metrics.jsonl like the built-in ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import numbers
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from budgetreason.errors import BudgetError


def callable_name(fn: Callable) -> str:
    """The metric name TRL gives a reward (``rewards/<name>``): TRL's own rule, so the two agree."""
    from trl.trainer.utils import get_callable_name

    return get_callable_name(fn)


def spec_of(fn: Callable) -> str:
    """The spec config.yaml records for a reward object: one that :func:`load_reward` turns back into the
    same reward, so ``--resume``, the CLI and ``export verl`` rebuild what the caller passed.

    A module-level function gives ``module:qualname``; one of budgetreason's configured rewards gives its
    factory call (``make_cosine_scaled_reward(..., max_len=3584, ...)``), so two parameterisations are two
    runs; an object bound to a module-level name gives ``module:name``. Anything no spec rebuilds (a
    lambda, a nested function, a functools.partial, an unbound instance, anything defined in ``__main__``)
    is refused in one line.

    >>> from budgetreason.rewards.functions import make_format_reward
    >>> spec_of(make_format_reward(prompt_opens_think=True))
    'make_format_reward(prompt_opens_think=True)'
    """
    for spec in _candidate_specs(fn):
        if spec.startswith("__main__:"):
            continue  # a script's or notebook's own namespace: `--resume` and verl's workers cannot import it
        try:
            rebuilt = load_reward(spec)
        except BudgetError:
            continue
        if rebuilt is fn or (spec == repr(fn) and type(rebuilt) is type(fn) and vars(rebuilt) == vars(fn)):
            return spec
    raise BudgetError(f"reward {callable_name(fn)} cannot be recorded in config.yaml so that a resumed run, the CLI "
                      f"or `export verl` rebuilds it ({_kind(fn)}); define it as a module-level function of a .py "
                      "module and pass that, or pass its 'module:function' string.")


def _candidate_specs(fn: Callable) -> list[str]:
    """Specs that might name `fn`: its factory call, its module and qualname, module-level names bound to it."""
    specs = []
    if repr(fn).startswith("make_"):
        specs.append(repr(fn))
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        specs.append(f"{module}:{qualname}")
    for name in dict.fromkeys(m for m in (module, type(fn).__module__) if isinstance(m, str)):
        loaded = sys.modules.get(name)
        specs += [f"{name}:{attr}" for attr, value in list(vars(loaded).items()) if value is fn] if loaded else []
    return specs


def _kind(fn: Callable) -> str:
    qualname = getattr(fn, "__qualname__", "")
    if getattr(fn, "__module__", None) == "__main__":
        return "defined in __main__: a script or notebook they cannot import"
    if qualname.endswith("<lambda>"):
        return "a lambda"
    if "<locals>" in qualname:
        return "defined inside a function"
    if hasattr(fn, "func") and hasattr(fn, "args"):
        return "a functools.partial"
    if not (inspect.isfunction(fn) or inspect.isbuiltin(fn) or inspect.ismethod(fn)):
        return f"an instance of {type(fn).__qualname__}"
    return f"{getattr(fn, '__module__', '?')}:{qualname} does not import back as the same function"


def _factory_call(spec: str) -> Callable:
    """``make_cosine_scaled_reward(max_len=3584)``: one of budgetreason's reward factories called with plain
    values (parsed with ``ast``; nothing is evaluated)."""
    import ast

    from budgetreason.rewards import functions as rewards

    factories = sorted(n for n in vars(rewards) if n.startswith("make_") and callable(getattr(rewards, n)))
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise BudgetError(f"--reward {spec}: write module:function, a budgetreason reward name, or a factory call "
                          "such as make_cosine_scaled_reward(max_len=3584).")
    if node.func.id not in factories:
        raise BudgetError(f"--reward {spec}: '{node.func.id}' is not a budgetreason reward factory "
                          f"({', '.join(factories)}).")
    try:
        if any(k.arg is None for k in node.keywords):
            raise ValueError("**")
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise BudgetError(f"--reward {spec}: the arguments must be plain values (numbers, quoted text, True, False, "
                          "None).") from None
    try:
        return getattr(rewards, node.func.id)(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise BudgetError(f"--reward {spec}: {_first_line(e)}.") from None


def _import_module(name: str, spec: str):
    if name.endswith(".py"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BudgetError(f"--reward {spec}: no such file {path}.")
        mod_spec = importlib.util.spec_from_file_location(f"budgetreason_reward_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as e:
            raise BudgetError(f"--reward {spec}: {path} fails to import ({type(e).__name__}: {_first_line(e)}).") from None
        return module
    if os.getcwd() not in sys.path:  # `budgetreason train` from a project folder finds its modules, as `python -m` does
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise BudgetError(f"--reward {spec}: module '{e.name}' not found; check the name, install it, or run from "
                          "the folder that holds it (or give path/to/file.py:function).") from None
    except Exception as e:
        raise BudgetError(f"--reward {spec}: module '{name}' fails to import ({type(e).__name__}: "
                          f"{_first_line(e)}).") from None


def load_reward(spec: str) -> Callable:
    """The callable a spec names (see the module docstring); one clear line when it cannot be had.

    >>> load_reward("accuracy").__name__
    'accuracy'
    """
    if ":" not in spec and "(" in spec:
        return _factory_call(spec)
    if ":" not in spec:
        from budgetreason.rewards import functions as rewards
        fn = getattr(rewards, f"{spec}_reward", None) or getattr(rewards, spec, None)
        if not callable(fn) or spec.startswith("_"):
            raise BudgetError(f"--reward {spec}: not a budgetreason reward (see docs/rewards.md); give your own as "
                              "module:function.")
        return fn
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise BudgetError(f"--reward {spec}: write module:function, e.g. my_rewards:brevity.")
    obj = _import_module(module_name, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BudgetError(f"--reward {spec}: '{module_name}' has no attribute '{attr}'.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BudgetError(f"--reward {spec}: '{attr}' is a {type(obj).__name__}, not a function.")
    return obj


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else "no message"


def sample_batch(rows: list[dict]) -> dict:
    """TRL's reward keyword arguments for a few dataset rows: two completions per row.

    Completions follow the prompts' form (chat messages in, assistant messages out).
    ``completion_ids`` hold character codes, as no tokenizer is loaded yet.
    """
    prompts, completions = [], []
    for row in rows:
        well_formed = f"<think>\nworking it out\n</think>\nThe answer is \\boxed{{{row.get('solution', '')}}}."
        for text in (well_formed, "I am not sure."):
            prompts.append(row["prompt"])
            conversational = isinstance(row["prompt"], list)
            completions.append([{"role": "assistant", "content": text}] if conversational else text)
    columns = {k: [row[k] for row in rows for _ in range(2)] for k in rows[0] if k not in ("prompt", "completion")}

    def _discard(*args, **kwargs) -> None:
        """Stands in for TRL's log_metric / log_extra during the check."""

    return {"prompts": prompts, "completions": completions,
            "completion_ids": [[ord(ch) % 256 for ch in (c[0]["content"] if isinstance(c, list) else c)]
                               for c in completions],
            **columns, "trainer_state": None, "log_metric": _discard, "log_extra": _discard}


def _call(fn: Callable, batch: dict):
    out = fn(**batch)
    if inspect.isawaitable(out):  # `async def` rewards: run in a thread of its own (a notebook already has a loop)
        import asyncio

        box: dict = {}

        def run() -> None:
            try:
                box["out"] = asyncio.run(_await(out))
            except BaseException as e:  # handed back to the caller's thread
                box["error"] = e

        t = threading.Thread(target=run)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        out = box["out"]
    return out


async def _await(awaitable):
    return await awaitable


def check_reward(fn: Callable, label: str, batch: dict) -> None:
    """Call `fn` on the sample batch; it must return one float (or None) per completion."""
    n = len(batch["completions"])
    try:
        out = _call(fn, batch)
    except Exception as e:
        raise BudgetError(f"reward {label} raised {type(e).__name__} on a sample batch of {n} completions: "
                          f"{_first_line(e)}. It is called as fn(prompts=, completions=, completion_ids=, "
                          "**dataset columns); accept **kwargs.") from None
    if isinstance(out, (str, bytes)) or not isinstance(out, Sequence):
        raise BudgetError(f"reward {label} returned {type(out).__name__}; it must return a list with one float "
                          f"(or None) per completion ({n} here).")
    if len(out) != n:
        raise BudgetError(f"reward {label} returned {len(out)} values for {n} completions; it must return one float "
                          "(or None) per completion.")
    bad = [v for v in out if v is not None and not isinstance(v, numbers.Real)]
    if bad:
        raise BudgetError(f"reward {label} returned a {type(bad[0]).__name__} ({str(bad[0])[:40]!r}); each value "
                          "must be a float or None.")


def resolve_rewards(items: Sequence, weights: Sequence[float] | None, rows: list[dict]):
    """Callables and spec strings → a checked :class:`budgetreason.rewards.functions.Preset` named ``custom``.

    `rows` are a few dataset rows for the sample batch. Every error is one line.
    """
    from budgetreason.rewards.functions import Preset

    if not items:
        raise BudgetError("No reward functions given; pass --reward module:function (or drop it for the preset).")
    if weights is not None and len(weights) != len(items):
        raise BudgetError(f"{len(weights)} --reward-weight value(s) for {len(items)} --reward function(s); give one "
                          "weight per reward, or none (each weighs 1).")
    funcs, labels = [], []
    for item in items:
        if isinstance(item, str):
            fn, label = load_reward(item), item
        elif callable(item):
            fn, label = item, spec_of(item)
        else:
            raise BudgetError(f"A reward must be a function or a 'module:function' string, not {type(item).__name__}.")
        funcs.append(fn)
        labels.append(label)
    names = [callable_name(f) for f in funcs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BudgetError(f"Two rewards share the name '{dup[0]}' (their metric rewards/{dup[0]}); give each its own "
                          "__name__.")
    batch = sample_batch(rows)
    for fn, label in zip(funcs, labels):
        check_reward(fn, label, batch)
    w = tuple(float(x) for x in (weights or [1.0] * len(funcs)))
    return Preset("custom", tuple(funcs), w, "your reward functions: " + ", ".join(labels))


def bind_template(rewards, prompt_opens_think: bool):
    """`rewards` with the built-in ``accuracy`` and ``format`` told that the chat template opens ``<think>``.

    TRL 1.15 hands rewards the conversational prompts before the template is applied, so
    ``accuracy_reward`` cannot see a ``<think>`` that the template adds and would score a box in
    unfinished reasoning 1. Training reads the template once and builds the preset with it; a
    ``--reward accuracy`` / ``--reward format`` in your own list gets the same (same metric names).
    Your own functions are left as they are.

    >>> from budgetreason.rewards.functions import Preset, accuracy_reward
    >>> bound = bind_template(Preset("custom", (accuracy_reward,), (1.0,), ""), True)
    >>> bound.funcs[0]([[{"role": "assistant", "content": "x = 7, so \\boxed{7}? Wait"}]], solution=["7"])
    [0.0]
    """
    import dataclasses

    from budgetreason.rewards import functions as f

    if not prompt_opens_think:
        return rewards
    def bound(fn):  # by identity: a user's callable need not be hashable
        if fn is f.accuracy_reward:
            return f.make_accuracy_reward(prompt_opens_think=True)
        return f.make_format_reward(prompt_opens_think=True) if fn is f.format_reward else fn

    return dataclasses.replace(rewards, funcs=tuple(bound(fn) for fn in rewards.funcs))


def split_user_rewards(items: Sequence) -> tuple[list[str], dict[str, Callable]]:
    """``train(rewards=[fn, "mod:fn"])`` → the specs recorded in config.yaml, and the callables by spec."""
    specs, objects = [], {}
    for item in items:
        if isinstance(item, str):
            specs.append(item)
        elif callable(item):
            spec = spec_of(item)
            specs.append(spec)
            objects[spec] = item
        else:
            raise BudgetError(f"A reward must be a function or a 'module:function' string, not {type(item).__name__}.")
    return specs, objects


def checked_rewards(cfg, objects: dict[str, Callable]):
    """The run's ``reward_funcs`` (callables the caller passed, else imported), checked on two of its rows.

    Called from ``budgetreason.train.training.resolve``, before the model loads.
    """
    from budgetreason.data.datasets import load_dataset_recipe

    prepared = load_dataset_recipe(cfg.dataset, data_files=cfg.data_path, problem_column=cfg.problem_column,
                                   answer_column=cfg.answer_column, split=cfg.split, config=cfg.dataset_config,
                                   seed=cfg.seed, limit=2)
    rows = list(prepared.train)
    return resolve_rewards([objects.get(s, s) for s in cfg.reward_funcs], cfg.reward_weights, rows)
