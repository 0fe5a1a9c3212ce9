"""Reward throughput: budgetreason's batch scorer against plain sequential Math-Verify, same inputs, same run.

    python benchmarks/rewards.py [--problems 64] [--group 8] [--seed 0] [--repeats 3]

Builds a realistic mix in-process (no downloads), shaped like a GRPO step: ``--problems`` MATH-style
problems with ``--group`` sampled completions each. A completion is a 2-14 kB chain of thought inside
``<think>`` (prose, inline and display arithmetic, sometimes a provisional box), then, as the
DeepSeek-R1 distills write, a short summary with inline math and the final answer in a box written
in another surface form than the gold (``0.75`` for ``\\frac{3}{4}``, ``(1, 2]`` for ``(1,2]``), a
wrong answer, or no answer. Answers within a group repeat, as sampled answers do. Every completion
carries its intended verdict, so the table also shows how often each scorer agrees with it.

Scorers, all on the same inputs in one run: plain sequential Math-Verify as its README shows it
(``parse`` the whole completion, ``verify``); the same loop doing exactly what budgetreason does
(the region after ``</think>``, the same extraction configs and gold handling), which must give
budgetreason's verdicts; open-r1's ``accuracy_reward`` configuration; budgetreason's
``score_batch`` with 1 and 2 worker processes (whose Math-Verify parses LaTeX SLL-first, see
``budgetreason.rewards.verify.two_stage_parsing``; the sequential rows use the stock parser, so row 2 also
checks that this changes no verdict): fresh workers warmed on another step's problems (in
training they live for the whole run; the sequential rows are warmed on the same mix), and an empty
verdict cache. Each scorer runs ``--repeats`` times (the rows take turns, so a neighbour's burst
does not land on one row only) and the table shows the median of each column. Wall seconds depend
on who else uses the machine; CPU seconds (this process and the workers) much less, so both are
shown.

Prints a Markdown table for docs/rewards.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from fractions import Fraction


def _answer(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """(gold, correct surface forms, wrong answers) for one random MATH-style answer."""
    kind = rng.choice(["int", "frac", "decimal", "sqrt", "interval", "tuple", "poly", "set", "percent", "pi", "vector"])
    a, b, c = rng.randint(2, 40), rng.randint(2, 40), rng.randint(1, 9)
    if kind == "int":
        n = rng.randint(-500, 5000)
        return str(n), [str(n), f"{n}.0", f"{n:,}"], [str(n + c), str(-n - 1)]
    if kind == "frac":
        f = Fraction(a, b + 1) if Fraction(a, b + 1).denominator > 1 else Fraction(a, a + 1)
        p, q = f.numerator, f.denominator
        return f"\\frac{{{p}}}{{{q}}}", [f"{p}/{q}", f"\\dfrac{{{p}}}{{{q}}}", f"\\frac{{{2 * p}}}{{{2 * q}}}"], \
            [f"\\frac{{{q}}}{{{p}}}", f"\\frac{{{p + 1}}}{{{q}}}"]
    if kind == "decimal":
        x = Fraction(rng.randint(1, 400), 8)
        return f"{float(x)}", [f"\\frac{{{x.numerator}}}{{{x.denominator}}}", f"{float(x)}0"], [f"{float(x) + 0.5}"]
    if kind == "sqrt":
        k, c = rng.choice([2, 3, 5, 6, 7]), c + 1  # c ≥ 2, so that √k is a wrong answer
        return f"{c}\\sqrt{{{k}}}", [f"\\sqrt{{{c * c * k}}}", f"{c} \\sqrt {k}"], \
            [f"{c + 1}\\sqrt{{{k}}}", f"\\sqrt{{{k}}}"]
    if kind == "interval":
        lo, hi = -a, b
        return f"({lo},{hi}]", [f"({lo}, {hi}]", f"\\left({lo}, {hi}\\right]"], [f"[{lo},{hi}]", f"({lo},{hi})"]
    if kind == "tuple":
        return f"({a}, {-b})", [f"({a},{-b})", f"\\left({a}, {-b}\\right)"], [f"({-b}, {a})", f"({a}, {b})"]
    if kind == "poly":
        return f"x^2+{a}x+{c}", [f"{c}+{a}x+x^2", f"x^{{2}} + {a} x + {c}"], [f"x^2+{a}x-{c}", f"x^2+{a + 1}x+{c}"]
    if kind == "set":
        xs = sorted(rng.sample(range(-9, 20), 3))
        return "\\{" + ",".join(map(str, xs)) + "\\}", ["\\{" + ", ".join(map(str, xs[::-1])) + "\\}"], \
            ["\\{" + ",".join(map(str, xs[:2])) + "\\}"]
    if kind == "percent":
        return f"{a}\\%", [f"{a}", f"{a} \\%"], [f"{a + c}\\%"]
    if kind == "pi":
        return f"\\frac{{{c}\\pi}}{{{b}}}", [f"{c}\\pi/{b}", f"\\frac{{{c}}}{{{b}}}\\pi"], [f"\\frac{{{c}}}{{{b}}}"]
    return (f"\\begin{{pmatrix}} {a} \\\\ {-c} \\end{{pmatrix}}", [f"\\begin{{pmatrix}}{a}\\\\{-c}\\end{{pmatrix}}"],
            [f"\\begin{{pmatrix}} {-c} \\\\ {a} \\end{{pmatrix}}"])


WORDS = ("we have so then note that substituting gives hence the equation becomes simplify both sides "
         "consider the case where it follows that therefore wait let me check again").split()


def _chain_of_thought(rng: random.Random) -> str:
    steps = []
    for _ in range(rng.randint(30, 190)):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        steps.append(" ".join(rng.choices(WORDS, k=rng.randint(5, 12)))
                     + rng.choice([f" ${a} \\cdot {b} = {a * b}$.", f" $\\frac{{{a}}}{{{b}}}$, and {a}+{b}={a + b}.",
                                   f" so $x^2 - {a}x + {b} = 0$.", f" \\[ {a}^2 = {a * a} \\]"]))
    if rng.random() < 0.3:
        steps.insert(rng.randrange(len(steps)), f"maybe the answer is \\boxed{{{rng.randint(1, 99)}}}? no.")
    return "<think>\n" + "\n".join(steps) + "\n</think>\n"


def _summary(rng: random.Random) -> str:
    """The few lines a distilled model writes after ``</think>`` before its boxed answer (or none)."""
    if rng.random() < 0.4:
        return ""
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return rng.choice([f"We have ${a} + {b} = {a + b}$, and simplifying gives the result.\n\n",
                       f"Substituting $x = {a}$ into $x^2 - {b}$ gives ${a * a - b}$; checking the cases,\n\n",
                       f"To solve this, note that \\({a} \\cdot {b} = {a * b}\\). Hence\n\n"])


def make_mix(problems: int, group: int, seed: int) -> tuple[list[str], list[str], list[bool]]:
    """(golds, completions, intended verdicts) for ``problems`` × ``group`` completions."""
    rng = random.Random(seed)
    golds, texts, labels = [], [], []
    for _ in range(problems):
        gold, right, wrong = _answer(rng)
        sampled = [(rng.choice(right), True) for _ in range(rng.randint(1, 2))] + \
                  [(rng.choice(wrong), False) for _ in range(rng.randint(1, 2))]  # a group's distinct answers
        for _ in range(group):
            if rng.random() < 0.05:
                answer, ok, tail = None, False, "I could not finish the computation."
            else:
                answer, ok = rng.choice(sampled)
                tail = _summary(rng) + rng.choice(["The final answer is $\\boxed{%s}$.", "Therefore, \\boxed{%s}",
                                                   "**Final Answer**\n\\[\n\\boxed{%s}\n\\]"]) % answer
            golds.append(gold)
            texts.append(_chain_of_thought(rng) + tail)
            labels.append(ok)
    return golds, texts, labels


def _workers_cpu_s() -> float:
    """CPU seconds the current verifier workers have used (Linux /proc; 0 elsewhere)."""
    from budgetreason.rewards.verify import pool

    total = 0.0
    for pid in pool().pids():
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def plain_math_verify(golds: list[str], texts: list[str]) -> list[bool]:
    """Math-Verify as its README shows it: parse the gold and the whole completion, verify, in sequence."""
    from math_verify import parse, verify

    return [verify(parse(f"${g}$"), parse(t)) for g, t in zip(golds, texts)]


def plain_budgetreason_judging(golds: list[str], texts: list[str]) -> list[bool]:
    """Plain sequential Math-Verify doing what budgetreason does: the same answer region, gold
    handling and extraction configs, in this process, one completion after another."""
    from math_verify import parse, verify

    from budgetreason.rewards.verify import _parse_gold, answer_region, extraction_targets

    out = []
    for g, t in zip(golds, texts):
        region, gold = answer_region(t), _parse_gold(g)
        out.append(bool(region and gold) and bool(verify(gold, parse(region, extraction_targets()))))
    return out


def open_r1_reward(golds: list[str], texts: list[str]) -> list[bool]:
    """open-r1's accuracy_reward configuration (boxed first, no extraction without an anchor), in sequence."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                 equations=True, boxed="all", units=True),
        boxed_match_priority=0, try_extract_without_anchor=False)]
    out = []
    for g, t in zip(golds, texts):
        gold = parse(f"${g}$", extraction_mode="first_match", extraction_config=[LatexExtractionConfig()])
        out.append(bool(gold) and verify(gold, parse(t, extraction_config=config, extraction_mode="first_match")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--group", type=int, default=8, help="completions per problem (GRPO's num_generations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each scorer; the table shows medians")
    args = ap.parse_args()
    import logging
    import warnings

    logging.disable(logging.WARNING)  # Math-Verify logs every timeout and deprecated option
    warnings.filterwarnings("ignore")
    from budgetreason.rewards.verify import clear_cache, default_processes, pool, score_batch, shutdown

    golds, texts, labels = make_mix(args.problems, args.group, args.seed)
    # Another step's problems, as many: Math-Verify's ANTLR parser fills its prediction caches as it
    # sees expressions, so a process that has parsed for a while is faster. Every scorer sees this
    # mix first (a training run's workers live for the whole run); the sequential rows also keep
    # what the rows before them warmed, which favours them.
    warm = make_mix(args.problems, args.group, args.seed + 1)[:2]
    n = len(texts)
    workers = default_processes()
    t0 = time.perf_counter()
    pool().map([("1", "1.0")] * workers)  # start the workers (once per training run)
    startup = time.perf_counter() - t0
    plain_math_verify(*warm)  # the same warm-up for the sequential rows, in this process
    open_r1_reward(*warm)

    plain_budgetreason_judging(*warm)

    scorers = [
        ("plain sequential Math-Verify (`parse` whole text, `verify`)", 0, lambda: plain_math_verify(golds, texts)),
        ("plain sequential Math-Verify, budgetreason's region and configs", 0,
         lambda: plain_budgetreason_judging(golds, texts)),
        ("open-r1 `accuracy_reward` configuration, sequential", 0, lambda: open_r1_reward(golds, texts)),
        ("budgetreason `score_batch`, 1 worker process", 1, lambda: score_batch(golds, texts, processes=1)),
        ("budgetreason `score_batch`, 2 worker processes", 2, lambda: score_batch(golds, texts, processes=2)),
    ]
    runs: list[list[tuple[float, float, list[bool]]]] = [[] for _ in scorers]
    for _ in range(max(1, args.repeats)):
        for k, (_name, processes, run) in enumerate(scorers):
            if processes:  # fresh workers, warmed on another step's mix as in training, and no remembered verdicts
                shutdown()
                pool().map([("1", "1.0")] * processes, processes=processes)
                score_batch(*warm, processes=processes)
                clear_cache()
            t0, c0, w0 = time.perf_counter(), time.process_time(), _workers_cpu_s() if processes else 0.0
            verdicts = [bool(v == 1.0 or v is True) for v in run()]
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - c0 + (_workers_cpu_s() - w0 if processes else 0.0)
            runs[k].append((seconds, cpu, verdicts))
    rows = []
    for (name, _, _), done in zip(scorers, runs):
        verdicts = done[0][2]
        if any(v != verdicts for _, _, v in done):  # a check that ran out of time in one run only
            print(f"note: {name}: verdicts differ between runs; the table uses the first run's")
        agree = sum(v == ok for v, ok in zip(verdicts, labels)) / n
        rows.append((name, statistics.median(s for s, _, _ in done), statistics.median(c for _, c, _ in done),
                     agree, verdicts))

    kb = sum(map(len, texts)) / n / 1000
    same = rows[1][4]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n} completions ({args.problems} problems × {args.group}), mean {kb:.1f} kB; "
          f"{os.cpu_count()} CPU cores ({platform.machine()}), load average {load:.1f} at the end; "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; "
          f"worker start-up {startup:.1f} s (once per run, not timed below); "
          f"median of {max(1, args.repeats)} runs of each scorer\n")
    print("| scorer | wall s | CPU s, all processes | agrees with the intended verdict | same verdicts as row 2 |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, cpu, agree, verdicts in rows:
        print(f"| {name} | {seconds:.2f} | {cpu:.2f} | {agree:.1%} | "
              f"{sum(a == b for a, b in zip(verdicts, same)) / n:.1%} |")
    base_wall, base_cpu = rows[0][1], rows[0][2]
    one, two = rows[3], rows[4]
    print(f"\nOver plain Math-Verify on the whole text: wall {base_wall / two[1]:.1f}× with 2 workers, "
          f"{base_wall / one[1]:.1f}× with 1; CPU {base_cpu / two[2]:.1f}× (2 workers), {base_cpu / one[2]:.1f}× (1); "
          f"on 2 otherwise idle cores the 2-worker wall time is about its CPU time / 2, "
          f"{2 * base_cpu / two[2]:.1f}× the plain loop's. Over the same judging done plainly: wall "
          f"{rows[1][1] / two[1]:.1f}×, CPU {rows[1][2] / two[2]:.1f}×.")
    per_run = ", ".join(f"{b[0] / o[0]:.1f}× / {b[0] / t[0]:.1f}×" for b, o, t in zip(runs[0], runs[3], runs[4]))
    print(f"Each run, wall speed-up over plain Math-Verify with 1 / 2 workers: {per_run}.")


if __name__ == "__main__":
    main()
