"""Reward throughput: budgetreason's batch scorer against plain sequential Math-Verify, same inputs, same run.

    python benchmarks/rewards.py [--n 512] [--seed 0]

Builds a realistic mix in-process (no downloads): chains of thought of 1-8 kB ending in
MATH-style answers (integers, fractions, radicals, intervals, tuples, expressions), about half
of them correct, a few with no answer. Prints a Markdown table for docs/rewards.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

ANSWERS = [  # (gold, a correct form, a wrong form)
    ("\\frac{3}{4}", "0.75", "\\frac{4}{3}"), ("12", "12", "13"), ("\\sqrt{2}", "\\sqrt 2", "2"),
    ("(1,2]", "(1, 2]", "[1,2]"), ("x^2+1", "1+x^2", "x^2-1"), ("2\\pi", "2 \\pi", "\\pi"),
    ("(3, 4)", "(3,4)", "(4,3)"), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", "\\sqrt{3}"),
    ("50\\%", "50", "25\\%"), ("-7", "-7", "7"), ("\\{1,2,3\\}", "\\{3,2,1\\}", "\\{1,2\\}"),
    ("204", "204", "2040"), ("\\frac{1}{6}", "\\dfrac{1}{6}", "\\frac{1}{5}"), ("3\\sqrt{5}", "\\sqrt{45}", "5\\sqrt{3}"),
]
WORDS = ("we have so then note that substituting gives hence the equation becomes simplify both sides "
         "consider the case where it follows that therefore").split()


def make_mix(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    golds, texts = [], []
    for _ in range(n):
        gold, right, wrong = rng.choice(ANSWERS)
        steps = []
        for _ in range(rng.randint(15, 120)):
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            steps.append(" ".join(rng.choices(WORDS, k=8)) + f" ${a} \\cdot {b} = {a * b}$, and $\\frac{{{a}}}{{{b}}}$.")
        r = rng.random()
        tail = f"\\boxed{{{right}}}" if r < 0.5 else (f"\\boxed{{{wrong}}}" if r < 0.95 else "I am not sure.")
        golds.append(gold)
        texts.append("<think>\n" + "\n".join(steps) + "\n</think>\nThe final answer is " + tail)
    return golds, texts


def plain_math_verify(golds: list[str], texts: list[str]) -> list[bool]:
    """What a reward written straight on Math-Verify does (open-r1's accuracy_reward): parse both, verify."""
    from math_verify import LatexExtractionConfig, parse, verify

    out = []
    for gold, text in zip(golds, texts):
        g = parse(f"${gold}$", extraction_config=[LatexExtractionConfig()])
        p = parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0)])
        out.append(bool(g) and bool(p) and verify(g, p))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from budgetreason.verify import pool, score_batch

    golds, texts = make_mix(args.n, args.seed)
    pool().map([("1", "1")])  # start the workers outside the timing (once per training run)
    t0 = time.perf_counter()
    ours = score_batch(golds, texts)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = plain_math_verify(golds, texts)
    t_plain = time.perf_counter() - t0
    agree = sum(bool(a) == bool(b) for a, b in zip(ours, plain)) / len(golds)
    kb = sum(len(t) for t in texts) / len(texts) / 1000
    print(f"{args.n} completions, mean {kb:.1f} kB, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"{pool().size} verifier workers, {time.strftime('%Y-%m-%d')}\n")
    print("| scorer | seconds | completions/s |")
    print("|---|---|---|")
    print(f"| plain sequential Math-Verify (parse whole text, verify) | {t_plain:.2f} | {args.n / t_plain:.0f} |")
    print(f"| budgetreason `score_batch` | {t_ours:.2f} | {args.n / t_ours:.0f} |")
    print(f"\nspeed-up {t_plain / t_ours:.1f}×; verdicts agree on {agree:.1%} of completions "
          f"(budgetreason judges only the answer after </think>, plain parsing may pick up other boxed or inline maths)")


if __name__ == "__main__":
    main()
