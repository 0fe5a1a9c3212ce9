"""The synthetic arithmetic task behind the built-in ``tiny-arith`` model and the ``arith`` recipe.

Problems are generated from a seed, so training sets and held-out benchmark sets are
reproducible and disjoint (the benchmark draws from a different stream and skips any
problem the training stream could produce first). The worked solution uses the papers'
format: reasoning inside ``<think> </think>``, then the answer in ``\\boxed{}``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Seed offset for held-out problems: the benchmark stream never reuses the training stream.
HELDOUT_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class ArithProblem:
    a: int
    b: int
    op: str

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def problem(self) -> str:
        return f"What is {self.a} {self.op} {self.b}?"

    def steps(self, slip: int = 0) -> tuple[list[str], int]:
        """Column arithmetic, units then tens, as lines of reasoning; returns (lines, answer).

        ``slip`` (0, 1 or 2) injects the careless error a warm start makes: 1 gets the units
        column wrong by one, 2 forgets the carry or borrow. The answer follows the lines, so a
        slipped chain ends in a wrong but consistent answer.
        """
        a1, a0, b1, b0 = self.a // 10, self.a % 10, self.b // 10, self.b % 10
        if self.op == "+":
            s0 = a0 + b0 + (1 if slip == 1 else 0)
            carry = s0 // 10 if slip != 2 else 0
            s1 = a1 + b1 + carry
            units = f"units: {a0} + {b0} = {s0}"
            tens = f"tens: {a1} + {b1} + {carry} = {s1}" if carry else f"tens: {a1} + {b1} = {s1}"
            return [units, tens], s1 * 10 + s0 % 10
        borrow = 1 if a0 < b0 else 0
        top = a0 + 10 * borrow
        d0 = top - b0 + (1 if slip == 1 else 0)
        d0 = min(d0, 9)
        used = borrow if slip != 2 else 0
        d1 = a1 - b1 - used
        units = f"units: {top} - {b0} = {d0}"
        tens = f"tens: {a1} - {b1} - {used} = {d1}" if used else f"tens: {a1} - {b1} = {d1}"
        return [units, tens], d1 * 10 + d0

    def worked_solution(self, slip: int = 0, think: bool = True) -> str:
        """The completion the warm-up teaches: one think block with the columns, then the boxed answer.
        Without ``think``, only the boxed answer (a guess without reasoning)."""
        lines, answer = self.steps(slip)
        if not think:
            return f"\\boxed{{{answer}}}"
        body = "\n".join([f"{self.a} {self.op} {self.b}", *lines])
        return f"<think>\n{body}\n</think>\n\\boxed{{{answer}}}"

    def to_row(self) -> dict:
        return {"problem": self.problem, "answer": str(self.answer)}


def _draw(rng: random.Random, max_operand: int, ops: str) -> ArithProblem:
    op = rng.choice(ops)
    a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
    if op == "-" and b > a:
        a, b = b, a  # keep answers non-negative: the tiny tokenizer has no sign handling to learn
    return ArithProblem(a, b, op)


def make_problems(n: int, seed: int = 0, *, max_operand: int = 99, ops: str = "+-",
                  heldout: bool = False) -> list[ArithProblem]:
    """`n` distinct problems from `seed`. ``heldout=True`` gives problems disjoint from the
    first 20·n training problems of the same seed (for evaluation)."""
    if heldout:
        train = {(p.a, p.b, p.op) for p in make_problems(20 * n, seed, max_operand=max_operand, ops=ops)}
        rng = random.Random(seed + HELDOUT_SEED_OFFSET)
    else:
        train, rng = set(), random.Random(seed)
    out: list[ArithProblem] = []
    seen: set[tuple[int, int, str]] = set()
    space = (max_operand + 1) ** 2 * len(ops)
    if n > space - len(train):
        raise ValueError(f"only {space - len(train)} distinct problems with max_operand={max_operand}")
    while len(out) < n:
        p = _draw(rng, max_operand, ops)
        key = (p.a, p.b, p.op)
        if key in seen or key in train:
            continue
        seen.add(key)
        out.append(p)
    return out
