"""Answer equivalence, table-driven: (gold, completion, expected). Real Math-Verify, real worker processes."""

from __future__ import annotations

import pytest

from budgetreason.verify import score_batch

B = "\\boxed{{{}}}"


def boxed(x: str) -> str:
    return f"<think>\nworking...\n</think>\nSo the answer is \\boxed{{{x}}}."


CASES = [
    # --- integers and signs
    ("7", boxed("7"), True), ("7", boxed("07"), True), ("-3", boxed("-3"), True), ("-3", boxed("3"), False),
    ("1000", boxed("1,000"), True), ("1000", boxed("1000.0"), True), ("42", boxed("42.5"), False),
    ("204", boxed("\\textbf{204}"), True), ("25", boxed("5^2"), True), ("12", boxed("13"), False),
    ("0", boxed("0"), True), ("0", boxed("-0"), True), ("100", boxed("10^2"), True), ("8", boxed("2^3"), True),
    ("999", boxed("998"), False),
    # --- fractions
    ("3/4", boxed("\\frac{3}{4}"), True), ("3/4", boxed("\\dfrac{3}{4}"), True), ("3/4", boxed("\\tfrac34"), True),
    ("3/4", boxed("0.75"), True), ("\\frac{3}{4}", boxed("3/4"), True), ("\\frac{3}{4}", boxed("6/8"), True),
    ("\\frac{1}{2}", boxed("0.5"), True), ("\\frac{1}{3}", boxed("0.333333"), True), ("\\frac{2}{3}", boxed("\\frac{3}{2}"), False),
    ("\\frac{1}{2}", boxed("\\frac{1}{3}"), False), ("-\\frac{1}{2}", boxed("\\frac{-1}{2}"), True),
    ("\\frac{7}{2}", boxed("3\\frac{1}{2}"), True), ("\\frac{5}{4}", boxed("1.25"), True), ("\\frac{1}{4}", boxed("0.2"), False),
    ("\\frac{\\sqrt{3}}{2}", boxed("\\frac{1}{2}\\sqrt{3}"), True),
    # --- decimals
    ("0.75", boxed("\\frac{3}{4}"), True), ("2.5", boxed("\\frac{5}{2}"), True), ("3.14", boxed("3.14"), True),
    ("0.1", boxed("0.10"), True), ("1.5", boxed("1.6"), False), ("0.001", boxed("10^{-3}"), True),
    ("12.0", boxed("12"), True), ("0.125", boxed("\\frac18"), True),
    # --- percents
    ("50\\%", boxed("50\\%"), True), ("50\\%", boxed("50"), True), ("25\\%", boxed("25 \\%"), True),
    ("30\\%", boxed("40\\%"), False), ("12.5\\%", boxed("12.5\\%"), True),
    # --- LaTeX variants
    ("(1,2)", boxed("\\left( 1, 2 \\right)"), True), ("30^\\circ", boxed("30^\\circ"), True), ("30^\\circ", boxed("30"), True),
    ("30^\\circ", boxed("30^{\\circ}"), True), ("45^\\circ", boxed("30^\\circ"), False),
    ("5", boxed("5\\text{ cm}"), True), ("12", boxed("12 \\text{ meters}"), True), ("10", boxed("\\text{10}"), True),
    ("\\sqrt{2}", boxed("\\sqrt 2"), True), ("\\sqrt{2}", boxed("2^{1/2}"), True), ("2\\sqrt{2}", boxed("\\sqrt{8}"), True),
    ("\\sqrt{3}", boxed("\\sqrt{2}"), False), ("\\pi", boxed("\\pi"), True), ("2\\pi", boxed("2 \\pi"), True),
    ("\\pi", boxed("3.14"), False), ("\\frac{\\pi}{2}", boxed("\\pi/2"), True), ("6", boxed("\\displaystyle 6"), True),
    ("4", boxed("\\,4"), True), ("3", boxed("$3$"), True), ("\\infty", boxed("\\infty"), True),
    ("e", boxed("e"), True), ("\\ln 2", boxed("\\ln(2)"), True),
    # --- intervals
    ("(1,2]", boxed("(1,2]"), True), ("(1,2]", boxed("(1,2)"), False), ("[0,\\infty)", boxed("[0, \\infty)"), True),
    ("(-\\infty, 3)", boxed("(-\\infty,3)"), True), ("[1,5]", boxed("[1,5]"), True), ("[1,5]", boxed("[1,6]"), False),
    ("(0,1)\\cup(2,3)", boxed("(0,1)\\cup(2,3)"), True), ("(0,1)\\cup(2,3)", boxed("(2,3)\\cup(0,1)"), True),
    ("(-2, 2)", boxed("-2<x<2"), True), ("[2,\\infty)", boxed("x \\ge 2"), True),
    # --- sets
    ("\\{1,2,3\\}", boxed("\\{3,2,1\\}"), True), ("\\{1,2\\}", boxed("\\{1,2,3\\}"), False), ("\\{1, 2\\}", boxed("1, 2"), True),
    ("1,2", boxed("2,1"), True), ("\\{-1, 1\\}", boxed("\\pm 1"), True), ("\\{0\\}", boxed("\\{0\\}"), True),
    ("3, 5", boxed("3, 4"), False),
    # --- tuples
    ("(3, 4)", boxed("(3,4)"), True), ("(3, 4)", boxed("(4,3)"), False), ("(1,2,3)", boxed("(1, 2, 3)"), True),
    ("(0, \\frac{1}{2})", boxed("(0, 0.5)"), True), ("(-1, 2)", boxed("(-1,2)"), True),
    # --- matrices
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", boxed("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"), True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", boxed("\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"), True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", boxed("\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}"), False),
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", boxed("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}"), True),
    ("\\begin{pmatrix} \\frac{1}{2} \\\\ 1 \\end{pmatrix}", boxed("\\begin{pmatrix} 0.5 \\\\ 1 \\end{pmatrix}"), True),
    # --- expressions and equations
    ("x^2+1", boxed("1+x^2"), True), ("x^2+1", boxed("x^2+2"), False), ("2x+3", boxed("3+2x"), True),
    ("(x+1)^2", boxed("x^2+2x+1"), True), ("x^2-1", boxed("(x-1)(x+1)"), True), ("\\frac{x}{2}", boxed("0.5x"), True),
    ("y=2x+1", boxed("y=2x+1"), True), ("y=2x+1", boxed("2x+1"), True), ("x=5", boxed("5"), True),
    ("x=5", boxed("x=6"), False), ("a+b", boxed("b+a"), True), ("2a", boxed("a+a"), True),
    ("\\frac{1}{x}", boxed("x^{-1}"), True), ("x^3", boxed("x^2"), False), ("\\sin^2 x + \\cos^2 x", boxed("1"), True),
    ("3x-2", boxed("3x+2"), False),
    # --- gold given as a full solution with a box
    ("We compute ... so the answer is $\\boxed{12}$.", boxed("12"), True),
    ("Thus \\boxed{\\frac{3}{4}} is the probability.", boxed("0.75"), True),
    ("Hence $\\boxed{(1,2]}$", boxed("(1, 2]"), True), ("First \\boxed{1}, finally \\boxed{5}.", boxed("5"), True),
    ("Therefore \\boxed{7}.", boxed("8"), False),
    # --- multiple choice letters
    ("C", boxed("C"), True), ("C", boxed("(C)"), True), ("C", "<think>...</think> The answer is C.", True),
    ("C", boxed("\\text{C}"), True), ("B", boxed("C"), False), ("A", "Answer: (A)", True), ("D", "answer: B", False),
    ("C", "<think>A or C</think>\\boxed{c}", True), ("A", "no letter here", False),
    # --- where the answer is taken from
    ("5", "<think>\\boxed{3}</think>\nThe answer is \\boxed{5}", True),
    ("3", "<think>\\boxed{3}</think>\nThe answer is \\boxed{5}", False),
    ("5", "\\boxed{3} then corrected: \\boxed{5}", True),
    ("5", "We find that the final answer is 5.", True), ("5", "Answer: 5", True), ("5", "The answer is $5$.", True),
    ("10", "<think>The answer is 10</think>", False),
    ("5", "I think it is \\boxed{\\boxed{5}}", True), ("10", "\\boxed 10", True),
    ("1/2", "<think>half</think>\\boxed{\\frac{1}{2}}", True),
    # --- negative cases that must score 0
    ("7", "", False), ("7", "I don't know.", False), ("7", boxed(""), False), ("7", "\\boxed{7", False),
    ("7", "<think>7</think>", False), ("7", boxed("seven"), False), ("7", boxed("x"), False),
    ("7", boxed("71"), False), ("7", boxed("0.7"), False), ("7", boxed("-7"), False),
    ("\\frac{1}{2}", boxed("2"), False), ("(1,2)", boxed("[1,2]"), False), ("\\{1,2\\}", boxed("\\{1\\}"), False),
    ("2", boxed("\\sqrt{2}"), False), ("x+1", boxed("x-1"), False), ("4", boxed("2+2=5"), False),
    ("C", boxed("E"), False), ("0", boxed("1"), False), ("100", boxed("10"), False),
    ("\\pi", boxed("\\frac{22}{7}"), False),
]


def test_at_least_150_cases():
    assert len(CASES) >= 150
    assert sum(1 for _, _, ok in CASES if not ok) >= 40


def test_equivalence_table():
    golds = [g for g, _, _ in CASES]
    texts = [t for _, t, _ in CASES]
    got = score_batch(golds, texts)
    wrong = [(g, t, exp, res) for (g, t, exp), res in zip(CASES, got) if bool(res) != exp]
    assert not wrong, "\n".join(f"gold={g!r} text={t!r} expected {exp}, got {res}" for g, t, exp, res in wrong)
