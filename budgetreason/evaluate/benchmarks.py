"""Evaluation benchmarks: the papers' six plus ``arith``, each loaded into one problem schema.

Every benchmark becomes a list of ``Problem(id, prompt, gold, kind)``: the chat prompt the
training used (budgetreason.data.datasets's reasoning instruction, then the problem), the gold answer,
and how to compare (math-verify for numbers and LaTeX, the letter for GPQA). ``--data PATH``
serves a local copy in the hub's shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from budgetreason import catalog as catalog_file
from budgetreason.data.datasets import HubTable
from budgetreason.errors import BudgetError

LETTERS = "ABCD"


@dataclass(frozen=True)
class Benchmark(HubTable):
    """answer_kind: integer | latex | numeric_units | letter."""

    size: int = 0
    description: str = ""


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: list[dict]
    gold: str
    kind: str


@lru_cache(maxsize=1)
def registry() -> dict[str, Benchmark]:
    raw = catalog_file.load("benchmarks")
    return {b["name"]: Benchmark(**b) for b in raw["benchmarks"]}


def get(name: str) -> Benchmark:
    reg = registry()
    if name not in reg:
        raise BudgetError(f"Unknown benchmark '{name}'. Known: {', '.join(reg)}.")
    return reg[name]


def _rows(b: Benchmark, data: str | None, seed: int) -> list[dict]:
    if b.name == "arith":
        from budgetreason.data.arith import make_problems

        return [p.to_row() for p in make_problems(b.size, seed=seed, heldout=True)]
    if data:
        from budgetreason.data.datasets import read_local

        path = Path(data).expanduser()
        if not path.exists():
            raise BudgetError(f"--data {data}: no such file or folder.")
        return read_local(path, split=b.split)
    from budgetreason.online import offline_reason

    offline_reason()  # before datasets is imported: without the hub it reads its cache only, at once
    import datasets

    try:
        return list(datasets.load_dataset(b.hf_id, b.config, split=b.split))
    except Exception as e:
        raise BudgetError(f"Cannot load {b.name} from the hub ({b.hf_id}: {type(e).__name__}; offline or gated?). "
                          f"Pass a local copy with --data (columns {b.problem_column}, {b.answer_column}).") from None


def _gpqa(row: dict, index: int, seed: int) -> tuple[str, str]:
    """Question with its four choices in a seeded order; gold is the correct choice's letter."""
    choices = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(f"{seed}-{index}").shuffle(order)
    body = "\n".join(f"({LETTERS[i]}) {str(choices[j]).strip()}" for i, j in enumerate(order))
    question = (f"{str(row['Question']).strip()}\n\n{body}\n\n"
                "Answer with the letter of the correct choice inside \\boxed{}.")
    return question, LETTERS[order.index(0)]


def load_problems(name: str, *, data: str | None = None, seed: int = 0, limit: int | None = None,
                  system_prompt: str | None = None) -> list[Problem]:
    """The benchmark's problems as chat prompts with their gold answers (first `limit` in file order)."""
    from budgetreason.data.datasets import SYSTEM_PROMPT

    b = get(name)
    rows = _rows(b, data, seed)
    needed = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"] \
        if b.answer_kind == "letter" else [b.problem_column, b.answer_column]
    if rows:
        missing = [c for c in needed if c not in rows[0]]
        if missing:
            raise BudgetError(f"{name} data lacks column(s) {', '.join(missing)}; it has: {', '.join(rows[0])}.")
    sys_prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
    out = []
    for i, row in enumerate(rows[:limit] if limit else rows):
        if b.answer_kind == "letter":
            question, gold = _gpqa(row, i, seed)
        else:
            question, gold = str(row[b.problem_column]), str(row[b.answer_column])
        pid = str(row.get("id", row.get("unique_id", i)))
        msgs = ([{"role": "system", "content": sys_prompt}] if sys_prompt else []) + [{"role": "user", "content": question}]
        out.append(Problem(id=pid, prompt=msgs, gold=gold, kind=b.answer_kind))
    if not out:
        raise BudgetError(f"{name}: no problems to evaluate.")
    if len({p.id for p in out}) < len(out):  # ids must key the saved completions: fall back to positions
        out = [Problem(id=str(i), prompt=p.prompt, gold=p.gold, kind=p.kind) for i, p in enumerate(out)]
    return out
