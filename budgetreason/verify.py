"""Bounded, sandboxed answer checking on top of Math-Verify.

Model output is untrusted text. Three rules keep it harmless and cheap:

1. Nothing here evaluates model text as Python. Answers are cut out with bounded regular
   expressions and handed to Math-Verify, whose LaTeX parser builds SymPy objects from a
   grammar and whose plain-expression parser only accepts digits and arithmetic operators
   (checked by tests with code-injection payloads).
2. Input is bounded before parsing: only the final region (after ``</think>``, last 20 kB)
   is searched, and an extracted answer longer than 1000 characters is not judged.
3. Every comparison that needs SymPy runs in a pool of worker processes with a wall-clock
   deadline (default 5 s). Math-Verify's own ``signal.alarm`` timeouts work only in a main
   thread and cannot interrupt a long C-level computation (``9^{9^{9^{9}}}``); a worker
   that overruns is killed and replaced, costing that one completion, never the run. Rewards
   may therefore be called from any thread (TRL runs ``async`` rewards off the main thread).

Public API: :func:`extract_answer`, :func:`extract_choice`, :func:`answers_match`,
:func:`score_batch`.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import threading
import time
from collections import deque

DEFAULT_TIMEOUT_S = 5.0
#: Only this much of a completion's end is searched for the final answer.
TAIL_CHARS = 20_000
#: An extracted answer longer than this is not judged (scores 0).
MAX_ANSWER_CHARS = 1_000
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_STATED = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*(?:\$+)?\s*([^\n$]{1,300}?)\s*(?:\$+)?\s*(?:\.|\n|$)",
    re.IGNORECASE)
_CHOICE = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?\.?$")
_STATED_CHOICE = re.compile(r"(?:answer|choice|option)\s*(?:is|:)?\s*:?\s*\(?([A-E])\)?(?![A-Za-z])", re.IGNORECASE)


# ---- extraction (in-process, bounded) -------------------------------------------------------------
def completion_text(completion) -> str:
    """A completion as TRL passes it: a string, or chat messages (the assistant's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        return str(last.get("content", "")) if isinstance(last, dict) else str(last)
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return "" if completion is None else str(completion)


def final_region(text: str) -> str:
    """What follows the last ``</think>`` (the whole text without one), at most TAIL_CHARS from the end."""
    idx = text.rfind("</think>")
    if idx >= 0:
        text = text[idx + len("</think>"):]
    return text[-TAIL_CHARS:]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced, nesting allowed), or None."""
    matches = list(_BOXED.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            limit = min(len(text), i + MAX_ANSWER_CHARS + 2)
            while j < limit:
                ch = text[j]
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j].strip()
                j += 1
            return None  # unbalanced or longer than MAX_ANSWER_CHARS
        tail = re.match(r"(\S{1,50})", text[i:])  # "\boxed 5"
        if tail:
            return tail.group(1).rstrip(".$")
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last ``\\boxed{}`` after ``</think>`` (or anywhere, without a think block),
    else the last clearly stated answer ("the answer is X", "Answer: X"). None if there is none.

    >>> extract_answer("<think>\\\\boxed{1}</think> so \\\\boxed{\\\\frac{3}{4}}")
    '\\\\frac{3}{4}'
    >>> extract_answer("We get 12. The final answer is 42.")
    '42'
    """
    region = final_region(completion_text(text))
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed or None
    stated = list(_STATED.finditer(region[-2000:]))
    if stated:
        ans = stated[-1].group(1).strip().rstrip(".").strip()
        return ans or None
    return None


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A-E: from the final box ("\\\\boxed{C}", "\\\\boxed{(C)}") or a stated answer."""
    region = final_region(completion_text(text))
    boxed = last_boxed(region)
    if boxed is not None:
        m = _CHOICE.match(re.sub(r"\\text\{(.*)\}", r"\1", boxed).strip())
        if m:
            return m.group(1).upper()
    stated = list(_STATED_CHOICE.finditer(region[-2000:]))
    return stated[-1].group(1).upper() if stated else None


def gold_answer(gold: str) -> str:
    """A gold answer as given (bare) or the boxed answer of a full solution."""
    gold = str(gold).strip()
    boxed = last_boxed(gold) if "\\boxed" in gold or "\\fbox" in gold else None
    return (boxed if boxed is not None else gold).strip().strip("$").strip()


def is_choice(gold: str) -> bool:
    """A gold answer that is a capital letter A-E (GPQA-style multiple choice)."""
    return bool(re.fullmatch(r"\(?\s*[A-E]\s*\)?", gold.strip()))


def _plain(s: str) -> str:
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", "").replace("$", "")
    s = re.sub(r"\\(?:d|t)frac", r"\\frac", s)
    return re.sub(r"\s+", "", s).rstrip(".")


def fast_match(gold: str, pred: str) -> bool | None:
    """Decide without SymPy when we safely can: identical after whitespace/markup, or two plain
    integers. None means 'needs Math-Verify'."""
    g, p = _plain(gold), _plain(pred)
    if g == p and g:
        return True
    ig, ip = _integer(g), _integer(p)
    if ig is not None and ip is not None:
        return ig == ip
    return None


def _integer(s: str) -> int | None:
    """A plain integer, allowing thousands separators ("1,000") but not lists ("1,2")."""
    if re.fullmatch(r"-?\d{1,60}", s) or re.fullmatch(r"-?\d{1,3}(?:,\d{3})+", s):
        return int(s.replace(",", ""))
    return None


# ---- the SymPy comparison (runs inside a worker process) -------------------------------------------
def _verify_here(gold: str, pred: str, timeout_s: float) -> bool | None:
    """Math-Verify on one pair. Called in a worker's main thread, so its signal timeouts work too."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    t = max(1, int(timeout_s))
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    # no_fallback: a gold that does not parse is reported, not compared as a raw string
    gold_parsed = parse(f"${gold}$", extraction_config=configs, parsing_timeout=t, fallback_mode="no_fallback")
    if not gold_parsed:
        gold_parsed = parse(gold, extraction_config=configs, parsing_timeout=t, fallback_mode="no_fallback")
    if not gold_parsed:
        return None  # the reference itself cannot be judged
    pred_parsed = parse(f"\\boxed{{{pred}}}", extraction_config=configs, parsing_timeout=t)
    if not pred_parsed:
        pred_parsed = parse(pred, extraction_config=configs, parsing_timeout=t)
    if not pred_parsed:
        return False
    # Set-relation comparison: "-2 < x < 2" answers the interval (-2, 2).
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=t, allow_set_relation_comp=True))


def _worker_loop() -> None:
    """A worker: JSON lines in on stdin (i, gold, pred, timeout), JSON lines out on stdout (i, result)."""
    import json
    import logging
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle, not ours
    logging.disable(logging.CRITICAL)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the protocol
    for line in sys.stdin:
        try:
            job = json.loads(line)
            result = _verify_here(job["gold"], job["pred"], job["t"])
        except Exception:
            result, job = None, job if isinstance(job, dict) else {"i": -1}
        out.write(json.dumps({"i": job.get("i"), "r": result}) + "\n")
        out.flush()


class _Worker:
    """One verifier subprocess. A fresh interpreter (not a fork): it never re-runs the caller's
    script, holds no copy of the trainer's memory, and can be killed without harm."""

    def __init__(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from budgetreason.verify import _worker_loop; _worker_loop()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
            start_new_session=True)  # its own process group: a terminal's Ctrl-C does not reach it
        self.buffer = b""

    def send(self, job: dict) -> None:
        import json

        self.proc.stdin.write((json.dumps(job) + "\n").encode())

    def read_ready(self) -> list[dict]:
        """Whole lines available now (call when select says the pipe is readable)."""
        import json

        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            raise EOFError("verifier worker exited")
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class VerifierPool:
    """Verifier subprocesses, one job each at a time, every job under a wall-clock deadline.

    A worker that misses its deadline (or dies) is killed and replaced; its job scores None.
    """

    def __init__(self, processes: int | None = None):
        self.size = processes or max(1, min(4, os.cpu_count() or 1))
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.killed = 0
        self.owner = os.getpid()

    def map(self, jobs: list[tuple[str, str]], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[bool | None]:
        """Results for (gold, pred) pairs, in order. Thread-safe; returns when every job ended or timed out."""
        import select

        results: list[bool | None] = [None] * len(jobs)
        if not jobs:
            return results
        with self.lock:
            while len(self.workers) < min(self.size, len(jobs)):
                self.workers.append(_Worker())
            pending = deque(range(len(jobs)))
            idle = list(range(len(self.workers)))
            busy: dict[int, tuple[int, float]] = {}  # worker -> (job, deadline)
            # The first job of a fresh worker also pays its start-up (about a second to import SymPy).
            startup = 10.0
            while pending or busy:
                while pending and idle:
                    w, j = idle.pop(), pending.popleft()
                    fresh = self.workers[w].buffer == b"" and not getattr(self.workers[w], "used", False)
                    try:
                        self.workers[w].send({"i": j, "gold": jobs[j][0], "pred": jobs[j][1], "t": timeout_s})
                        self.workers[w].used = True
                        busy[w] = (j, time.monotonic() + timeout_s + 1.0 + (startup if fresh else 0.0))
                    except (BrokenPipeError, OSError):
                        self._replace(w)
                        pending.appendleft(j)
                        idle.append(w)
                if not busy:
                    continue
                soonest = min(d for _, d in busy.values())
                fds = {self.workers[w].proc.stdout.fileno(): w for w in busy}
                ready, _, _ = select.select(list(fds), [], [], max(0.0, soonest - time.monotonic()))
                for fd in ready:
                    w = fds[fd]
                    try:
                        replies = self.workers[w].read_ready()
                    except (EOFError, OSError, ValueError):
                        j, _ = busy.pop(w)
                        results[j] = None
                        self._replace(w)
                        idle.append(w)
                        continue
                    for rep in replies:
                        if w in busy and rep.get("i") == busy[w][0]:
                            results[busy.pop(w)[0]] = rep.get("r")
                            idle.append(w)
                now = time.monotonic()
                for w, (j, deadline) in list(busy.items()):
                    if now >= deadline:
                        busy.pop(w)
                        results[j] = None
                        self._replace(w)
                        idle.append(w)
        return results

    def _replace(self, w: int) -> None:
        self.workers[w].kill()
        self.killed += 1
        self.workers[w] = _Worker()

    def close(self) -> None:
        with self.lock:
            for worker in self.workers:
                worker.kill()
            self.workers = []


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> VerifierPool:
    """The process-wide verifier pool, created on first use and closed at exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner != os.getpid():
            _POOL = VerifierPool()
            atexit.register(_POOL.close)
        return _POOL


# ---- public scoring ----------------------------------------------------------------------------------
def score_batch(golds: list[str], texts: list, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[bool | None]:
    """Whether each completion's final answer equals its gold answer.

    True/False, or None when it could not be judged (the gold does not parse, or the check
    ran out of time). Cheap cases are decided in-process; the rest go to the worker pool.
    """
    results: list[bool | None] = [None] * len(texts)
    jobs, where = [], []
    for i, (gold, text) in enumerate(zip(golds, texts)):
        gold = gold_answer(gold)
        if is_choice(gold):
            choice = extract_choice(text)
            results[i] = choice is not None and choice == gold.strip("() .").upper()
            continue
        pred = extract_answer(text)
        if pred is None or len(pred) > MAX_ANSWER_CHARS:
            results[i] = False
            continue
        quick = fast_match(gold, pred)
        if quick is not None:
            results[i] = quick
            continue
        jobs.append((gold, pred))
        where.append(i)
    for i, res in zip(where, pool().map(jobs, timeout_s)):
        results[i] = res
    return results


def answers_match(gold: str, text: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool | None:
    """One completion against one gold answer (see :func:`score_batch`).

    >>> answers_match("3/4", "... so the answer is \\\\boxed{0.75}")
    True
    """
    return score_batch([gold], [text], timeout_s)[0]
