"""Bounded, sandboxed answer checking on top of Math-Verify.

Model output is untrusted text. Four rules keep checking it harmless and cheap:

1. **Nothing evaluates model text as Python.** The answer region goes to Math-Verify's own
   ``parse`` (its extraction finds the answer). Its LaTeX parser builds SymPy objects from a grammar;
   its plain-expression parser (``ExprExtractionConfig``) does call SymPy's ``parse_expr``, which
   *does* ``eval`` its input (``parse_expr("__import__('os').system(...)")`` runs the command), but
   Math-Verify only hands it text matched by ``[\\d.\\s+\\-*×/^()÷]``: digits and operators, no
   names. The safety tests feed code payloads through every path and check that the file they
   would create never appears.
2. **Input is bounded before parsing.** Only the answer region is searched (what follows the
   last ``</think>``, see :func:`answer_region`), at most its last :data:`TAIL_CHARS` characters.
3. **Time is bounded per completion, in every thread.** Whatever needs SymPy runs in a pool of
   verifier subprocesses. Inside a worker an interval timer stops a check at ``timeout_s``; the
   parent also holds a wall-clock deadline (``timeout_s`` + :data:`GRACE_S`) and kills and
   replaces a worker that misses it, which covers C-level work no signal can interrupt
   (``\\operatorname{zeros}(8000,8000)`` took 4 s under a 1 s ``signal`` alarm here). Math-Verify's
   own ``signal.alarm`` timeouts work only in a main thread, and TRL runs ``async`` rewards, and
   its async GRPO loop runs every reward, off the main thread.
4. **Memory is bounded per worker** (``RLIMIT_AS``, :data:`WORKER_MEMORY_MB`), so
   ``\\operatorname{zeros}(30000,30000)`` (7 GB) fails inside the worker instead of inviting the
   OOM killer to the trainer.

Why subprocesses and not ``multiprocessing.Pool``: one hung task cannot be killed without breaking
a ``Pool`` or ``ProcessPoolExecutor``; spawned children re-import ``__main__`` (training scripts
without a ``__main__`` guard would re-run); and daemonic processes (TRL's async rollout child,
DataLoader workers) may not start ``multiprocessing`` children at all. A worker here is a fresh
interpreter (as with the ``spawn`` context) talking JSON lines over pipes.

Public API: :func:`score_batch` and :func:`judge_batch` (the verdicts), :func:`answers_match`,
:func:`answer_region`, :func:`shutdown`; :func:`extract_answer` and :func:`extract_choice` cut an
answer out for display (evaluation tables) and for multiple-choice letters, never for equivalence.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from fractions import Fraction

DEFAULT_TIMEOUT_S = 5.0
#: Extra wall-clock time the parent allows a worker past ``timeout_s`` before killing it (pipes, load).
GRACE_S = 1.0
#: How long a fresh worker may take to import SymPy and Math-Verify before it counts as failed.
STARTUP_TIMEOUT_S = 60.0
#: Address-space cap of a verifier worker (a Math-Verify worker needs about 100 MB).
WORKER_MEMORY_MB = 2048
#: Only this many characters at the end of a completion are searched for the final answer.
TAIL_CHARS = 20_000
#: An extracted answer longer than this is judged wrong without parsing.
MAX_ANSWER_CHARS = 1_000
#: Jobs queued in a worker at once (the one it is on, and the next ones).
PIPELINE = 3
#: Verdicts remembered per process, keyed by (gold, answer): GRPO groups repeat answers.
CACHE_SIZE = 8_192

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
# "The final answer is X", "Answer: X", "answer = X" (not "answer this question").
_STATED = re.compile(r"\b(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)\s*", re.IGNORECASE)
_HASHES = re.compile(r"^####\s*(.+)$", re.MULTILINE)  # GSM8K's "#### 42"
_LETTER = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?[.:]?$")
_STATED_CHOICE = re.compile(
    r"\b(?:answer|choice|option)\s*(?:is\s*:?|:)\s*(?:\*\*)?\\?\(?\s*([A-E])\b\s*\)?", re.IGNORECASE)
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{4,}")


# ---- extraction (in-process, bounded) -------------------------------------------------------------
def completion_text(completion) -> str:
    """A completion or prompt as TRL passes it: a string, or chat messages (the last message's text).

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)):
        return completion_text(completion[-1]) if completion else ""
    if isinstance(completion, dict):
        content = completion.get("content")
        if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}]
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return "" if content is None else str(content)
    return "" if completion is None else str(completion)


def final_region(text: str) -> str:
    """What follows the last ``</think>`` (the whole text without one), at most TAIL_CHARS from the end."""
    idx = text.rfind("</think>")
    if idx >= 0:
        text = text[idx + len("</think>"):]
    return text[-TAIL_CHARS:]


def answer_region(text, *, prompt_opens_think: bool = False, whole: bool = False,
                  boxed_only: bool = False) -> str | None:
    r"""The text Math-Verify searches for the final answer; None when the completion is unfinished.

    Default: what follows the last ``</think>``. A completion still inside its reasoning (a
    ``<think>`` opened in it, or at the end of the prompt as the DeepSeek-R1 distills' template
    does, and no ``</think>``) is unfinished: None, since a box in the middle of unfinished
    reasoning is not a final answer (TRL's ``reasoning_accuracy_reward`` scores it 0 too). A text
    without think tags is all answer. ``whole=True``: the whole text, as open-r1 and Tina parse it.
    ``boxed_only=True``: only the last ``\boxed{}`` of the region ("" when it has none), the
    micro-budget paper's "final boxed answer". At most the last :data:`TAIL_CHARS` characters.

    >>> answer_region("<think>\\boxed{1}</think> So \\boxed{2}."), answer_region("<think>\\boxed{1}")
    (' So \\boxed{2}.', None)
    >>> answer_region("<think>\\boxed{1}", whole=True), answer_region("x \\boxed{3}, so $4$", boxed_only=True)
    ('<think>\\boxed{1}', '\\boxed{3}')
    """
    text = completion_text(text)
    if not whole:
        idx = text.rfind("</think>")
        if idx >= 0:
            text = text[idx + len("</think>"):]
        elif prompt_opens_think or "<think>" in text:
            return None
    text = text[-TAIL_CHARS:]
    if boxed_only:
        box = last_boxed(text)
        return f"\\boxed{{{box}}}" if box else ""
    return text


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced, nesting allowed), or None.

    >>> last_boxed("\\\\boxed{1} and \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    """
    for m in reversed(list(_BOXED.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, limit = 0, min(len(text), i + MAX_ANSWER_CHARS + 2)
            for j in range(i, limit):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j].strip()
            return None  # unbalanced, or longer than MAX_ANSWER_CHARS: not judged
        bare = re.match(r"([^\s$]{1,50})", text[i:])  # "\boxed 5"
        if bare:
            return bare.group(1).rstrip(".")
    return None


def _strip_math(s: str) -> str:
    """Drop surrounding ``$``, ``\\(\\)``, ``\\[\\]``, bold and a final full stop."""
    s = s.strip().strip("*").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) > len(left) + len(right):
            s = s[len(left):-len(right)].strip()
    return re.sub(r"\.$", "", s).strip()


def _stated(region: str) -> str | None:
    """The last 'answer is X' / 'Answer: X' on its line, cut at the first sentence end."""
    matches = list(_STATED.finditer(region))
    if not matches:
        return None
    line = region[matches[-1].end():].split("\n", 1)[0][:300].strip()
    math = re.match(r"\$+([^$]+)\$+|\\\((.+?)\\\)", line)
    if math:
        return (math.group(1) or math.group(2)).strip() or None
    line = re.split(r"\.(?:\s|$)|,\s+(?:so|since|because|which|as)\b|;", line, maxsplit=1)[0]
    return _strip_math(line) or None


def _bare(region: str) -> str | None:
    """The whole region when it is nothing but an answer ("0.75", "$\\frac34$", "(1,2]"), else None."""
    s = _strip_math(region)
    if not s or len(s) > 200 or "\n" in s or s.count("{") != s.count("}") or _BOXED.search(s) \
            or _WORD.search(_COMMAND.sub("", s)):
        return None  # prose, several lines, or a box left open: not a bare answer
    return s


def extract_answer(text) -> str | None:
    """The final answer, or None if there is none.

    The last ``\\boxed{}`` after ``</think>`` (anywhere, without a think block); else the last
    clearly stated answer ("the final answer is X", "Answer: X", GSM8K's "#### X"); else the text
    itself when it is a bare answer. Accepts a string or chat messages.

    >>> extract_answer("<think>\\\\boxed{1}</think> so \\\\boxed{\\\\frac{3}{4}}")
    '\\\\frac{3}{4}'
    >>> extract_answer("We get 12. The final answer is 3.5.")
    '3.5'
    >>> extract_answer("0.75"), extract_answer("I am not sure.")
    ('0.75', None)
    """
    region = final_region(completion_text(text))
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed or None
    tail = region[-2_000:]
    hashes = list(_HASHES.finditer(tail))
    if hashes:
        return _strip_math(hashes[-1].group(1)) or None
    return _stated(tail) or _bare(tail)


def extract_choice(text) -> str | None:
    """A multiple-choice letter A-E (GPQA): from the final box, a stated answer, or a bare letter.

    >>> extract_choice("<think>A or C?</think> The answer is (C)."), extract_choice("\\\\boxed{\\\\text{B}}")
    ('C', 'B')
    """
    return _choice_in(final_region(completion_text(text)))


def _choice_in(region: str) -> str | None:
    boxed = last_boxed(region)
    if boxed is not None:
        m = _LETTER.match(re.sub(r"\\text(?:bf)?\{(.*)\}", r"\1", boxed).strip())
        if m:
            return m.group(1).upper()
    stated = list(_STATED_CHOICE.finditer(region[-2_000:]))
    if stated:
        return stated[-1].group(1).upper()
    m = _LETTER.match(_strip_math(region[-20:]) if len(region.strip()) <= 20 else "")
    return m.group(1).upper() if m else None


def gold_answer(gold) -> str:
    """A reference answer as given (``"3/4"``) or the boxed / ``####`` answer of a full solution.

    >>> gold_answer("so the probability is $\\\\boxed{\\\\frac{3}{4}}$."), gold_answer("$12$")
    ('\\\\frac{3}{4}', '12')
    """
    gold = str(gold).strip()
    boxed = last_boxed(gold) if ("\\boxed" in gold or "\\fbox" in gold) else None
    if boxed:
        return boxed
    hashes = list(_HASHES.finditer(gold))
    return _strip_math(hashes[-1].group(1) if hashes else gold)


def is_choice(gold: str) -> bool:
    """A gold answer that is a capital letter A-E (multiple choice, as GPQA)."""
    return bool(re.fullmatch(r"\(?\s*[A-E]\s*\)?", gold.strip()))


_GOLD_NUMBER = re.compile(r"(-?)(\d{1,18})(?:/(\d{1,18}))?")
# A region whose only math is one boxed integer or fraction, then at most a closing delimiter and a
# full stop: Math-Verify's boxed-first extraction can only return that box's value (a test checks
# every region this accepts). No backslash, dollar, brace, bracket or percent before it.
_FAST_REGION = re.compile(
    r"[^\\$%{}\[\]]{0,2000}?(?:\$|\\\[|\\\()?\s*\\boxed\{\s*(-?)(?:(\d{1,18})(?:/(\d{1,18}))?|"
    r"\\[dt]?frac\{(\d{1,18})\}\{(\d{1,18})\})\s*\}\s*(?:\$|\\\]|\\\))?\s*\.?\s*")


def _fraction(num: str, den: str | None, sign: str) -> Fraction | None:
    if den is not None and int(den) == 0:
        return None
    value = Fraction(int(num), int(den) if den is not None else 1)
    return -value if sign else value


def fast_match(gold: str, region: str) -> bool | None:
    r"""Math-Verify's verdict without SymPy where it is certain; None means 'ask Math-Verify'.

    Decided only when the gold is a bare integer or ``a/b`` and the answer region's only math is
    one ``\boxed{}`` holding an integer, ``a/b`` or ``\frac{a}{b}``: Math-Verify then compares two
    rationals exactly (no float rounding), so equal values are its True and different ones its
    False. A test runs Math-Verify on every case this decides.

    >>> fast_match("12", "Therefore, \\boxed{12}."), fast_match("3/4", "$\\boxed{\\frac{6}{8}}$"), fast_match("12", "12")
    (True, True, None)
    """
    g = _GOLD_NUMBER.fullmatch(gold.strip())
    p = _FAST_REGION.fullmatch(region) if len(region) <= 2_100 else None
    if g is None or p is None:
        return None
    sign, num, den, tex_num, tex_den = p.groups()
    vg = _fraction(g.group(2), g.group(3), g.group(1))
    vp = _fraction(num, den, sign) if num is not None else _fraction(tex_num, tex_den, sign)
    if vg is None or vp is None:
        return None
    return vg == vp


_OPENER_BEFORE_BOX = re.compile(r"(?:\$\$|\$|\\\(|\\\[)\s*$")
_INLINE_MATH = re.compile(r"[$\[\]]|\\\(|\\\)")
_PAIRS = {(None, None), ("$", "$"), ("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]")}
# A box alone between a matching pair of delimiters (or none), then at most a full stop.
_BOX_ONLY = re.compile(r"(\$\$|\$|\\\(|\\\[)?\s*\\boxed\{([^{}$]*(?:\{[^{}$]*\}[^{}$]*)*)\}\s*(\$\$|\$|\\\)|\\\])?\s*\.?\s*")


def final_box(region: str) -> str | None:
    r"""The end of the region from its only ``\boxed`` (or the ``$``, ``$$``, ``\(``, ``\[`` just
    before it), when nothing before it can change Math-Verify's answer if that box parses; the
    box alone (``\boxed{X}``) when the end is just the box between a pair of delimiters.

    Math-Verify tries ``\boxed{}`` matches first (priority 0) and stops at the first that
    parses, so with one box, no display math (``$$``, ``\[``) before it, no inline math on its
    line before it, and no "final answer is … I hope" (its other priority-0 pattern), the text
    before the box is only looked at when the box fails to parse. GRPO groups repeat final
    answers after different reasoning, so a verdict for (gold, this end) is reused across them;
    a worker parses the end first and the whole region only if the box does not parse. A test
    compares Math-Verify on both wherever this returns something.

    >>> final_box("We get $x=2$.\nSo $\\boxed{4}$."), final_box("Hence \\boxed{4} cm"), final_box("$$ a \\boxed{4} $$")
    ('\\boxed{4}', '\\boxed{4} cm', None)
    """
    i = region.find("\\boxed")
    if i < 0 or region.find("\\boxed", i + 1) >= 0 or "hope" in region.lower():
        return None
    m = _OPENER_BEFORE_BOX.search(region, 0, i)
    start = m.start() if m else i
    prefix = region[:start]
    if prefix and (prefix[-1].isdigit() or prefix[-1] in "\\$"):
        return None  # Math-Verify's look-behinds would read the boundary differently
    if "$$" in prefix or "\\[" in prefix or "\\]" in prefix or _INLINE_MATH.search(prefix[prefix.rfind("\n") + 1:]):
        return None
    end = region[start:]
    bare = _BOX_ONLY.fullmatch(end)  # "$\boxed{X}$.", "\[\n\boxed{X}\n\]": the box alone is the same answer
    if bare and (bare.group(1), bare.group(3)) in _PAIRS:
        return f"\\boxed{{{bare.group(2)}}}"
    return end


# ---- the SymPy comparison (runs inside a worker process) -------------------------------------------
_BARE_NUMBER = re.compile(r"-?[\d.,\s]*\d(?:\s*/\s*\d+)?")
# A command with a plain-word argument (\\text{cm}, \\begin{pmatrix}): not prose.
_COMMAND_ARG = re.compile(r"\\[A-Za-z]+\*?(?:\{[A-Za-z ]*\})?")
_MATH_MARKS = ("$", "\\(", "\\[", "\\boxed", "\\fbox", "####")


def gold_text(gold) -> str:
    r"""The gold answer as Math-Verify should parse it.

    A gold with its own math delimiters (``$...$``, ``\(...\)``, ``\[...\]``, a box, GSM8K's
    ``####``), a plain number (``1,22`` is 1.22 to Math-Verify), or prose goes as given, as TRL's
    ``accuracy_reward`` parses ``solution``. Any other bare answer (``\frac{3}{4}``, ``(1,2]``,
    ``x^2+1``) is wrapped as ``$...$``, as Tina does, since Math-Verify finds LaTeX only inside
    delimiters.

    >>> gold_text("(1,2]"), gold_text("1,22"), gold_text("$x$"), gold_text("forty two")
    ('$(1,2]$', '1,22', '$x$', 'forty two')
    """
    gold = str(gold).strip()
    if any(m in gold.replace("\\$", "") for m in _MATH_MARKS) or _BARE_NUMBER.fullmatch(gold) \
            or _WORD.search(_COMMAND_ARG.sub("", gold)):  # \$5 is a price, not a delimiter
        return gold
    return f"${gold}$"


class _JobTimeout(BaseException):
    """Raised by the worker's interval timer; a BaseException so library ``except Exception`` lets it by."""


_ARMED = False
_GOLDS: dict[str, list] = {}  # parsed gold answers, in a worker (SymPy objects are immutable)
_TARGETS: tuple = ()
_END_PARSED = False  # whether the last _verify_here decided on the final box alone


def _on_alarm(signum, frame):
    if _ARMED:
        raise _JobTimeout


def extraction_targets() -> tuple:
    """Math-Verify's extraction configs as its own test suite and TRL/open-r1 order them: LaTeX with
    ``\\boxed{}`` first (priority 0), then plain expressions. One tuple, so Math-Verify's compiled
    regular expressions stay cached."""
    global _TARGETS
    if not _TARGETS:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        _TARGETS = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
    return _TARGETS


#: How often the two-stage LaTeX parse finished in SLL mode, and how often it fell back to full LL.
PARSES = {"sll": 0, "ll": 0}


def two_stage_parsing(enable: bool = True) -> bool:
    """Make Math-Verify's LaTeX parser try ANTLR's SLL prediction first, and full LL only on a syntax error.

    Why: in a warm worker most of a check's time is ANTLR's full-context (LL) prediction, which the
    parser redoes for every string (only SLL predictions are cached). This is ANTLR's own
    "two-stage parsing": its ``PredictionMode.SLL`` documentation guarantees that an SLL parse
    either returns the same parse tree as LL or reports a syntax error. latex2sympy's error
    listener raises on the first syntax error, so a string SLL cannot parse is parsed again from
    scratch exactly as before (a new lexer and parser, LL mode); the conversion to SymPy runs once,
    on the tree LL would have built. The workers turn this on (a test compares Math-Verify's
    parses with and without it on every case of its own suite); ``enable=False`` restores the stock
    parser. Returns whether two-stage parsing is now on.
    """
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    except ImportError:
        return False
    current = _Latex2Sympy.create_parser
    stock = getattr(current, "_stock", current)
    if not enable:
        _Latex2Sympy.create_parser = stock
        return False
    if current is not stock:
        return True

    def create_parser(self, latex_str):
        parser = stock(self, latex_str)
        parser._interp.predictionMode = PredictionMode.SLL
        sll_math = parser.math  # the start rule, ends in EOF: a parse that returns consumed all of it

        def math():
            try:
                tree = sll_math()
            except Exception:  # a syntax error in SLL mode: invalid input, or input that needs full LL
                PARSES["ll"] += 1
                return stock(self, latex_str).math()
            PARSES["sll"] += 1
            return tree

        parser.math = math
        return parser

    try:  # an unexpected latex2sympy2_extended or antlr4 version: keep the stock parser
        from latex2sympy2_extended import latex2sympy

        probe = "\\frac{1}{2} + x^{2}"
        expected = str(latex2sympy(probe, normalization_config=None))
        create_parser._stock = stock
        _Latex2Sympy.create_parser = create_parser
        if str(latex2sympy(probe, normalization_config=None)) != expected:
            raise ValueError(expected)
    except Exception:
        _Latex2Sympy.create_parser = stock
        return False
    return True


def _parse_gold(gold: str) -> list:
    """Math-Verify's parse of a gold answer; [] when it finds nothing (a data fault, TRL's test).

    A wrapped bare answer that yields no mathematics is parsed as given instead (TRL's way)."""
    from math_verify import parse

    text = gold_text(gold)
    parsed = parse(text, extraction_targets(), parsing_timeout=None)
    if text != gold and not any(not isinstance(x, str) for x in parsed):
        parsed = parse(gold, extraction_targets(), parsing_timeout=None)
    return parsed


def _verify_here(gold: str, region: str, end: str | None = None) -> bool | None:
    """Math-Verify on one (gold, answer region) pair; None when the gold does not parse.

    Its own signal timeouts are off (None): the worker's interval timer bounds the whole pair.
    ``parse`` searches the region with Math-Verify's own extraction and priorities, ``verify``
    takes the gold first, default options (6 decimals, strict variables, no set-relation
    comparison), as in Math-Verify's test suite. With ``end`` (:func:`final_box` of the region)
    the end is parsed first and the whole region only if its box does not parse; whether it did
    is left in ``_END_PARSED``.
    """
    global _END_PARSED
    from math_verify import parse, verify

    gold_parsed = _GOLDS.get(gold)
    if gold_parsed is None:  # a GRPO group checks several answers against one gold: parse it once
        gold_parsed = _GOLDS[gold] = _parse_gold(gold)
        if len(_GOLDS) > 512:
            del _GOLDS[next(iter(_GOLDS))]
    _END_PARSED = False
    if not gold_parsed:
        return None
    pred_parsed = parse(end, extraction_targets(), parsing_timeout=None) if end else []
    _END_PARSED = any(not isinstance(x, str) for x in pred_parsed)
    if not _END_PARSED:
        pred_parsed = parse(region, extraction_targets(), parsing_timeout=None)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _limit_resources(memory_mb: int) -> None:
    try:
        import resource

        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker stopped by SIGXCPU leaves no core file
    except (ImportError, ValueError, OSError):
        pass  # not Linux: the parent's wall-clock deadline still holds


def _cpu_backstop(timeout_s: float) -> None:
    """The kernel kills this worker if one job burns its CPU budget, even if the parent is gone."""
    try:
        import resource

        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (int(spent + timeout_s + GRACE_S + 2), hard))
    except (ImportError, ValueError, OSError):
        pass


def _worker_main(memory_mb: int = WORKER_MEMORY_MB) -> None:
    """A verifier worker: JSON lines in on stdin ``{"i", "g", "p", "t"}`` (and ``"s"``, the region's
    final box), out on stdout ``{"i", "r"}``; ``r`` is true, false, ``"gold"`` (the gold does not
    parse) or null (out of time, or an error); with ``"s"``, ``[r, decided on the box alone]``."""
    global _ARMED
    import logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the trainer
    signal.signal(signal.SIGALRM, _on_alarm)
    logging.disable(logging.CRITICAL)
    out, sys.stdout = sys.stdout, sys.stderr  # nothing a library prints may corrupt the protocol
    _limit_resources(memory_mb)
    two_stage_parsing()
    _verify_here("1", "$1$ \\boxed{1}")  # import SymPy and build Math-Verify's parsers before saying ready
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:  # EOF (the parent closed the pipe or died) ends the worker
        job: dict = {}
        result = None
        try:
            job = json.loads(line)
            _cpu_backstop(job["t"])
            try:
                _ARMED = True
                signal.setitimer(signal.ITIMER_REAL, max(0.01, job["t"]), 0.2)  # re-fires if one is swallowed
                result = _verify_here(job["g"], job["p"], job.get("s"))
                if result is None:
                    result = "gold"
                if job.get("s"):
                    result = [result, _END_PARSED]
            finally:
                _ARMED = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except (_JobTimeout, Exception):  # out of time, MemoryError, RecursionError, SymPy errors: not judged
            result = None
        out.write(json.dumps({"i": job.get("i"), "r": result}) + "\n")
        out.flush()


class VerifierUnavailable(RuntimeError):
    """No verifier worker could start: an environment problem, never caused by a completion."""


class _GiveUp(Exception):
    """Workers keep failing to start in the middle of a run: the call's remaining jobs go unjudged."""


class _Worker:
    """One verifier subprocess: a fresh interpreter in its own session (a terminal's Ctrl-C does not reach it)."""

    def __init__(self, memory_mb: int):
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        script = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                  f"from budgetreason.rewards.verify import _worker_main; _worker_main({int(memory_mb)})")
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                     start_new_session=True)
        self.started = time.monotonic()
        self.ready = False
        self.buffer = b""
        self.gold: str | None = None  # the gold of its last job, which it has parsed and remembers

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, job: dict) -> None:
        self.proc.stdin.write((json.dumps(job) + "\n").encode())

    def read(self) -> list[dict]:
        """Whole lines available now (call when the pipe is readable); EOFError when the worker exited."""
        chunk = os.read(self.fileno(), 65_536)
        if not chunk:
            raise EOFError("verifier worker exited")
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]

    def kill(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class VerifierPool:
    """Verifier subprocesses, one job each at a time, every job under a wall-clock deadline.

    Workers start on first use and are reused across calls (GRPO scores every step). A worker
    that misses its deadline, or dies, is killed and replaced; its job is not judged (None).
    Thread-safe: concurrent calls take turns.
    """

    def __init__(self, processes: int | None = None, memory_mb: int = WORKER_MEMORY_MB):
        self.size = processes or default_processes()
        self.memory_mb = memory_mb
        self.workers: list[_Worker] = []
        self.killed = 0  # workers killed for missing a deadline or dying mid-job
        self.owner = os.getpid()
        self._lock = threading.Lock()
        self._ever_ready = False
        self._sent = 0  # message ids, so a reply can never be taken for another job's

    def map(self, jobs: list[tuple], timeout_s: float = DEFAULT_TIMEOUT_S,
            processes: int | None = None) -> list[bool | str | None]:
        """Worker results for (gold, answer region) pairs, in order: True, False, ``"gold"`` (the gold
        does not parse) or None (out of time, or the worker died). A job (gold, region, end) with
        the region's :func:`final_box` gets ``[result, decided on the box alone]`` back.

        Raises VerifierUnavailable when no worker can start at all.
        """
        results: list[bool | str | None] = [None] * len(jobs)
        if not jobs:
            return results
        with self._lock:
            want = max(1, min(len(jobs), processes or self.size))
            while len(self.workers) < want:
                self.workers.append(_Worker(self.memory_mb))
            try:
                self._run(jobs, results, want, timeout_s)
            except BaseException as e:
                for w in range(len(self.workers)):  # never leave a worker holding a job of an abandoned call
                    self._replace(w)
                if not isinstance(e, _GiveUp):
                    raise
        return results

    def _run(self, jobs: list[tuple[str, str]], results: list, want: int, timeout_s: float) -> None:
        """Feed jobs to the first ``want`` workers; fill ``results`` in place.

        Each worker holds up to :data:`PIPELINE` jobs, so it starts the next one without waiting
        for the parent to be scheduled (on a busy machine that wait costs more than a check). The
        deadline covers the job a worker is on: set when it was sent to an idle worker, or when the
        reply to the job before it arrived. A worker that misses it is killed; its current job is
        not judged, and the jobs queued behind it (never started) are given to another worker.
        """
        import select

        by_gold: dict[str, deque[int]] = {}  # pending jobs per gold: a worker keeps to one gold (parsed once)
        for j, job in enumerate(jobs):
            by_gold.setdefault(job[0], deque()).append(j)
        queued: dict[int, deque[tuple[int, int]]] = {w: deque() for w in range(want)}  # (job, message id)
        deadline: dict[int, float] = {}  # worker index -> deadline of its current (first queued) job
        failed_starts = 0

        def retry(js) -> None:  # jobs a worker never started go back to the front of their gold's queue
            for j in reversed(list(js)):
                by_gold.setdefault(jobs[j][0], deque()).appendleft(j)

        def lost(w: int) -> None:  # the worker is gone: its current job is not judged, the rest retry
            if queued[w]:
                queued[w].popleft()
                self.killed += 1
            retry(j for j, _ in queued[w])
            queued[w].clear()
            deadline.pop(w, None)
            self._replace(w)

        while by_gold or any(queued.values()):
            for w in range(want):  # top up every ready worker's queue
                worker = self.workers[w]
                while by_gold and worker.ready and len(queued[w]) < PIPELINE:
                    others = [jobs[j][0] for v in range(want) if v != w for j, _ in queued[v]]
                    j = self._next_job(by_gold, worker, others)
                    self._sent += 1
                    try:
                        job = {"i": self._sent, "g": jobs[j][0], "p": jobs[j][1], "t": timeout_s}
                        if len(jobs[j]) > 2 and jobs[j][2]:
                            job["s"] = jobs[j][2]
                        worker.send(job)
                    except OSError:  # died: this job never reached it
                        retry([j])
                        lost(w)
                        break
                    if not queued[w]:
                        deadline[w] = time.monotonic() + timeout_s + GRACE_S
                    queued[w].append((j, self._sent))
                    worker.gold = jobs[j][0]
            now = time.monotonic()
            waits = list(deadline.values())
            waits += [self.workers[w].started + STARTUP_TIMEOUT_S for w in range(want) if not self.workers[w].ready]
            if not waits:
                continue
            readable, _, _ = select.select([self.workers[w] for w in range(want)], [], [],
                                           max(0.0, min(waits) - now))
            for worker in readable:
                w = self.workers.index(worker)
                try:
                    replies = worker.read()
                except (EOFError, OSError, ValueError):
                    if not worker.ready:
                        failed_starts = self._failed_start(failed_starts, want)
                    lost(w)  # died mid-job (a segfault deep in SymPy): that job is not judged
                    continue
                for reply in replies:
                    if reply.get("ready"):
                        worker.ready = self._ever_ready = True
                    elif queued[w] and reply.get("i") == queued[w][0][1]:
                        results[queued[w].popleft()[0]] = reply.get("r")
                        if queued[w]:
                            deadline[w] = time.monotonic() + timeout_s + GRACE_S
                        else:
                            deadline.pop(w, None)
            now = time.monotonic()
            for w, due in list(deadline.items()):
                if now >= due:  # hung (C-level work no signal can stop): kill, replace, move on
                    lost(w)
            for w in range(want):
                if not self.workers[w].ready and now >= self.workers[w].started + STARTUP_TIMEOUT_S:
                    failed_starts = self._failed_start(failed_starts, want)
                    self._replace(w)

    @staticmethod
    def _next_job(by_gold: dict[str, deque[int]], worker: _Worker, golds_in_progress: list[str]) -> int:
        """The worker's current gold if it has jobs left, else a gold no other worker is on, else any."""
        gold = worker.gold if worker.gold in by_gold else \
            next((g for g in by_gold if g not in golds_in_progress), next(iter(by_gold)))
        queue = by_gold[gold]
        j = queue.popleft()
        if not queue:
            del by_gold[gold]
        return j

    def _failed_start(self, failed: int, want: int) -> int:
        """Count a worker that died or stalled before it was ready; stop retrying after a few."""
        failed += 1
        if failed >= want + 2:
            if not self._ever_ready:
                raise VerifierUnavailable(
                    f"Verifier workers ({sys.executable}) exit before they are ready; check that "
                    f"`{sys.executable} -c 'import budgetreason.rewards.verify, math_verify'` works.")
            raise _GiveUp  # they used to start: leave this call's remaining jobs unjudged, try afresh next call
        return failed

    def _replace(self, w: int) -> None:
        self.workers[w].kill()
        self.workers[w] = _Worker(self.memory_mb)

    def pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring and tests)."""
        return [w.proc.pid for w in self.workers]

    def close(self) -> None:
        """Stop every worker. Only the process that created the pool does this (not a fork of it)."""
        if os.getpid() != self.owner:
            return
        with self._lock:
            for worker in self.workers:
                worker.kill()
            self.workers = []


def default_processes() -> int:
    """Worker processes by default: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple, str] = OrderedDict()  # (gold, region) or (gold, final box, "end") -> verdict
_CACHE_LOCK = threading.Lock()


def pool() -> VerifierPool:
    """The process-wide verifier pool, created on first use and closed at interpreter exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner != os.getpid():
            _POOL = VerifierPool()
            atexit.register(_POOL.close)
        return _POOL


def shutdown() -> None:
    """Stop the verifier workers now (they restart on the next call); also runs at exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = None


def _after_fork_in_child() -> None:
    # A forked child must not talk to its parent's workers (shared pipes) or wait on its locks.
    global _POOL, _POOL_LOCK, _CACHE_LOCK
    _POOL, _POOL_LOCK, _CACHE_LOCK = None, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- public scoring ----------------------------------------------------------------------------------
CORRECT, WRONG, NO_ANSWER, UNFINISHED = "correct", "wrong", "no answer", "unfinished"
TIMEOUT, BAD_GOLD, ERROR = "timeout", "bad gold", "error"
#: The score of each verdict: None means not judged (TRL skips a None; the rewards decide).
SCORES = {CORRECT: 1.0, WRONG: 0.0, NO_ANSWER: 0.0, UNFINISHED: 0.0, TIMEOUT: None, BAD_GOLD: None, ERROR: None}
_FROM_WORKER = {True: CORRECT, False: WRONG, "gold": BAD_GOLD, None: TIMEOUT}


def judge_batch(golds: list, texts: list, timeout_s: float = DEFAULT_TIMEOUT_S, processes: int | None = None, *,
                prompt_opens_think: bool | list[bool] = False, whole: bool = False,
                boxed_only: bool = False) -> list[str]:
    r"""A verdict per completion: ``"correct"``, ``"wrong"``, ``"no answer"``, ``"unfinished"``,
    ``"timeout"``, ``"bad gold"`` (the gold holds no mathematics Math-Verify can parse) or ``"error"``.

    The answer region (:func:`answer_region`, with ``prompt_opens_think``, ``whole``,
    ``boxed_only``) goes to Math-Verify's ``parse`` with :func:`extraction_targets`, the gold
    (:func:`gold_text`) too, then ``verify(gold, answer)``, in the bounded workers. Decided
    in-process: unfinished completions, multiple-choice letters (a gold A-E, as GPQA), verdicts
    remembered from earlier calls, and the integer/fraction cases of :func:`fast_match`; one check
    per distinct (gold, region) pair, at most ``processes`` workers at a time, from any thread.

    >>> judge_batch(["3/4", "12", "5"], ["\\boxed{0.75}", "The answer is $13$.", "<think>\\boxed{5}"])
    ['correct', 'wrong', 'unfinished']
    """
    if len(golds) != len(texts):
        raise ValueError(f"{len(golds)} gold answers for {len(texts)} completions")
    opens = list(prompt_opens_think) if isinstance(prompt_opens_think, (list, tuple)) else \
        [bool(prompt_opens_think)] * len(texts)
    verdicts: list[str] = [ERROR] * len(texts)
    regions: list[str | None] = [None] * len(texts)
    todo: dict[tuple[str, str, bool], list[int]] = {}  # (gold, final box or region, is a final box) -> indices
    for i, (gold, text) in enumerate(zip(golds, texts)):
        try:
            gold = "" if gold is None else str(gold).strip()
            region = regions[i] = answer_region(text, prompt_opens_think=opens[i] if i < len(opens) else False,
                                                whole=whole, boxed_only=boxed_only)
            if not gold:
                verdicts[i] = BAD_GOLD
            elif region is None:
                verdicts[i] = UNFINISHED
            elif is_choice(gold_answer(gold)):
                choice = _choice_in(region)
                verdicts[i] = NO_ANSWER if choice is None else \
                    CORRECT if choice == gold_answer(gold).strip("() ").upper() else WRONG
            elif not region.strip():
                verdicts[i] = NO_ANSWER
            else:
                quick = fast_match(gold, region)
                end = final_box(region) if quick is None else None
                with _CACHE_LOCK:
                    known = _CACHE.get((gold, region)) or (_CACHE.get((gold, end, "end")) if end else None)
                if quick is not None:
                    verdicts[i] = CORRECT if quick else WRONG
                elif known is not None:
                    verdicts[i] = known
                else:  # one check per distinct (gold, final box), or (gold, region) without one
                    todo.setdefault((gold, end, True) if end else (gold, region, False), []).append(i)
        except Exception:  # a text we cannot even read: not judged
            verdicts[i] = ERROR
    while todo:  # a second round only for regions whose box did not parse after all
        keys = list(todo)
        jobs = []
        for gold, key, is_end in keys:
            region = regions[todo[(gold, key, is_end)][0]]
            jobs.append((gold, region, key) if is_end else (gold, region))
        again: dict = {}
        for (gold, key, is_end), job, result in zip(keys, jobs, pool().map(jobs, timeout_s, processes)):
            decided_on_end = False
            if is_end and isinstance(result, list):
                result, decided_on_end = result
            verdict = _FROM_WORKER.get(result, ERROR) if isinstance(result, (bool, str, type(None))) else ERROR
            indices = todo[(gold, key, is_end)]
            if is_end and not decided_on_end and verdict not in (BAD_GOLD, TIMEOUT, ERROR):
                rest = [i for i in indices if regions[i] != job[1]]
                for i in rest:
                    again.setdefault((gold, regions[i], False), []).append(i)
                indices = [i for i in indices if i not in rest]
            if verdict in (CORRECT, WRONG, BAD_GOLD):
                with _CACHE_LOCK:
                    _CACHE[(gold, key, "end") if decided_on_end else (gold, job[1])] = verdict
                    if len(_CACHE) > CACHE_SIZE:
                        _CACHE.popitem(last=False)
            for i in indices:
                verdicts[i] = verdict
        todo = again
    return verdicts


def score_batch(golds: list, texts: list, timeout_s: float = DEFAULT_TIMEOUT_S,
                processes: int | None = None, **mode) -> list[float | None]:
    r"""Score completions against gold answers: 1.0 (equal), 0.0 (wrong, no answer, unfinished),
    None (not judged: the gold does not parse, or the check ran out of its ``timeout_s`` seconds).

    Args:
        golds: reference answers, bare (``"3/4"``) or full solutions with a ``\boxed{}``.
        texts: completions (strings or chat messages).
        timeout_s: wall-clock bound per (gold, completion) check, seconds.
        processes: worker processes to use for this call.
        mode: ``prompt_opens_think``, ``whole``, ``boxed_only``, as :func:`judge_batch`.

    >>> score_batch(["3/4", "12", "C"], ["\\boxed{0.75}", "The answer is 13.", "Answer: (C)"])
    [1.0, 0.0, 1.0]
    """
    return [SCORES[v] for v in judge_batch(golds, texts, timeout_s, processes, **mode)]


def answers_match(gold: str, completion, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool | None:
    """Whether a completion answers ``gold`` as Math-Verify judges; None when it could not be judged.

    >>> answers_match("3/4", "... so the answer is \\\\boxed{0.75}"), answers_match("(1,2]", "$(1, 2]$")
    (True, True)
    >>> answers_match("C", "I pick \\\\boxed{(B)}")
    False
    """
    score = score_batch([gold], [completion], timeout_s)[0]
    return None if score is None else score == 1.0


def clear_cache() -> None:
    """Forget remembered verdicts (benchmarks time cold checks)."""
    with _CACHE_LOCK:
        _CACHE.clear()
