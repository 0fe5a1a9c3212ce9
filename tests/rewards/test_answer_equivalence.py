"""Answer equivalence, table-driven: (gold, completion, expected). Real Math-Verify in real worker processes.

Each table is scored in one ``score_batch`` call (as GRPO scores a batch), and a failure lists
every case that went wrong. Math-Verify is the reference (tests/rewards/test_math_verify_suite.py), so
where its verdict is not a reader's the table follows it: a relation does not answer an interval
gold (``(3, \\infty)`` vs ``x > 3``; the reverse does, its test_set_rel_assymetry), a bare ``1,2`` is
the decimal 1.2, ``75\\,\\%`` does not parse, and a gold with several boxes is their set.
"""

from __future__ import annotations

import pytest

from budgetreason.rewards.verify import answers_match, extract_answer, extract_choice, score_batch


def boxed(x: str) -> str:
    """A completion in the shape the rewards expect: reasoning, then the boxed answer."""
    return f"<think>\nworking...\n</think>\nSo the answer is \\boxed{{{x}}}."


MATRIX = "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"

CASES = {
    "integers": [
        ("7", boxed("7"), True), ("7", boxed("07"), True), ("-3", boxed("-3"), True), ("-3", boxed("3"), False),
        ("1000", boxed("1,000"), True), ("1000", boxed("1000.0"), True), ("42", boxed("42.5"), False),
        ("204", boxed("\\textbf{204}"), True), ("15", boxed("\\mathbf{15}"), True), ("25", boxed("5^2"), True),
        ("12", boxed("13"), False), ("0", boxed("0"), True), ("0", boxed("-0"), True), ("100", boxed("10^2"), True),
        ("8", boxed("2^3"), True), ("999", boxed("998"), False), ("1000000", boxed("1,000,000"), True),
        ("1,000", boxed("1000"), True), ("2", boxed("\\frac{4}{2}"), True), ("-1", boxed("-(1)"), True),
        ("2^{10}", boxed("1024"), True), ("\\binom{5}{2}", boxed("10"), True), ("5!", boxed("120"), True),
        ("|-3|", boxed("3"), True), ("3\\times 10^{5}", boxed("300000"), True),
        ("1.5 \\times 10^3", boxed("1500"), True),
    ],
    "fractions": [
        ("3/4", boxed("\\frac{3}{4}"), True), ("3/4", boxed("\\dfrac{3}{4}"), True), ("3/4", boxed("\\tfrac34"), True),
        ("3/4", boxed("0.75"), True), ("\\frac{3}{4}", boxed("3/4"), True), ("\\frac{3}{4}", boxed("6/8"), True),
        ("\\frac{1}{2}", boxed("0.5"), True), ("\\frac{1}{3}", boxed("0.333333"), True),
        ("\\frac{2}{3}", boxed("\\frac{3}{2}"), False), ("\\frac{1}{2}", boxed("\\frac{1}{3}"), False),
        ("-\\frac{1}{2}", boxed("\\frac{-1}{2}"), True), ("\\frac{7}{2}", boxed("3\\frac{1}{2}"), True),
        ("2\\frac{1}{2}", boxed("2.5"), True), ("\\frac{5}{4}", boxed("1.25"), True),
        ("\\frac{1}{4}", boxed("0.2"), False),
        ("\\frac{\\sqrt{3}}{2}", boxed("\\frac{1}{2}\\sqrt{3}"), True), ("\\frac{2}{4}", boxed("\\frac12"), True),
        ("5/2", boxed("2.5"), True), ("\\frac{1}{7}", boxed("0.142857"), True), ("\\frac{1}{7}", boxed("0.14"), False),
        ("-\\frac{3}{4}", boxed("-0.75"), True), ("\\frac{3}{4}", boxed("-\\frac{3}{4}"), False),
        ("\\frac{9}{2}", boxed("4.5"), True), ("1/3", boxed("0.3"), False),
        ("\\dfrac{5}{6}", boxed("\\frac{5}{6}"), True),
    ],
    "decimals": [
        ("0.75", boxed("\\frac{3}{4}"), True), ("2.5", boxed("\\frac{5}{2}"), True), ("3.14", boxed("3.14"), True),
        ("0.1", boxed("0.10"), True), ("1.5", boxed("1.6"), False), ("0.001", boxed("10^{-3}"), True),
        ("12.0", boxed("12"), True), ("0.125", boxed("\\frac18"), True), ("0.5", boxed("1/2"), True),
        ("2.50", boxed("2.5"), True), ("3.0", boxed("3"), True), ("0.3", boxed("0.33"), False),
        ("8", boxed("8.0000001"), False), ("100", boxed("100.5"), False),
    ],
    "percents": [
        ("50\\%", boxed("50\\%"), True), ("50\\%", boxed("50"), True), ("25\\%", boxed("25 \\%"), True),
        ("30\\%", boxed("40\\%"), False), ("12.5\\%", boxed("12.5\\%"), True), ("20\\%", boxed("20"), True),
        ("20\\%", boxed("0.2"), True), ("5\\%", boxed("50\\%"), False), ("75\\%", boxed("75\\,\\%"), False),
        ("10", boxed("10\\%"), True),
    ],
    "latex variants": [
        ("(1,2)", boxed("\\left( 1, 2 \\right)"), True), ("(2,3)", boxed("\\left(2,3\\right)"), True),
        ("[1,2]", boxed("\\left[1,2\\right]"), True), ("30^\\circ", boxed("30^\\circ"), True),
        ("30^\\circ", boxed("30"), True), ("30^\\circ", boxed("30^{\\circ}"), True),
        ("45^\\circ", boxed("30^\\circ"), False),
        ("90", boxed("90^\\circ"), True), ("5", boxed("5\\text{ cm}"), True), ("12", boxed("12 \\text{ meters}"), True),
        ("10", boxed("10\\text{ dollars}"), True), ("6", boxed("6 \\text{ cm}^2"), True),
        ("60", boxed("60\\,\\text{mph}"), True),
        ("\\frac{1}{2}", boxed("\\frac{1}{2}\\text{ hour}"), True), ("10", boxed("\\text{10}"), True),
        ("\\$5", boxed("5"), True), ("5", boxed("\\$5"), True), ("6", boxed("\\displaystyle 6"), True),
        ("4", boxed("\\,4"), True), ("3", boxed("$3$"), True), ("\\text{Monday}", boxed("\\text{Monday}"), True),
        ("\\text{Monday}", boxed("\\text{Tuesday}"), False),
    ],
    "radicals and constants": [
        ("\\sqrt{2}", boxed("\\sqrt 2"), True), ("\\sqrt{2}", boxed("2^{1/2}"), True),
        ("2\\sqrt{2}", boxed("\\sqrt{8}"), True),
        ("\\sqrt{3}", boxed("\\sqrt{2}"), False), ("\\frac{\\sqrt{2}}{2}", boxed("\\frac{1}{\\sqrt{2}}"), True),
        ("\\sqrt[3]{2}", boxed("2^{1/3}"), True), ("\\sqrt{2}", boxed("1.414"), False),
        ("\\sqrt{2}", boxed("1.414214"), True),
        ("\\pi", boxed("\\pi"), True), ("2\\pi", boxed("2 \\pi"), True), ("\\pi", boxed("3.14"), False),
        ("\\frac{\\pi}{2}", boxed("\\pi/2"), True), ("\\pi/4", boxed("\\frac{\\pi}{4}"), True),
        ("\\infty", boxed("\\infty"), True), ("\\infty", boxed("-\\infty"), False), ("e", boxed("e"), True),
        ("\\ln 2", boxed("\\ln(2)"), True), ("\\log_2 8", boxed("3"), True), ("1+2i", boxed("2i+1"), True),
        ("3i", boxed("-3i"), False),
    ],
    "intervals": [
        ("(1,2]", boxed("(1,2]"), True), ("(1,2]", boxed("(1,2)"), False), ("[0,\\infty)", boxed("[0, \\infty)"), True),
        ("(-\\infty, 3)", boxed("(-\\infty,3)"), True), ("[1,5]", boxed("[1,5]"), True),
        ("[1,5]", boxed("[1,6]"), False),
        ("(0,1)\\cup(2,3)", boxed("(0,1)\\cup(2,3)"), True), ("(0,1)\\cup(2,3)", boxed("(2,3)\\cup(0,1)"), True),
        ("(-2, 2)", boxed("-2<x<2"), False), ("[2,\\infty)", boxed("x \\ge 2"), False),
        ("[-1, 1]", boxed("[-1,1]"), True),
        ("(-\\infty, 0) \\cup (0, \\infty)", boxed("(-\\infty,0)\\cup(0,\\infty)"), True),
        ("(0, 5]", boxed("(0, 5)"), False), ("(3, \\infty)", boxed("x > 3"), False), ("[0,1)", boxed("[0,1]"), False),
        ("x \\in [2,5]", boxed("[2,5]"), True), ("x>1", boxed("(1,\\infty)"), True),
    ],
    "sets": [
        ("\\{1,2,3\\}", boxed("\\{3,2,1\\}"), True), ("\\{1,2\\}", boxed("\\{1,2,3\\}"), False),
        ("\\{1, 2\\}", boxed("1, 2"), True), ("1,2", boxed("2,1"), False), ("\\{-1, 1\\}", boxed("\\pm 1"), True),
        ("\\{0\\}", boxed("\\{0\\}"), True), ("3, 5", boxed("3, 4"), False),
        ("\\{2, 4, 6\\}", boxed("\\{6,4,2\\}"), True),
        ("\\{1,2,3\\}", boxed("\\{1,2,4\\}"), False), ("\\{\\}", boxed("\\emptyset"), True),
        ("0", boxed("\\emptyset"), False),
    ],
    "tuples": [
        ("(3, 4)", boxed("(3,4)"), True), ("(3, 4)", boxed("(4,3)"), False), ("(1,2,3)", boxed("(1, 2, 3)"), True),
        ("(0, \\frac{1}{2})", boxed("(0, 0.5)"), True), ("(-1, 2)", boxed("(-1,2)"), True),
        ("(1, -2)", boxed("(1,-2)"), True),
        ("(1,2)", boxed("(1,2,3)"), False), ("(2, 3)", boxed("x=2, y=3"), True), ("a=1, b=2", boxed("a=1,b=2"), True),
    ],
    "matrices": [
        (MATRIX, boxed("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"), True),
        (MATRIX, boxed("\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"), True),
        (MATRIX, boxed("\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}"), False),
        (MATRIX, boxed("\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}"), False),
        ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", boxed("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}"), True),
        ("\\begin{pmatrix} \\frac{1}{2} \\\\ 1 \\end{pmatrix}",
         boxed("\\begin{pmatrix} 0.5 \\\\ 1 \\end{pmatrix}"), True),
        ("\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", boxed("\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}"), True),
        ("\\begin{pmatrix} 3 \\\\ 4 \\end{pmatrix}", boxed("\\begin{pmatrix} 4 \\\\ 3 \\end{pmatrix}"), False),
    ],
    "expressions": [
        ("x^2+1", boxed("1+x^2"), True), ("x^2+1", boxed("x^2+2"), False), ("2x+3", boxed("3+2x"), True),
        ("(x+1)^2", boxed("x^2+2x+1"), True), ("x^2-1", boxed("(x-1)(x+1)"), True),
        ("\\frac{x}{2}", boxed("0.5x"), True),
        ("a+b", boxed("b+a"), True), ("2a", boxed("a+a"), True), ("\\frac{1}{x}", boxed("x^{-1}"), True),
        ("x^3", boxed("x^2"), False), ("\\sin^2 x + \\cos^2 x", boxed("1"), True), ("3x-2", boxed("3x+2"), False),
        ("\\frac{x+1}{2}", boxed("\\frac{1}{2}x+\\frac{1}{2}"), True), ("x(x+1)", boxed("x^2+x"), True),
        ("\\sqrt{x}", boxed("x^{1/2}"), True), ("x^2 y", boxed("y x^2"), True), ("f(x) = 2x", boxed("2x"), True),
    ],
    "equations": [
        ("y=2x+1", boxed("y=2x+1"), True), ("y=2x+1", boxed("2x+1"), True), ("x=5", boxed("5"), True),
        ("x=5", boxed("x=6"), False), ("x = 3", boxed("x=3"), True), ("y = x + 1", boxed("y = 1 + x"), True),
        ("x^2+y^2=1", boxed("y^2+x^2=1"), True), ("x=2", boxed("y=2"), False), ("k = 4", boxed("4"), True),
    ],
    "gold as a full solution": [
        ("We compute ... so the answer is $\\boxed{12}$.", boxed("12"), True),
        ("Thus \\boxed{\\frac{3}{4}} is the probability.", boxed("0.75"), True),
        ("Hence $\\boxed{(1,2]}$", boxed("(1, 2]"), True), ("First \\boxed{1}, finally \\boxed{5}.", boxed("5"), False),
        ("Therefore \\boxed{7}.", boxed("8"), False), ("Natalia sold 48/2 = 24 clips.\n#### 72", boxed("72"), True),
    ],
    "multiple choice": [
        ("C", boxed("C"), True), ("C", boxed("(C)"), True), ("C", "<think>...</think> The answer is C.", True),
        ("C", boxed("\\text{C}"), True), ("B", boxed("C"), False), ("A", "Answer: (A)", True),
        ("D", "answer: B", False),
        ("C", "<think>A or C</think>\\boxed{c}", True), ("A", "no letter here", False),
        ("B", "The answer is (B).", True),
        ("D", boxed("D"), True), ("B", boxed("\\textbf{B}"), True), ("A", "**Answer: A**", True),
        ("C", "The correct option is C", True), ("B", "(B)", True),
        ("A", "<think>The answer is A</think>\nThe answer is B", False),
        ("D", "Answer: D) 42", True), ("B", "The answer is \\(B\\).", True),
    ],
    "where the answer is taken from": [
        ("5", "<think>\\boxed{3}</think>\nThe answer is \\boxed{5}", True),
        ("3", "<think>\\boxed{3}</think>\nThe answer is \\boxed{5}", False),
        ("5", "\\boxed{3} then corrected: \\boxed{5}", True), ("5", "We find that the final answer is 5.", True),
        ("5", "Answer: 5", True), ("5", "The answer is $5$.", True), ("10", "<think>The answer is 10</think>", False),
        ("5", "I think it is \\boxed{\\boxed{5}}", True), ("10", "\\boxed 10", True),
        ("1/2", "<think>half</think>\\boxed{\\frac{1}{2}}", True), ("4", "#### 4", True), ("3/4", "0.75", True),
        ("\\frac{1}{2}", "$\\frac{1}{2}$", True), ("12", "The answer is: $12$", True),
        ("12", "**Final Answer:** 12", True),
        ("7", "Final answer: 7 apples", True), ("3", "The answer is 3, since 1+2=3.", True),
        ("-2", "answer = -2", True),
        ("3.5", "so the answer is 3.5.", True),
    ],
    "must score 0": [
        ("7", "", False), ("7", "I don't know.", False), ("7", boxed(""), False), ("7", "\\boxed{7", False),
        ("7", "<think>7</think>", False), ("7", boxed("seven"), False), ("7", boxed("x"), False),
        ("7", boxed("71"), False), ("7", boxed("0.7"), False), ("7", boxed("-7"), False),
        ("\\frac{1}{2}", boxed("2"), False), ("(1,2)", boxed("[1,2]"), False), ("\\{1,2\\}", boxed("\\{1\\}"), False),
        ("2", boxed("\\sqrt{2}"), False), ("x+1", boxed("x-1"), False), ("4", boxed("2+2=5"), False),
        ("C", boxed("E"), False), ("0", boxed("1"), False), ("100", boxed("10"), False),
        ("\\pi", boxed("\\frac{22}{7}"), False), ("7", "Let me answer this carefully: it is hard.", False),
        ("7", "<think>\\boxed{7}</think> I could not finish.", False), ("3", "The answer is 3.5.", False),
    ],
}
ALL = [case for cases in CASES.values() for case in cases]


def test_the_table_is_large_and_covers_every_category():
    assert len(ALL) >= 150
    assert sum(1 for _, _, ok in ALL if not ok) >= 60
    assert all(len(cases) >= 5 for cases in CASES.values())


def test_equivalence_table():
    got = score_batch([g for g, _, _ in ALL], [t for _, t, _ in ALL])
    wrong = [(g, t, exp, res) for (g, t, exp), res in zip(ALL, got) if (res == 1.0) != exp]
    assert not wrong, "\n".join(f"gold={g!r} text={t!r}: expected {exp}, got {res}" for g, t, exp, res in wrong)


EXTRACTION = [  # (completion, extract_answer, extract_choice)
    ("<think>\\boxed{1}</think> so \\boxed{\\frac{3}{4}}", "\\frac{3}{4}", None),
    ("<think>x</think>\\boxed{\\text{(B)}}", "\\text{(B)}", "B"),
    ("The final answer is 3.5.", "3.5", None),
    ("The answer is $\\frac{1}{2}$, as shown.", "\\frac{1}{2}", None),
    ("Answer: x = 5, so we are done", "x = 5", None),
    ("Let me answer this carefully.\nWe get 4", None, None),
    ("Natalia sold 72 clips.\n#### 72", "72", None),
    ("0.75", "0.75", None),
    ("(1, 2]", "(1, 2]", None),
    ("I am not sure.", None, None),
    ("<think>The answer is 10</think>", None, None),
    ("<think>...</think>\nThe answer is (C).", "(C)", "C"),
    ("Option A is wrong, so the answer is D", "D", "D"),
    ("\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", None, None),
    ([{"role": "assistant", "content": "so \\boxed{42}"}], "42", None),
]


@pytest.mark.parametrize("text,answer,choice", EXTRACTION)
def test_extraction(text, answer, choice):
    assert extract_answer(text) == answer
    assert extract_choice(text) == choice


def test_answers_match_takes_a_bare_answer_or_a_completion():
    assert answers_match("3/4", "0.75") is True
    assert answers_match("3/4", "<think>hmm</think> The answer is \\boxed{\\frac{6}{8}}") is True
    assert answers_match("3/4", "\\boxed{0.7}") is False
    assert answers_match("\\frac{", "\\boxed{1}") is None  # a gold that does not parse cannot judge anything


def _number_regions(seed: int = 0, n: int = 300) -> list[tuple[str, str]]:
    r"""(gold, answer region) pairs of integers and fractions: equal, near and far values, in the
    shapes completions end with (prose, then a box in $...$, \[...\], \(...\) or bare)."""
    import random
    from fractions import Fraction

    rng = random.Random(seed)

    def gold_form(x: Fraction) -> str:
        return str(x.numerator) if x.denominator == 1 else rng.choice([f"{x.numerator}/{x.denominator}"])

    def box_form(x: Fraction) -> str:
        sign = "-" if x < 0 else ""
        a, b = abs(x.numerator), x.denominator
        k = rng.choice([1, 1, 2, 3])
        forms = [f"{sign}\\frac{{{a * k}}}{{{b * k}}}", f"{sign}\\dfrac{{{a}}}{{{b}}}", f"{sign}{a * k}/{b * k}"]
        if b == 1:
            forms += [str(x.numerator), f"{sign}00{a}", f" {x.numerator} "]
        return rng.choice(forms)

    shapes = ["Therefore, \\boxed{%s}", "The final answer is $\\boxed{%s}$.", "**Final Answer**\n\\[\n\\boxed{%s}\n\\]",
              "\\boxed{%s}", "So 3 + 4 = 7 and the answer is \\(\\boxed{%s}\\).", "\n\nAnswer: \\boxed{%s}\n",
              "The final answer is \\boxed{%s} I hope"]
    pairs = []
    while len(pairs) < n:
        x = Fraction(rng.randint(-300, 300), rng.choice([1, 1, 1, 2, 3, 4, 7, 8, 100]))
        y = rng.choice([x, x, x + Fraction(1, 10 ** rng.randint(1, 7)), Fraction(rng.randint(-300, 300), 7), -x])
        pairs.append((gold_form(x), rng.choice(shapes) % box_form(y)))
    return pairs


#: Regions the shortcut must leave to Math-Verify: other math beside the box, a percent, two boxes...
NOT_FAST = [("12", "\\boxed{12}\\%"), ("12", "\\boxed{12} and \\boxed{13}"), ("12", "$x = 5$, so \\boxed{12}"),
            ("12", "\\boxed{12}, or $13$"), ("1/2", "\\boxed{0.5}"), ("12", "12"), ("12", "\\boxed{1/0}"),
            ("12", "[\\boxed{12}]"), ("12.0", "\\boxed{12}"), ("1,000", "\\boxed{1000}"), ("12", "\\boxed{12} cm^{2}")]


def test_the_in_process_number_shortcut_agrees_with_math_verify():
    """fast_match decides integers and fractions without SymPy; wherever it decides, Math-Verify
    (its own parse of the same region, in the workers) says the same."""
    from budgetreason.rewards.verify import fast_match, pool

    decided = [(g, r, fast_match(g, r)) for g, r in _number_regions()]
    decided = [(g, r, v) for g, r, v in decided if v is not None]
    assert len(decided) >= 250 and {v for _, _, v in decided} == {True, False}
    truth = pool().map([(g, r) for g, r, _ in decided])
    wrong = [(g, r, v, t) for (g, r, v), t in zip(decided, truth) if v != t]
    assert not wrong, wrong
    assert [fast_match(g, r) for g, r in NOT_FAST] == [None] * len(NOT_FAST)


FINAL_BOX_REGIONS = [  # answer regions as completions end: the final box after summaries with and without math
    "We have $3 + 4 = 7$.\nThe final answer is $\\boxed{7}$.", "Therefore, \\boxed{\\frac{3}{4}}",
    "**Final Answer**\n\\[\n\\boxed{(1, 2]}\n\\]", "To solve this, note that \\(2 \\cdot 3 = 6\\). Hence\n\n\\boxed{6}",
    "Substituting $x = 2$ gives $4$; so\n\\(\\boxed{x^2+1}\\)", "So the answer is $$\\boxed{12}$$",
    "The answer is \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}.", "Thus \\boxed{50\\%}", "So \\boxed{5} cm.",
    "Hence \\boxed{x = 3}, as required.", "\\boxed{\\text{Monday}}", "Thus \\boxed{\\frac{1}{}}\nbut $5$ anyway",
    "It is \\boxed{}\nand $x=2$", "Answer: $x = 4$\nso \\boxed{4}", "so \\boxed{1, 2} and 3", "\\boxed{3} and $4$",
    "So $a$ is \\boxed{7}", "We get [\\boxed{3}]", "$$x$$ then \\boxed{5} $$y$$", "\\[x\\]\n\\boxed{2}",
    "final answer is \\boxed{4} I hope", "\\boxed{2} \\boxed{3}", "1$\\boxed{2}$", "So \\boxed{2}\\%",
]


def test_the_final_box_shortcut_is_math_verifys_answer():
    """Where final_box gives an end and Math-Verify parses a box in it, Math-Verify on the whole
    region finds the same answer (so a verdict for (gold, end) holds for every region with that end)."""
    import sys
    from pathlib import Path

    from math_verify import parse

    from budgetreason.rewards.verify import extraction_targets, final_box

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from rewards import make_mix  # the benchmark's GRPO-shaped completions

    from budgetreason.rewards.verify import answer_region

    regions = FINAL_BOX_REGIONS + [answer_region(t) for t in make_mix(24, 4, 3)[1]]
    checked = 0
    for region in regions:
        end = final_box(region)
        if end is None:
            continue
        from_end = parse(end, extraction_targets())
        if any(not isinstance(x, str) for x in from_end):
            checked += 1
            assert str(from_end) == str(parse(region, extraction_targets())), (region, end)
    assert checked >= 60
    assert [final_box(r) for r in FINAL_BOX_REGIONS[-8:-1]] == [None] * 7
