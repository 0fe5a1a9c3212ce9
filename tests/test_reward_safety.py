"""Untrusted model output: no code runs, every check is bounded in time, no exception escapes."""

from __future__ import annotations

import threading
import time

import pytest

from budgetreason import rewards
from budgetreason.verify import answers_match, extract_answer, pool, score_batch

#: Wall-clock allowance on a loaded 2-core CI machine: the 5 s bound plus start-up and slack.
BOUND_S = 5.0 + 4.0


def payloads(marker: str) -> list[str]:
    m = marker
    return [
        f"__import__('os').system('touch {m}')",
        f"\\boxed{{__import__('os').system('touch {m}')}}",
        f"The answer is eval(\"open('{m}','w').write('x')\")",
        f"Answer: exec(\"open('{m}','w')\")",
        f"The final answer is 2+__import__('os').system('touch {m}')",
        f"\\boxed{{\\text{{__import__('os').system('touch {m}')}}}}",
        f"$\\boxed{{(lambda: __import__('subprocess').run(['touch', '{m}']))()}}$",
        f"Answer: sympify(\"__import__('os').system('touch {m}')\")",
        f"\\boxed{{Symbol('x').__class__.__init__.__globals__['os'].system('touch {m}')}}",
        f"The answer is (1).__class__.__bases__[0].__subclasses__() and open('{m}','w')",
        f"<think>\\boxed{{__import__('os').system('touch {m}')}}</think>\\boxed{{getattr(__import__('os'),'system')('touch {m}')}}",
    ]


def test_no_payload_leaves_a_trace(tmp_path):
    marker = tmp_path / "pwned"
    texts = payloads(str(marker))
    got = score_batch(["7"] * len(texts), texts)
    assert all(r is not True for r in got)
    for fn in (rewards.accuracy_reward, rewards.length_reward, rewards.make_cosine_scaled_reward()):
        fn(texts, solution=["2"] * len(texts))
    rewards.format_reward(texts)
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", [
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "<think>" + "x" * 200_000 + "</think>\\boxed{12}",
    "a" * 200_000,
    "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
    "\\boxed{10^{10^{10^{10}}}!}",
    "\\boxed{" + "+".join(["x^{99}"] * 400) + "}",
])
def test_pathological_completions_return_within_the_bound(text):
    t0 = time.monotonic()
    res = score_batch(["12"], [text])
    assert time.monotonic() - t0 < BOUND_S
    assert res[0] in (True, False, None)


def test_a_hang_costs_that_completion_only():
    golds = ["10", "\\frac{1}{2}", "3", "x^2+1"]
    texts = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{0.5}", "\\boxed{3}", "\\boxed{1+x^2}"]
    t0 = time.monotonic()
    got = score_batch(golds, texts, timeout_s=2.0)
    assert time.monotonic() - t0 < 2.0 + 4.0
    assert got[1:] == [True, True, True]
    assert got[0] in (False, None)


def test_a_worker_that_overruns_is_killed_and_replaced():
    p = pool()
    before = p.killed
    # timeout 1 s inside the worker fires on signal; give the hard deadline no room to wait for it
    res = p.map([("10", "10^{10^{10^{10^{10}}}}!")], timeout_s=0.2)
    assert res == [None] or res == [False]
    assert answers_match("3/4", "\\boxed{0.75}") is True  # the pool still works afterwards
    assert p.killed >= before


def test_bounded_off_the_main_thread():
    """TRL runs async rewards off the main thread, where signal.alarm is unavailable."""
    out = {}

    def work():
        t0 = time.monotonic()
        out["res"] = rewards.accuracy_reward(["\\boxed{9^{9^{9^{9}}}}", "\\boxed{3/4}"], solution=["1", "0.75"])
        out["dt"] = time.monotonic() - t0

    th = threading.Thread(target=work)
    th.start()
    th.join(timeout=30)
    assert not th.is_alive()
    assert out["res"] == [0.0, 1.0]
    assert out["dt"] < BOUND_S


def test_no_exception_escapes_a_reward():
    weird = [None, 3, {"role": "assistant"}, [], [{"content": None}], b"bytes", "\\boxed{"]
    assert rewards.accuracy_reward(weird, solution=["1"] * len(weird)) == [0.0] * len(weird)
    assert len(rewards.length_reward(weird, solution=["1"] * len(weird))) == len(weird)
    for fn in (rewards.format_reward, rewards.tag_count_reward, rewards.reasoning_steps_reward,
               rewards.make_repetition_penalty_reward(3, -1.0), rewards.make_soft_overlong_punishment(10, 2)):
        assert len(fn(weird)) == len(weird)
    # a gold answer that is not maths at all is judged 0 and counted, not raised
    rewards.STATS.pop()
    assert rewards.accuracy_reward(["\\boxed{x}"], solution=["\\unknowncommand{{{"]) == [0.0]


def test_extraction_cost_is_bounded_for_huge_text():
    t0 = time.monotonic()
    assert extract_answer("z" * 5_000_000 + "\\boxed{1}") == "1"
    # only the final 20 kB is searched: an answer buried at the start of 5 MB of text is not found
    assert extract_answer("\\boxed{1}" + "z" * 5_000_000) is None
    assert time.monotonic() - t0 < 1.0
