"""Verifiable rewards with TRL's contract: ``fn(completions, **kwargs) -> list[float]``.

``completions`` are strings or chat message lists; dataset columns arrive as keyword lists (the
gold answer as ``solution``); TRL 1.15 also passes ``prompts``, ``completion_ids``,
``trainer_state`` and ``log_metric``, which a reward reads when it needs them and ignores
otherwise. Every reward

- never raises because of what a completion holds: a completion that cannot be judged scores
  0.0 and is counted (:data:`STATS`, and ``rewards/unjudged`` through TRL's ``log_metric``);
- has a stable ``__name__``, which TRL turns into the metric ``rewards/<name>``;
- pickles (TRL's async GRPO sends reward functions to a spawned process), so parameterised
  rewards are small classes rather than closures;
- is pure apart from the :data:`STATS` counter and the verifier's process-wide worker pool.

Two failures are loud on purpose, because they would otherwise zero every reward of a paid run
without a word: a missing ``solution`` column (TypeError) and a verifier that cannot start at
all (:class:`budgetreason.verify.VerifierUnavailable`).

Presets (``--rewards NAME``, :func:`preset`) pair functions with TRL's ``reward_weights``:

- ``micro_budget``: 0.2·format + 1.0·accuracy (the micro-budget paper)
- ``tina``: 2·accuracy + 1·format (Tina, Table 6)
- ``tina_cosine``: 2·cosine + 1·format (Tina's Open-RS3 row, cosine ``max_len`` 3584)
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from dataclasses import dataclass

from budgetreason.verify import VerifierUnavailable, completion_text, score_batch

#: TRL's ``think_format_reward`` pattern (trl/rewards/format_rewards.py), used with DOTALL | MULTILINE.
THINK_FORMAT = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL | re.MULTILINE)
#: open-r1's ``reasoning_steps_reward`` pattern, used without re.MULTILINE as open-r1 does, so
#: ``^\d+\.`` counts a numbered line only at the very start of the text.
REASONING_STEPS = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)")


class _Stats:
    """How many completions the correctness rewards judged, and how many they could not.

    Not judged: the gold answer does not parse, or the check ran out of time. Counts are per
    process (a spawned reward process keeps its own); TRL's ``log_metric`` carries the per-batch
    fraction to the trainer's logs as ``rewards/unjudged`` either way.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.judged = 0
        self.unjudged = 0

    def add(self, judged: int, unjudged: int) -> None:
        with self._lock:
            self.judged += judged
            self.unjudged += unjudged

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"judged": self.judged, "unjudged": self.unjudged}

    def pop(self) -> dict[str, int]:
        """The counts so far, then reset (a trainer reads it once per logging step)."""
        with self._lock:
            out = {"judged": self.judged, "unjudged": self.unjudged}
            self.judged = self.unjudged = 0
            return out

    def _reset_lock(self) -> None:
        self._lock = threading.Lock()


#: The one piece of mutable module state: counts of judged and unjudged completions.
STATS = _Stats()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STATS._reset_lock)


def stats(reset: bool = False) -> dict[str, int]:
    """``{"judged": n, "unjudged": m}`` since start (or the last reset) in this process."""
    return STATS.pop() if reset else STATS.snapshot()


def _texts(completions) -> list[str]:
    return [completion_text(c) for c in completions]


def _guarded(fn, completions, *args) -> list[float]:
    """Call a reward body so that no completion makes it raise.

    An unexpected error scores every completion of the batch 0.0 and counts them as unjudged;
    a verifier that cannot start at all is an environment fault and propagates.
    """
    try:
        return fn(completions, *args)
    except (VerifierUnavailable, _MissingSolution):
        raise
    except Exception:  # a reward must not stop a training run over one odd batch
        n = len(completions) if hasattr(completions, "__len__") else 0
        STATS.add(0, n)
        return [0.0] * n


def _never_raises(name: str):
    """Decorator: the metric name ``name`` and :func:`_guarded`'s promise. The function keeps its
    ``__qualname__``, so pickle finds it by its module attribute."""
    def wrap(fn):
        @functools.wraps(fn)
        def reward(completions, *args, **kwargs):
            return _guarded(lambda c: fn(c, *args, **kwargs), completions)
        reward.__name__ = name
        return reward
    return wrap


def _judge(name: str, completions, solution, kwargs) -> list[float | None]:
    """Math-Verify scores for a batch (1.0, 0.0, None = not judged); counts and logs the unjudged."""
    if solution is None:
        raise _MissingSolution(f"The '{name}' reward needs the gold answers as a `solution` dataset column.")
    scores = score_batch(list(solution), list(completions))
    unjudged = sum(s is None for s in scores)
    STATS.add(len(scores) - unjudged, unjudged)
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and scores:
        log_metric("rewards/unjudged", unjudged / len(scores))  # TRL averages it per logging step
    return scores


class _MissingSolution(TypeError):
    """A configuration error (no gold column), not a completion's doing: it propagates."""


@_never_raises("accuracy")
def accuracy_reward(completions, solution=None, **kwargs) -> list[float]:
    r"""1.0 when the completion's final answer equals the gold answer, else 0.0.

    The final answer is the last ``\boxed{}`` after ``</think>`` when the completion has one,
    else the last box or clearly stated answer (:func:`budgetreason.verify.extract_answer`); the
    gold may be bare (``"3/4"``, ``"(1,2]"``) or a full solution with a box, or a letter A-E for
    multiple choice. Equality is Math-Verify's, run in bounded, sandboxed workers. A completion
    that cannot be judged scores 0.0 and is counted. The binary reward of the micro-budget paper
    and Tina (open-r1's ``accuracy_reward``).

    >>> accuracy_reward(["<think>3+4</think> \\boxed{7}", "\\boxed{8}"], solution=["7", "7"])
    [1.0, 0.0]
    """
    return [1.0 if s == 1.0 else 0.0 for s in _judge("accuracy", completions, solution, kwargs)]


def _opens_think(prompt) -> bool:
    return completion_text(prompt).rstrip().endswith("<think>")


def _format_scores(completions, prompts, prompt_opens_think: bool | None) -> list[float]:
    texts = _texts(completions)
    if prompt_opens_think is None:
        opens = [_opens_think(p) for p in prompts] if prompts is not None else [False] * len(texts)
    else:
        opens = [prompt_opens_think] * len(texts)
    return [1.0 if THINK_FORMAT.match(("<think>" if o else "") + t) else 0.0 for t, o in zip(texts, opens)]


@_never_raises("format")
def format_reward(completions, prompts=None, **kwargs) -> list[float]:
    r"""1.0 when the completion is one ``<think>`` block that opens it, then the answer; else 0.0.

    TRL's ``think_format_reward`` rule, ``^<think>(?!.*<think>)(.*?)</think>.*$``: the structure
    the micro-budget paper rewards. When a prompt ends with ``<think>`` (the DeepSeek-R1 distills'
    chat template puts it there) the completion is judged as if it began with it. TRL passes
    conversational prompts before the template is applied; for those use
    ``make_format_reward(prompt_opens_think=...)`` or ``preset(name, prompt_opens_think=...)``.

    >>> format_reward(["<think>\nwork\n</think>\n\\boxed{1}", "\\boxed{1}", "<think>a</think><think>b</think>"])
    [1.0, 0.0, 0.0]
    >>> format_reward(["work</think> \\boxed{1}"], prompts=["<|User|>1?<|Assistant|><think>\n"])
    [1.0]
    """
    return _format_scores(completions, prompts, None)


class ThinkFormatReward:
    r"""``format_reward`` with the prompt's ``<think>`` stated rather than read from ``prompts``.

    >>> make_format_reward(prompt_opens_think=True)(["2+2=4\n</think>\n\\boxed{4}"])
    [1.0]
    """

    __name__ = "format"

    def __init__(self, prompt_opens_think: bool | None):
        self.prompt_opens_think = prompt_opens_think

    def __call__(self, completions, prompts=None, **kwargs) -> list[float]:
        return _guarded(_format_scores, completions, prompts, self.prompt_opens_think)

    def __repr__(self) -> str:
        return f"make_format_reward(prompt_opens_think={self.prompt_opens_think})"


def make_format_reward(prompt_opens_think: bool | None = None):
    """The format reward, named ``format``: True judges every completion as if it began with
    ``<think>``, False never does, None reads each prompt (as :func:`format_reward`)."""
    return ThinkFormatReward(prompt_opens_think)


@_never_raises("tag_count")
def tag_count_reward(completions, **kwargs) -> list[float]:
    r"""open-r1's ``tag_count_reward`` (src/open_r1/rewards.py): 0.25 for each of ``"<think>\n"``,
    ``"\n</think>\n"``, ``"\n<answer>\n"`` and ``"\n</answer>"`` that occurs exactly once.

    >>> tag_count_reward(["<think>\nx\n</think>\n<answer>\n4\n</answer>", "<think>\nx\n</think>\n\\boxed{1}"])
    [1.0, 0.5]
    """
    tags = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")
    return [0.25 * sum(t.count(tag) == 1 for tag in tags) for t in _texts(completions)]


@_never_raises("reasoning_steps")
def reasoning_steps_reward(completions, **kwargs) -> list[float]:
    r"""open-r1's ``reasoning_steps_reward``: min(1, n/3) for n matches of
    ``(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)`` ("3 steps and more").

    >>> reasoning_steps_reward(["First, a. Next, b. Finally, c.", "Step 1: a", "just 4"])
    [1.0, 0.3333333333333333, 0.0]
    """
    return [min(1.0, len(REASONING_STEPS.findall(t)) / 3) for t in _texts(completions)]


@_never_raises("length")
def length_reward(completions, solution=None, **kwargs) -> list[float]:
    r"""open-r1's ``len_reward`` (from Kimi 1.5, arXiv:2501.12599), relative within the batch.

    With L the completion's length in characters and Lmin, Lmax the batch's extremes,
    λ = 0.5 − (L − Lmin)/(Lmax − Lmin); a correct completion gets λ, a wrong one min(0, λ); all
    get 0 when every length is equal. Unlike open-r1, a completion that cannot be judged (open-r1
    counts an unparseable gold as correct) gets 0.0.

    >>> length_reward(["\\boxed{1}", "so \\boxed{1}", "long long \\boxed{2}"], solution=["1", "1", "1"])
    [0.5, 0.2, -0.5]
    """
    texts = _texts(completions)
    scores = _judge("length", texts, solution, kwargs)
    lengths = [len(t) for t in texts]
    lo, hi = min(lengths, default=0), max(lengths, default=0)
    if hi == lo:
        return [0.0] * len(texts)
    out = []
    for n, score in zip(lengths, scores):
        lam = 0.5 - (n - lo) / (hi - lo)
        out.append(0.0 if score is None else float(lam if score == 1.0 else min(0.0, lam)))
    return out


class CosineScaledReward:
    r"""open-r1's ``get_cosine_scaled_reward``: correctness scaled by length on a cosine.

    With p = L / max_len (L in characters, as open-r1 counts) and c = cos(π·p): a correct answer
    gets min_c + ½(max_c − min_c)(1 + c), so shorter correct ones earn more; a wrong one gets
    max_w + ½(min_w − max_w)(1 + c), so longer wrong ones are penalised less. As in open-r1, p is
    not clipped at 1: past max_len the cosine turns back up. Not judged: 0.0.

    >>> f = make_cosine_scaled_reward(max_len=100)
    >>> [round(x, 3) for x in f(["\\boxed{2}", "\\boxed{3}"], solution=["2", "2"])]
    [0.99, -0.99]
    """

    __name__ = "cosine"

    def __init__(self, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                 min_value_correct: float = 0.5, max_value_correct: float = 1.0, max_len: int = 1000):
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.min_value_wrong, self.max_value_wrong = min_value_wrong, max_value_wrong
        self.min_value_correct, self.max_value_correct = min_value_correct, max_value_correct
        self.max_len = max_len

    def __call__(self, completions, solution=None, **kwargs) -> list[float]:
        return _guarded(self._score, completions, solution, kwargs)

    def _score(self, completions, solution, kwargs) -> list[float]:
        texts = _texts(completions)
        scores = _judge(self.__name__, texts, solution, kwargs)
        out = []
        for t, score in zip(texts, scores):
            if score is None:
                out.append(0.0)
                continue
            c = math.cos(len(t) / self.max_len * math.pi)
            if score == 1.0:
                lo, hi = self.min_value_correct, self.max_value_correct
            else:  # open-r1 swaps min and max for wrong answers
                lo, hi = self.max_value_wrong, self.min_value_wrong
            out.append(float(lo + 0.5 * (hi - lo) * (1.0 + c)))
        return out

    def __repr__(self) -> str:
        return (f"make_cosine_scaled_reward({self.min_value_wrong}, {self.max_value_wrong}, "
                f"{self.min_value_correct}, {self.max_value_correct}, max_len={self.max_len})")


def make_cosine_scaled_reward(min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                              min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                              max_len: int = 1000) -> CosineScaledReward:
    """open-r1's cosine-scaled reward (defaults as open-r1), named ``cosine``; see :class:`CosineScaledReward`."""
    return CosineScaledReward(min_value_wrong, max_value_wrong, min_value_correct, max_value_correct, max_len)


class RepetitionPenaltyReward:
    r"""open-r1's ``get_repetition_penalty_reward`` (Yeo et al. 2025, arXiv:2502.03373, App. C.2).

    Over the completion's lower-cased, whitespace-split word n-grams:
    (1 − distinct/total)·max_penalty; 0 for an empty text or fewer words than ``ngram_size``.

    >>> make_repetition_penalty_reward(2, -1.0)(["a b a b a b", "a b c d", ""])
    [-0.6, 0.0, 0.0]
    """

    __name__ = "repetition_penalty"

    def __init__(self, ngram_size: int, max_penalty: float):
        if max_penalty > 0:
            raise ValueError(f"max_penalty {max_penalty} should not be positive")
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be at least 1, got {ngram_size}")
        self.ngram_size, self.max_penalty = ngram_size, max_penalty

    def __call__(self, completions, **kwargs) -> list[float]:
        return _guarded(self._score, completions)

    def _score(self, completions) -> list[float]:
        out = []
        for t in _texts(completions):
            words = t.lower().split()
            if len(words) < self.ngram_size:
                out.append(0.0)
                continue
            grams = list(zip(*[words[i:] for i in range(self.ngram_size)]))
            out.append((1 - len(set(grams)) / len(grams)) * self.max_penalty + 0.0)  # + 0.0: no -0.0
        return out

    def __repr__(self) -> str:
        return f"make_repetition_penalty_reward({self.ngram_size}, {self.max_penalty})"


def make_repetition_penalty_reward(ngram_size: int, max_penalty: float) -> RepetitionPenaltyReward:
    """open-r1's n-gram repetition penalty, named ``repetition_penalty``; see :class:`RepetitionPenaltyReward`."""
    return RepetitionPenaltyReward(ngram_size, max_penalty)


class SoftOverlongPunishment:
    r"""DAPO's soft overlong punishment (Yu et al. 2025, arXiv:2503.14476, eq. 13), as open-r1 and
    TRL's ``get_soft_overlong_punishment`` implement it, on completion tokens |y|:

    0 when |y| ≤ L_max − L_cache; (L_max − L_cache − |y|)/L_cache up to L_max; −1 beyond.
    Lengths come from TRL's ``completion_ids``; without them, whitespace-split words stand in.

    >>> f = make_soft_overlong_punishment(100, 20)
    >>> f([""] * 3, completion_ids=[[1] * 50, [1] * 90, [1] * 120])
    [0.0, -0.5, -1.0]
    """

    __name__ = "soft_overlong"

    def __init__(self, max_completion_len: int, soft_punish_cache: int):
        if not 0 < soft_punish_cache <= max_completion_len:
            raise ValueError(f"need 0 < soft_punish_cache ({soft_punish_cache}) <= "
                             f"max_completion_len ({max_completion_len})")
        self.max_completion_len, self.soft_punish_cache = max_completion_len, soft_punish_cache

    def __call__(self, completions, completion_ids=None, **kwargs) -> list[float]:
        return _guarded(self._score, completions, completion_ids)

    def _score(self, completions, completion_ids) -> list[float]:
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else \
            [len(t.split()) for t in _texts(completions)]
        start = self.max_completion_len - self.soft_punish_cache
        return [0.0 if n <= start else (start - n) / self.soft_punish_cache if n <= self.max_completion_len
                else -1.0 for n in lengths]

    def __repr__(self) -> str:
        return f"make_soft_overlong_punishment({self.max_completion_len}, {self.soft_punish_cache})"


def make_soft_overlong_punishment(max_completion_len: int, soft_punish_cache: int) -> SoftOverlongPunishment:
    """DAPO's soft overlong punishment, named ``soft_overlong``; see :class:`SoftOverlongPunishment`."""
    return SoftOverlongPunishment(max_completion_len, soft_punish_cache)


@dataclass(frozen=True)
class Preset:
    """Reward functions with their weights, as TRL's ``reward_funcs`` and ``reward_weights`` take them."""

    name: str
    funcs: tuple
    weights: tuple[float, ...]
    source: str

    def describe(self) -> str:
        """``"0.2·format + 1·accuracy"``."""
        return " + ".join(f"{w:g}·{f.__name__}" for f, w in zip(self.funcs, self.weights))


_PRESETS = {  # name -> (reward names, weights, source)
    "micro_budget": (("format", "accuracy"), (0.2, 1.0),
                     "Khan et al., Plasticity vs. Rigidity (the micro-budget paper): R = 0.2·format + 1.0·accuracy"),
    "tina": (("accuracy", "format"), (2.0, 1.0),
             "Wang et al., Tina: Tiny Reasoning Models via LoRA, Table 6: accuracy 2, format 1"),
    "tina_cosine": (("cosine", "format"), (2.0, 1.0),
                    "Wang et al., Tina, Table 6 (Open-RS3 row): cosine 2, format 1, cosine max_len 3584"),
}
PRESETS = tuple(_PRESETS)


def preset(name: str, *, prompt_opens_think: bool | None = None) -> Preset:
    """The named preset (``--rewards NAME``). ``prompt_opens_think`` fixes how ``format`` treats a
    ``<think>`` put in the prompt by the chat template (training detects it from the template);
    None reads each prompt.

    >>> p = preset("micro_budget")
    >>> p.describe(), p.weights
    ('0.2·format + 1·accuracy', (0.2, 1.0))
    """
    if name not in _PRESETS:
        from budgetreason.errors import BudgetError

        raise BudgetError(f"Unknown reward preset '{name}'. Known: {', '.join(PRESETS)}.")
    names, weights, source = _PRESETS[name]
    funcs = {"accuracy": accuracy_reward, "cosine": make_cosine_scaled_reward(max_len=3584),
             "format": format_reward if prompt_opens_think is None else make_format_reward(prompt_opens_think)}
    return Preset(name, tuple(funcs[n] for n in names), weights, source)
