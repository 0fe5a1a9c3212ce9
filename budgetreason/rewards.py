"""Verifiable rewards with TRL's contract: ``fn(completions, **kwargs) -> list[float]``.

``completions`` are strings or chat message lists; dataset columns arrive as keyword lists
(the gold answer as ``solution``); TRL also passes ``prompts``, ``completion_ids`` and
``trainer_state``, which rewards that need them read and the others ignore. Every function
is pure apart from one documented counter (:data:`STATS`), never raises, and has a stable
``__name__``, which becomes its metric name (``rewards/<name>``).

Presets combine them with TRL's ``reward_weights``:

- ``micro_budget``: 0.2·format + 1.0·accuracy (Khan et al., the micro-budget paper)
- ``tina``: 2·accuracy + 1·format (Wang et al., Tina, Table 6, Open-RS1/2, LIMR, DeepScaleR rows)
- ``tina_cosine``: 2·cosine + 1·format (Tina's Open-RS3 row, cosine max_len 3584)
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from budgetreason.verify import completion_text, score_batch

_THINK_FORMAT = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL)


class _Stats:
    """Counts completions that could not be judged (gold unparseable, check timed out).

    The trainer reads and resets it once per step to log ``rewards/unjudged``.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.unjudged = 0
        self.judged = 0

    def add(self, judged: int, unjudged: int) -> None:
        with self._lock:
            self.judged += judged
            self.unjudged += unjudged

    def pop(self) -> dict[str, int]:
        with self._lock:
            out = {"judged": self.judged, "unjudged": self.unjudged}
            self.judged = self.unjudged = 0
            return out


STATS = _Stats()


def _texts(completions) -> list[str]:
    return [completion_text(c) for c in completions]


def _safe(name: str, default: float = 0.0):
    """Decorator: a reward never raises; on an unexpected error every completion gets `default`."""
    def wrap(fn):
        def inner(completions, *args, **kwargs):
            try:
                return fn(completions, *args, **kwargs)
            except Exception:
                STATS.add(0, len(completions))
                return [default] * len(completions)
        inner.__name__ = name
        inner.__qualname__ = name
        inner.__doc__ = fn.__doc__
        inner.__wrapped__ = fn
        return inner
    return wrap


def _correct(completions, solution) -> list[bool]:
    results = score_batch(list(solution), _texts(completions))
    unjudged = sum(r is None for r in results)
    STATS.add(len(results) - unjudged, unjudged)
    return [bool(r) for r in results]


@_safe("accuracy")
def accuracy_reward(completions, solution, **kwargs) -> list[float]:
    r"""1.0 when the final answer equals the gold answer (Math-Verify), else 0.0.

    The final answer is the last ``\boxed{}`` after ``</think>`` when there is one, else the last
    boxed or clearly stated answer; the gold may be bare (``"3/4"``) or a full solution with a
    box. A completion that cannot be judged scores 0.0 and is counted in ``STATS``.

    >>> accuracy_reward(["<think>3+4</think> \\boxed{7}", "\\boxed{8}"], solution=["7", "7"])
    [1.0, 0.0]
    """
    return [1.0 if ok else 0.0 for ok in _correct(completions, solution)]


def _prompt_opens_think(prompt) -> bool:
    text = completion_text(prompt) if not isinstance(prompt, str) else prompt
    return text.rstrip().endswith("<think>")


@_safe("format")
def format_reward(completions, prompts=None, **kwargs) -> list[float]:
    r"""1.0 when the completion is one ``<think>`` block that opens it, then the answer; else 0.0.

    The same rule as TRL's ``think_format_reward`` (``^<think>(?!.*<think>)(.*?)</think>.*$``), the
    structure the micro-budget paper rewards. Where the chat template already ends the prompt
    with ``<think>`` (DeepSeek-R1 distills), the completion is judged as if it began with it.

    >>> format_reward(["<think>\nwork\n</think>\n\\boxed{1}", "\\boxed{1}", "<think>a</think><think>b</think>"])
    [1.0, 0.0, 0.0]
    """
    texts = _texts(completions)
    if prompts is not None:
        texts = ["<think>" + t if _prompt_opens_think(p) and not t.lstrip().startswith("<think>") else t
                 for t, p in zip(texts, prompts)]
    return [1.0 if _THINK_FORMAT.match(t.lstrip()) else 0.0 for t in texts]


@_safe("tag_count")
def tag_count_reward(completions, **kwargs) -> list[float]:
    r"""open-r1's ``tag_count_reward`` (src/open_r1/rewards.py): 0.25 for each of ``"<think>\n"``,
    ``"\n</think>\n"``, ``"\n<answer>\n"`` and ``"\n</answer>"`` occurring exactly once.

    >>> tag_count_reward(["<think>\nx\n</think>\n\\boxed{1}"])
    [0.5]
    """
    def count(t: str) -> float:
        return 0.25 * sum(t.count(tag) == 1 for tag in ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"))
    return [count(t) for t in _texts(completions)]


_STEPS = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)


@_safe("reasoning_steps")
def reasoning_steps_reward(completions, **kwargs) -> list[float]:
    r"""open-r1's ``reasoning_steps_reward``: min(1, n/3) for n markers of step-by-step reasoning
    ("Step 1:", numbered lines, bullets, "First,", "Next,", "Finally,").

    >>> reasoning_steps_reward(["First, a. Next, b. Finally, c.", "just 4"])
    [1.0, 0.0]
    """
    return [min(1.0, len(_STEPS.findall(t)) / 3) for t in _texts(completions)]


@_safe("length")
def length_reward(completions, solution, **kwargs) -> list[float]:
    r"""open-r1's ``len_reward`` (Kimi 1.5): relative to the batch's shortest and longest completion,
    λ = 0.5 − (len − min)/(max − min); correct answers get λ, wrong ones min(0, λ); all 0 when
    every completion has the same length. Length is counted in characters, as open-r1 does.

    >>> length_reward(["\\boxed{1}", "long long \\boxed{1}"], solution=["1", "1"])
    [0.5, -0.5]
    """
    texts = _texts(completions)
    correct = _correct(completions, solution)
    lengths = [len(t) for t in texts]
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(texts)
    out = []
    for n, ok in zip(lengths, correct):
        lam = 0.5 - (n - lo) / (hi - lo)
        out.append(float(lam if ok else min(0.0, lam)))
    return out


def make_cosine_scaled_reward(min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                              min_value_correct: float = 0.5, max_value_correct: float = 1.0, max_len: int = 1000):
    r"""open-r1's ``get_cosine_scaled_reward``: correctness scaled by length on a cosine.

    With p = len/max_len (characters) and c = cos(π·p): correct answers get
    min_c + ½(max_c − min_c)(1 + c), so shorter correct ones earn more; wrong answers get
    max_w + ½(min_w − max_w)(1 + c), so longer wrong ones are penalised less. Tina's Open-RS3
    recipe uses max_len 3584.

    >>> f = make_cosine_scaled_reward(max_len=100)
    >>> [round(x, 3) for x in f(["\\boxed{2}", "\\boxed{3}"], solution=["2", "2"])]
    [0.99, -0.99]
    """
    @_safe("cosine")
    def cosine_scaled_reward(completions, solution, **kwargs) -> list[float]:
        out = []
        for t, ok in zip(_texts(completions), _correct(completions, solution)):
            c = math.cos(min(1.0, len(t) / max_len) * math.pi)
            lo, hi = (min_value_correct, max_value_correct) if ok else (max_value_wrong, min_value_wrong)
            out.append(float(lo + 0.5 * (hi - lo) * (1.0 + c)))
        return out

    return cosine_scaled_reward


def make_repetition_penalty_reward(ngram_size: int, max_penalty: float):
    r"""open-r1's ``get_repetition_penalty_reward`` (Yeo et al. 2025, App. C.2): with the completion's
    word n-grams, reward = (1 − distinct/total)·max_penalty; 0 for empty or too-short text.

    >>> f = make_repetition_penalty_reward(2, -1.0)
    >>> f(["a b a b a b", "a b c d"])
    [-0.6, 0.0]
    """
    if max_penalty > 0:
        raise ValueError(f"max_penalty {max_penalty} should not be positive")

    @_safe("repetition_penalty")
    def repetition_penalty_reward(completions, **kwargs) -> list[float]:
        out = []
        for t in _texts(completions):
            words = t.lower().split()
            if len(words) < ngram_size:
                out.append(0.0)
                continue
            grams = list(zip(*[words[i:] for i in range(ngram_size)]))
            out.append(float((1 - len(set(grams)) / len(grams)) * max_penalty) + 0.0)  # no -0.0
        return out

    return repetition_penalty_reward


def make_soft_overlong_punishment(max_completion_len: int, soft_punish_cache: int):
    r"""DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), on completion tokens:
    0 up to L_max − L_cache, then (L_max − L_cache − |y|)/L_cache down to −1 at L_max, −1 beyond.

    >>> f = make_soft_overlong_punishment(100, 20)
    >>> f([""] * 3, completion_ids=[[1] * 50, [1] * 90, [1] * 120])
    [0.0, -0.5, -1.0]
    """
    @_safe("soft_overlong")
    def soft_overlong_punishment(completions, completion_ids=None, **kwargs) -> list[float]:
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else \
            [len(t.split()) for t in _texts(completions)]
        start = max_completion_len - soft_punish_cache
        out = []
        for n in lengths:
            if n <= start:
                out.append(0.0)
            elif n <= max_completion_len:
                out.append((start - n) / soft_punish_cache)
            else:
                out.append(-1.0)
        return out

    return soft_overlong_punishment


@dataclass(frozen=True)
class Preset:
    """Reward functions with their weights, as TRL's ``reward_funcs`` and ``reward_weights`` take them."""

    name: str
    funcs: tuple
    weights: tuple[float, ...]
    source: str

    def describe(self) -> str:
        return " + ".join(f"{w:g}·{f.__name__}" for f, w in zip(self.funcs, self.weights))


def _presets() -> dict[str, Preset]:
    return {
        "micro_budget": Preset("micro_budget", (format_reward, accuracy_reward), (0.2, 1.0),
                               "Khan et al., Plasticity vs. Rigidity (micro-budget): R = 0.2·format + accuracy"),
        "tina": Preset("tina", (accuracy_reward, format_reward), (2.0, 1.0),
                       "Wang et al., Tina, Table 6: accuracy 2, format 1"),
        "tina_cosine": Preset("tina_cosine", (make_cosine_scaled_reward(max_len=3584), format_reward), (2.0, 1.0),
                              "Wang et al., Tina, Table 6 (Open-RS3): cosine 2, format 1, max_len 3584"),
    }


PRESETS = tuple(_presets())


def preset(name: str) -> Preset:
    """A named preset (``--rewards NAME``)."""
    from budgetreason.errors import BudgetError

    presets = _presets()
    if name not in presets:
        raise BudgetError(f"Unknown reward preset '{name}'. Known: {', '.join(presets)}.")
    return presets[name]
