"""Untrusted model output: no code runs, every check is bounded in time and memory, no exception escapes.

Real Math-Verify, real worker processes, real files. Wall-clock bounds are generous enough for a
loaded 2-core CI machine: a check's bound plus 3 s.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from budgetreason.rewards import functions as rewards
from budgetreason.rewards.verify import VerifierPool, _verify_here, answers_match, extract_answer, pool, score_batch

SLACK_S = 3.0


def payloads(marker: str) -> list[str]:
    """Completions that would create ``marker`` if any part of them ran as Python."""
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
        f"\\boxed{{sympify('__import__(\"os\").system(\"touch {m}\")')}}",
        f"\\boxed{{parse_expr(\"open('{m}', 'w')\")}}",
        f"\\boxed{{Symbol('x').__class__.__init__.__globals__['os'].system('touch {m}')}}",
        f"The answer is (1).__class__.__bases__[0].__subclasses__() and open('{m}','w')",
        f"\\boxed{{\\operatorname{{__import__}}('os').system('touch {m}')}}",
        f"\\boxed{{\\mathrm{{exec}}(\\text{{open('{m}','w')}})}}",
        f"1 + 2; __import__('os').system('touch {m}')",
        f"<think>\\boxed{{__import__('os').system('touch {m}')}}</think>"
        f"\\boxed{{getattr(__import__('os'),'system')('touch {m}')}}",
        f"{m}",
    ]


def test_no_payload_leaves_a_trace(tmp_path):
    marker = tmp_path / "pwned"
    texts = payloads(str(marker))
    # through the worker pool, and through the rewards, against numeric and symbolic golds
    for gold in ("7", "x+1"):
        assert all(r != 1.0 for r in score_batch([gold] * len(texts), texts))
    for fn in (rewards.accuracy_reward, rewards.length_reward, rewards.make_cosine_scaled_reward()):
        fn(texts, solution=["2"] * len(texts))
    for fn in (rewards.format_reward, rewards.tag_count_reward, rewards.reasoning_steps_reward):
        fn(texts)
    # and through the comparison itself, in this process, with nothing in between
    for text in texts:  # the whole text as the answer region, and the cut-out answer as a gold
        answer = extract_answer(text) or text
        _verify_here("7", text)
        _verify_here(answer, "7")
        _verify_here(text, "$7$")
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []


def test_sympy_parse_expr_would_run_the_payload(tmp_path):
    """Why the rules matter: SymPy's parse_expr evaluates its input (so model text never reaches it
    except through Math-Verify's digits-and-operators filter, which the test above exercises)."""
    from sympy.parsing.sympy_parser import parse_expr

    marker = tmp_path / "parse_expr_ran"
    parse_expr(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    assert marker.exists()


PATHOLOGICAL = {
    "power tower": "\\boxed{9^{9^{9^{9}}}}",
    "10000 nested braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "200 kB chain of thought": "<think>" + "x = 1 + 1. " * 18_000 + "</think>\\boxed{12}",
    "200 kB without an answer": "a" * 200_000,
    "5000 nested parentheses": "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
    "factorial tower": "\\boxed{10^{10^{10^{10}}}!}",
    "400-term polynomial": "\\boxed{" + "+".join(["x^{99}"] * 400) + "}",
    "deep fraction": "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
    "memory bomb": "\\boxed{\\operatorname{zeros}(30000,30000)}",
    "200 kB answer line": "The answer is " + "9" * 200_000,
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_completions_return_within_the_bound(text):
    timeout_s = 2.0
    t0 = time.monotonic()
    res = score_batch(["12"], [text], timeout_s=timeout_s)
    assert time.monotonic() - t0 < timeout_s + SLACK_S
    assert res[0] in (0.0, None) or text.startswith("<think>")


def test_the_default_bound_is_five_seconds():
    pool().map([("1", "1")])  # workers started: the bound is on the check, not on starting Python
    t0 = time.monotonic()
    assert rewards.accuracy_reward(["\\boxed{9^{9^{9^{9}}}}"], solution=["12"]) == [0.0]
    assert 4.0 < time.monotonic() - t0 < 5.0 + SLACK_S


def test_a_hang_costs_that_completion_only():
    golds = ["10", "\\frac{1}{2}", "3", "x^2+1", "(1,2]"]
    texts = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{0.5}", "\\boxed{3}", "\\boxed{1+x^2}", "\\boxed{(1, 2]}"]
    t0 = time.monotonic()
    got = score_batch(golds, texts, timeout_s=2.0)
    assert time.monotonic() - t0 < 2.0 + SLACK_S
    assert got == [None, 1.0, 1.0, 1.0, 1.0]


def test_a_hung_worker_is_killed_and_replaced():
    """A worker stuck where no signal reaches it (stopped here with SIGSTOP) misses the parent's
    deadline; it is killed, its job is not judged, and the next job runs on a fresh worker."""
    p = VerifierPool(processes=1)
    try:
        assert p.map([("1/2", "0.5")]) == [True]
        os.kill(p.pids()[0], signal.SIGSTOP)
        stopped = p.pids()[0]
        t0 = time.monotonic()
        assert p.map([("3/4", "0.75"), ("x^2", "$x \\cdot x$")], timeout_s=1.0) == [None, True]
        assert time.monotonic() - t0 < 1.0 + 1.0 + 10.0  # deadline + grace + a fresh worker's start
        assert p.killed == 1 and stopped not in p.pids()
        assert subprocess.run(["kill", "-0", str(stopped)], capture_output=True).returncode != 0
    finally:
        p.close()


def test_a_dead_worker_is_replaced_without_losing_the_job():
    p = VerifierPool(processes=1)
    try:
        assert p.map([("1", "1.0")]) == [True]
        os.kill(p.pids()[0], signal.SIGKILL)
        time.sleep(0.2)
        assert p.map([("3/4", "0.75")]) == [True]  # the job never started on the dead worker, so it is retried
    finally:
        p.close()


def test_bounded_off_the_main_thread():
    """TRL runs async rewards off the main thread, where Math-Verify's signal.alarm cannot work."""
    out = {}

    def work():
        t0 = time.monotonic()
        out["res"] = score_batch(["1", "0.75"], ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{3/4}"], timeout_s=2.0)
        out["dt"] = time.monotonic() - t0

    th = threading.Thread(target=work)
    th.start()
    th.join(timeout=60)
    assert not th.is_alive()
    assert out["res"] == [None, 1.0]
    assert out["dt"] < 2.0 + SLACK_S


def _score_in_child(queue) -> None:
    """A reward process as TRL's async GRPO starts one: spawned, and scoring off its main thread."""
    result = {}

    def work():
        t0 = time.monotonic()
        result["scores"] = rewards.accuracy_reward(["\\boxed{9^{9^{9^{9}}}}", "\\boxed{0.5}", "<think>x</think>7"],
                                                   solution=["1", "1/2", "7"])
        result["dt"] = time.monotonic() - t0

    th = threading.Thread(target=work)
    th.start()
    th.join()
    queue.put(result)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_bounded_in_a_daemonic_worker_process(method):
    """Reward code in a daemonic child (TRL's spawned async rollout process; a forked DataLoader-style
    worker whose parent already has verifier workers). Daemonic processes may not start
    multiprocessing children; the verifier's subprocesses still work, and a fork never talks to
    its parent's workers."""
    pool().map([("1", "1")])  # the parent's pool is running when the fork happens
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=_score_in_child, args=(queue,), daemon=True)
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=30)
    assert result["scores"] == [0.0, 1.0, 1.0]
    assert result["dt"] < 5.0 + SLACK_S + 10.0  # the default bound, plus starting the child's workers
    assert pool().map([("2", "2.0")]) == [True]  # the parent's workers are untouched


@pytest.mark.filterwarnings("ignore:.*gold answers")
def test_no_exception_escapes_a_reward():
    weird = [None, 3, {"role": "assistant"}, [], [{"content": None}], b"bytes", "\\boxed{", float("nan"),
             [{"content": [{"type": "text", "text": "\\boxed{1}"}]}], "\x00\udcff\\boxed{\x00}"]
    n = len(weird)
    assert rewards.accuracy_reward(weird, solution=["1"] * n) == [0.0] * 8 + [1.0, 0.0]
    for fn in (rewards.length_reward, rewards.make_cosine_scaled_reward()):
        assert len(fn(weird, solution=["1"] * n)) == n
    for fn in (rewards.format_reward, rewards.tag_count_reward, rewards.reasoning_steps_reward,
               rewards.make_repetition_penalty_reward(3, -1.0), rewards.make_soft_overlong_punishment(10, 2),
               rewards.make_format_reward(True)):
        assert len(fn(weird)) == n
    assert rewards.accuracy_reward(["\\boxed{1}"] * 2, solution=["1"]) == [0.0, 0.0]  # mismatched columns
    assert rewards.accuracy_reward([], solution=[]) == []
    assert rewards.accuracy_reward(["\\boxed{x}"], solution=["\\unknowncommand{{{"]) == [None]  # a data fault: skipped
    assert rewards.format_reward(None) == []


def test_extraction_cost_is_bounded_for_huge_text():
    t0 = time.monotonic()
    assert extract_answer("z" * 5_000_000 + "\\boxed{1}") == "1"
    # only the final 20 kB is searched: an answer buried at the start of 5 MB of text is not found
    assert extract_answer("\\boxed{1}" + "z" * 5_000_000) is None
    assert extract_answer("\\boxed{" * 100_000) is None
    assert time.monotonic() - t0 < 2.0


def test_workers_end_with_the_process_that_started_them():
    code = ("from budgetreason.rewards.verify import answers_match, pool\n"
            "assert answers_match('x^2+1', '$1+x^2$')\n"
            "print(*pool().pids())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pids = [int(x) for x in r.stdout.split()]
    assert pids
    time.sleep(0.5)
    for pid in pids:
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0, f"worker {pid} outlived"


def test_answers_match_is_bounded_too():
    t0 = time.monotonic()
    assert answers_match("12", "\\boxed{9^{9^{9^{9}}}}", timeout_s=1.0) is None
    assert time.monotonic() - t0 < 1.0 + SLACK_S
