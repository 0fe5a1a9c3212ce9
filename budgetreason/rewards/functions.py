"""Verifiable rewards with TRL's contract: ``fn(completions, **kwargs) -> list[float]``.

``completions`` are strings or chat message lists; dataset columns arrive as keyword lists (the
gold answer as ``solution``); TRL 1.15 also passes ``prompts``, ``completion_ids``,
``trainer_state`` and ``log_metric``, which a reward reads when it needs them and ignores
otherwise. Every reward

- never raises because of what a completion holds: a check that runs out of time scores 0.0, a
  gold answer Math-Verify cannot parse gives None (TRL 1.15 skips the sample, as its own
  ``accuracy_reward`` does); both are counted (:data:`STATS`, and ``rewards/unjudged`` through
  TRL's ``log_metric``), and more than 1% of unparsable golds warns once per run;
- has a stable ``__name__``, which TRL turns into the metric ``rewards/<name>``;
- pickles (TRL's async GRPO sends reward functions to a spawned process), so parameterised
  rewards are small classes rather than closures;
- is pure apart from the :data:`STATS` counter and the verifier's process-wide worker pool.

Two failures are loud on purpose, because they would otherwise zero every reward of a paid run
without a word: a missing ``solution`` column (TypeError) and a verifier that cannot start at
all (:class:`budgetreason.rewards.verify.VerifierUnavailable`).

Presets (``--rewards NAME``, :func:`preset`) pair functions with TRL's ``reward_weights``:

- ``micro_budget``: 0.2·format + 1.0·accuracy (the micro-budget paper; only the final boxed answer pays)
- ``tina``: 2·accuracy + 1·format (Tina, Table 6; the whole text judged, Tina's format rule)
- ``tina_cosine``: 2·cosine + 1·format (Tina's Open-RS3 row: Tina's cosine values, ``max_len`` 3584)
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass

from budgetreason.rewards.verify import BAD_GOLD, CORRECT, SCORES, VerifierUnavailable, completion_text, judge_batch

#: Above this fraction of unparsable gold answers a run warns once (a data fault, not the model's).
BAD_GOLD_WARN_FRACTION = 0.01
#: TRL's ``think_format_reward`` pattern (trl/rewards/format_rewards.py), used with DOTALL | MULTILINE.
THINK_FORMAT = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL | re.MULTILINE)
#: open-r1's ``reasoning_steps_reward`` pattern, used without re.MULTILINE as open-r1 does, so
#: ``^\d+\.`` counts a numbered line only at the very start of the text.
REASONING_STEPS = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)")


class _Stats:
    """How many completions the correctness rewards judged, and how many they could not.

    Not judged: the check ran out of time, or the gold answer does not parse (also counted in
    ``bad_gold``, with a few of those rows remembered for the warning). Counts are per process (a
    spawned reward process keeps its own); TRL's ``log_metric`` carries the per-batch fraction to
    the trainer's logs as ``rewards/unjudged`` either way.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.judged = self.unjudged = 0
        self.golds = self.bad_gold = 0  # never reset: the once-per-run warning counts the whole run
        self.bad_rows: list[str] = []
        self.warned = False

    def add(self, judged: int, unjudged: int) -> None:
        with self._lock:
            self.judged += judged
            self.unjudged += unjudged

    def add_golds(self, golds: int, bad_rows: list[str]) -> str | None:
        """Count golds seen and unparsable ones; the warning text the first time they pass 1%."""
        with self._lock:
            self.golds += golds
            self.bad_gold += len(bad_rows)
            for row in bad_rows:
                if row not in self.bad_rows and len(self.bad_rows) < 5:
                    self.bad_rows.append(row)
            if self.warned or self.bad_gold <= BAD_GOLD_WARN_FRACTION * self.golds:
                return None
            self.warned = True
            return (f"{self.bad_gold} of {self.golds} gold answers ({self.bad_gold / self.golds:.1%}) do not parse "
                    f"with Math-Verify, e.g. rows {', '.join(self.bad_rows)}; their samples are skipped (reward None). "
                    f"Check the dataset's `solution` column.")

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


def _row_names(kwargs, n: int, golds: list) -> list[str]:
    """How a warning names row i: the dataset's ``id`` column when it has one, else the gold text."""
    for column in ("id", "row_id", "idx", "index"):
        ids = kwargs.get(column)
        if isinstance(ids, (list, tuple)) and len(ids) == n:
            return [str(x) for x in ids]
    return [repr(str(g)[:40]) for g in golds]


def _judge(name: str, completions, solution, kwargs, mode: dict | None = None) -> list[str]:
    """Math-Verify verdicts for a batch (:func:`budgetreason.rewards.verify.judge_batch`); counts and logs
    the unjudged, and warns once per run when more than 1% of the golds do not parse.

    ``mode``: ``whole``, ``boxed_only``, and ``prompt_opens_think`` (None reads each prompt)."""
    if solution is None:
        raise _MissingSolution(f"The '{name}' reward needs the gold answers as a `solution` dataset column.")
    mode = dict(mode or {})
    completions, golds = list(completions), list(solution)
    if mode.get("prompt_opens_think") is None:
        prompts = kwargs.get("prompts")
        mode["prompt_opens_think"] = [_opens_think(p) for p in prompts] \
            if isinstance(prompts, (list, tuple)) and len(prompts) == len(completions) else False
    verdicts = judge_batch(golds, completions, **mode)
    unjudged = sum(SCORES[v] is None for v in verdicts)
    STATS.add(len(verdicts) - unjudged, unjudged)
    names = _row_names(kwargs, len(verdicts), golds)
    message = STATS.add_golds(len(verdicts), [names[i] for i, v in enumerate(verdicts) if v == BAD_GOLD])
    if message:
        warnings.warn(message, stacklevel=2)
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and verdicts:
        log_metric("rewards/unjudged", unjudged / len(verdicts))  # TRL averages it per logging step
    return verdicts


def _correct(verdict: str) -> float | None:
    """1.0, 0.0, or None for a gold that does not parse (TRL skips the sample); a timeout is 0.0."""
    return None if verdict == BAD_GOLD else 1.0 if verdict == CORRECT else 0.0


class _MissingSolution(TypeError):
    """A configuration error (no gold column), not a completion's doing: it propagates."""


def _modes(whole: bool, boxed_only: bool, prompt_opens_think: bool | None) -> dict:
    return {"whole": whole, "boxed_only": boxed_only, "prompt_opens_think": prompt_opens_think}


@_never_raises("accuracy")
def accuracy_reward(completions, solution=None, prompts=None, **kwargs) -> list[float | None]:
    r"""1.0 when Math-Verify finds the gold answer in the completion's answer region, else 0.0.

    The answer region is what follows the last ``</think>``; a completion still inside its
    reasoning (``<think>`` opened in it, or at the end of a string prompt, and never closed) gets
    0.0; a completion without think tags is all answer. Math-Verify's own ``parse`` searches the
    region (LaTeX with ``\boxed{}`` first, then expressions; "final answer is", ``$...$``, several
    boxes, units, percent, matrices...) and ``verify`` compares it with the gold, in bounded,
    sandboxed workers (:mod:`budgetreason.rewards.verify`). A gold Math-Verify cannot parse gives None
    (TRL skips the sample); a check out of time gives 0.0; both are counted. For the other modes
    (the whole text, only the final box) see :func:`make_accuracy_reward`.

    >>> accuracy_reward(["<think>3+4</think> $7$", "\\boxed{8}", "<think>\\boxed{7}"], solution=["7", "7", "7"])
    [1.0, 0.0, 0.0]
    """
    return [_correct(v) for v in _judge("accuracy", completions, solution, dict(kwargs, prompts=prompts))]


class AccuracyReward:
    r"""``accuracy_reward`` with the answer region chosen, named ``accuracy``.

    ``whole=True`` judges the whole text as open-r1 and Tina do (a box inside unfinished
    reasoning counts); ``boxed_only=True`` pays only the last ``\boxed{}`` of the answer region,
    the micro-budget paper's "final boxed answer"; ``prompt_opens_think`` states whether the chat
    template opens ``<think>`` in the prompt (None reads each string prompt).

    >>> make_accuracy_reward(boxed_only=True)(["</think> The answer is $7$.", "</think> \\boxed{7}"], solution=["7"] * 2)
    [0.0, 1.0]
    >>> make_accuracy_reward(whole=True)(["<think>so \\boxed{7}"], solution=["7"])
    [1.0]
    """

    __name__ = "accuracy"

    def __init__(self, whole: bool = False, boxed_only: bool = False, prompt_opens_think: bool | None = None):
        self.whole, self.boxed_only, self.prompt_opens_think = whole, boxed_only, prompt_opens_think

    def __call__(self, completions, solution=None, **kwargs) -> list[float | None]:
        return _guarded(self._score, completions, solution, kwargs)

    def _score(self, completions, solution, kwargs) -> list[float | None]:
        mode = _modes(self.whole, self.boxed_only, self.prompt_opens_think)
        return [_correct(v) for v in _judge(self.__name__, completions, solution, kwargs, mode)]

    def __repr__(self) -> str:
        return (f"make_accuracy_reward(whole={self.whole}, boxed_only={self.boxed_only}, "
                f"prompt_opens_think={self.prompt_opens_think})")


def make_accuracy_reward(whole: bool = False, boxed_only: bool = False,
                         prompt_opens_think: bool | None = None) -> AccuracyReward:
    """The accuracy reward in a chosen answer mode; see :class:`AccuracyReward`."""
    return AccuracyReward(whole, boxed_only, prompt_opens_think)


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


@_never_raises("format")
def tina_format_reward(completions, **kwargs) -> list[float]:
    r"""Tina's and Open-RS's ``format_reward``: 1.0 when ``"\n</think>\n"`` occurs exactly once.

    Tina's rule (tina/post_train_hf/rewards.py, commit c6274cd): only the closing tag is counted,
    "because <think> tag is available in system prompt". Named ``format``, as in Tina's logs.

    >>> tina_format_reward(["work\n</think>\n\\boxed{1}", "<think>w</think>\\boxed{1}", "a\n</think>\nb\n</think>\n"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if t.count("\n</think>\n") == 1 else 0.0 for t in _texts(completions)]


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
def length_reward(completions, solution=None, **kwargs) -> list[float | None]:
    r"""open-r1's ``len_reward`` (from Kimi 1.5, arXiv:2501.12599), relative within the batch.

    With L the completion's length in characters and Lmin, Lmax the batch's extremes,
    λ = 0.5 − (L − Lmin)/(Lmax − Lmin); a correct completion gets λ, a wrong one min(0, λ); all
    get 0 when every length is equal. Correctness as :func:`accuracy_reward`. Unlike open-r1
    (which counts an unparseable gold as correct), such a sample gives None (skipped) and a check
    out of time 0.0.

    >>> length_reward(["\\boxed{1}", "so \\boxed{1}", "long long \\boxed{2}"], solution=["1", "1", "1"])
    [0.5, 0.2, -0.5]
    """
    texts = _texts(completions)
    verdicts = _judge("length", texts, solution, kwargs)
    lengths = [len(t) for t in texts]
    lo, hi = min(lengths, default=0), max(lengths, default=0)
    out: list[float | None] = []
    for n, verdict in zip(lengths, verdicts):
        lam = 0.0 if hi == lo else 0.5 - (n - lo) / (hi - lo)
        correct = _correct(verdict)
        out.append(None if correct is None else float(lam if correct == 1.0 else min(0.0, lam)))
    return out


class CosineScaledReward:
    r"""open-r1's ``get_cosine_scaled_reward`` (Yeo et al. 2025, arXiv:2502.03373, App. C.1):
    correctness scaled by length on a cosine.

    With p = L / max_len and c = cos(π·p): a correct answer gets min_c + ½(max_c − min_c)(1 + c),
    so shorter correct ones earn more; a wrong one gets max_w + ½(min_w − max_w)(1 + c), so longer
    wrong ones are penalised less. ``unit="chars"`` (default, open-r1 and Tina): L in characters
    and p not clipped, so past max_len the cosine turns back up, as in their code.
    ``unit="tokens"``: L = len(completion_ids) and p clipped at 1, as TRL 1.15's
    ``get_cosine_scaled_reward``. Correctness as :class:`AccuracyReward` (``whole``,
    ``boxed_only``, ``prompt_opens_think``); a gold that does not parse gives None (skipped), a
    check out of time 0.0.

    >>> f = make_cosine_scaled_reward(max_len=100)
    >>> [round(x, 3) for x in f(["\\boxed{2}", "\\boxed{3}"], solution=["2", "2"])]
    [0.99, -0.99]
    >>> make_cosine_scaled_reward(max_len=100, unit="tokens")(["\\boxed{2}"], ["2"], [[1] * 50])
    [0.75]
    """

    __name__ = "cosine"

    def __init__(self, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                 min_value_correct: float = 0.5, max_value_correct: float = 1.0, max_len: int = 1000,
                 unit: str = "chars", whole: bool = False, boxed_only: bool = False,
                 prompt_opens_think: bool | None = None):
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if unit not in ("chars", "tokens"):
            raise ValueError(f"unit must be 'chars' or 'tokens', got {unit!r}")
        self.min_value_wrong, self.max_value_wrong = min_value_wrong, max_value_wrong
        self.min_value_correct, self.max_value_correct = min_value_correct, max_value_correct
        self.max_len, self.unit = max_len, unit
        self.whole, self.boxed_only, self.prompt_opens_think = whole, boxed_only, prompt_opens_think

    def __call__(self, completions, solution=None, completion_ids=None, **kwargs) -> list[float | None]:
        return _guarded(self._score, completions, solution, completion_ids, kwargs)

    def _score(self, completions, solution, completion_ids, kwargs) -> list[float | None]:
        texts = _texts(completions)
        lengths = _lengths(self.unit, texts, completion_ids)
        mode = _modes(self.whole, self.boxed_only, self.prompt_opens_think)
        out: list[float | None] = []
        for n, verdict in zip(lengths, _judge(self.__name__, texts, solution, kwargs, mode)):
            correct = _correct(verdict)
            if correct is None:
                out.append(None)
                continue
            progress = n / self.max_len
            c = math.cos((min(progress, 1.0) if self.unit == "tokens" else progress) * math.pi)
            if correct == 1.0:
                lo, hi = self.min_value_correct, self.max_value_correct
            else:  # open-r1 swaps min and max for wrong answers
                lo, hi = self.max_value_wrong, self.min_value_wrong
            out.append(float(lo + 0.5 * (hi - lo) * (1.0 + c)))
        return out

    def __repr__(self) -> str:
        return (f"make_cosine_scaled_reward({self.min_value_wrong}, {self.max_value_wrong}, "
                f"{self.min_value_correct}, {self.max_value_correct}, max_len={self.max_len}, unit={self.unit!r}, "
                f"whole={self.whole}, boxed_only={self.boxed_only}, prompt_opens_think={self.prompt_opens_think})")


def _lengths(unit: str, texts: list[str], completion_ids) -> list[int]:
    """Completion lengths in ``unit``: characters, whitespace-split words, or tokens (``completion_ids``)."""
    if unit == "tokens":
        if completion_ids is None:
            raise _MissingSolution("unit='tokens' needs TRL's `completion_ids` (TRL 1.15 passes them to every reward).")
        return [len(ids) for ids in completion_ids]
    return [len(t) if unit == "chars" else len(t.split()) for t in texts]


def make_cosine_scaled_reward(min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                              min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                              max_len: int = 1000, unit: str = "chars", whole: bool = False,
                              boxed_only: bool = False, prompt_opens_think: bool | None = None) -> CosineScaledReward:
    """open-r1's cosine-scaled reward (defaults as open-r1), named ``cosine``; ``unit="tokens"``
    is TRL 1.15's variant. See :class:`CosineScaledReward`."""
    return CosineScaledReward(min_value_wrong, max_value_wrong, min_value_correct, max_value_correct, max_len,
                              unit, whole, boxed_only, prompt_opens_think)


class RepetitionPenaltyReward:
    r"""open-r1's ``get_repetition_penalty_reward`` (Yeo et al. 2025, arXiv:2502.03373, App. C.2).

    (1 − distinct/total n-grams)·max_penalty; 0 for fewer units than ``ngram_size``.
    ``unit="words"`` (default, open-r1 and Tina): the lower-cased, whitespace-split words of the
    text. ``unit="tokens"``: the token ids (``completion_ids``), as TRL 1.15's
    ``get_repetition_penalty_reward``.

    >>> make_repetition_penalty_reward(2, -1.0)(["a b a b a b", "a b c d", ""])
    [-0.6, 0.0, 0.0]
    >>> make_repetition_penalty_reward(2, -1.0, unit="tokens")(["", ""], completion_ids=[[1, 2, 3, 4], [5] * 5])
    [0.0, -0.75]
    """

    __name__ = "repetition_penalty"

    def __init__(self, ngram_size: int, max_penalty: float, unit: str = "words"):
        if max_penalty > 0:
            raise ValueError(f"max_penalty {max_penalty} should not be positive")
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be at least 1, got {ngram_size}")
        if unit not in ("words", "tokens"):
            raise ValueError(f"unit must be 'words' or 'tokens', got {unit!r}")
        self.ngram_size, self.max_penalty, self.unit = ngram_size, max_penalty, unit

    def __call__(self, completions, completion_ids=None, **kwargs) -> list[float]:
        return _guarded(self._score, completions, completion_ids)

    def _score(self, completions, completion_ids) -> list[float]:
        if self.unit == "tokens":
            if completion_ids is None:
                raise _MissingSolution("unit='tokens' needs TRL's `completion_ids` (TRL 1.15 passes them).")
            units = [list(ids) for ids in completion_ids]
        else:
            units = [t.lower().split() for t in _texts(completions)]
        out = []
        for seq in units:
            if len(seq) < self.ngram_size:
                out.append(0.0)
                continue
            grams = list(zip(*[seq[i:] for i in range(self.ngram_size)]))
            out.append((1 - len(set(grams)) / len(grams)) * self.max_penalty + 0.0)  # + 0.0: no -0.0
        return out

    def __repr__(self) -> str:
        return f"make_repetition_penalty_reward({self.ngram_size}, {self.max_penalty}, unit={self.unit!r})"


def make_repetition_penalty_reward(ngram_size: int, max_penalty: float, unit: str = "words") -> RepetitionPenaltyReward:
    """The n-gram repetition penalty, named ``repetition_penalty``: open-r1's over words, or TRL
    1.15's over tokens (``unit="tokens"``); see :class:`RepetitionPenaltyReward`."""
    return RepetitionPenaltyReward(ngram_size, max_penalty, unit)


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
    "micro_budget": (("format", "accuracy_boxed"), (0.2, 1.0),
                     "Khan et al., Plasticity vs. Rigidity (the micro-budget paper): R = 0.2·format + 1.0·accuracy, "
                     "accuracy on the final boxed answer"),
    "tina": (("accuracy_whole", "tina_format"), (2.0, 1.0),
             "Wang et al., Tina: Tiny Reasoning Models via LoRA, Table 6: accuracy 2, format 1 "
             "(tina/post_train_hf/rewards.py)"),
    "tina_cosine": (("tina_cosine", "tina_format"), (2.0, 1.0),
                    "Wang et al., Tina, Table 6 (Open-RS3 row): cosine 2, format 1; cosine values from "
                    "tina/config.py, max_len 3584 from scripts/train/post_train_model_grpo.sh"),
}
PRESETS = tuple(_PRESETS)
#: Tina's cosine values: tina/config.py (ModelPTConfig, github.com/shangshang-wang/Tina at commit
#: c6274cd7bd9393f7c20696ffec418d16b19514d9), unchanged by its open_rs3 recipe YAML; max_len 3584 is
#: the ``--cosine_max_len`` of its launch script. Its min_value_wrong is 0.0, open-r1's default -1.0.
TINA_COSINE = {"min_value_wrong": 0.0, "max_value_wrong": -0.5, "min_value_correct": 0.5,
               "max_value_correct": 1.0, "max_len": 3584}


def preset(name: str, *, prompt_opens_think: bool | None = None) -> Preset:
    r"""The named preset (``--rewards NAME``). ``prompt_opens_think`` states whether the chat
    template puts ``<think>`` in the prompt (training detects it from the template), for
    ``micro_budget``'s format rule and answer region; None reads each prompt. The Tina presets
    judge the whole text and count ``\n</think>\n`` as Tina does, so the prompt does not matter.

    >>> p = preset("micro_budget")
    >>> p.describe(), p.weights
    ('0.2·format + 1·accuracy', (0.2, 1.0))
    """
    if name not in _PRESETS:
        from budgetreason.errors import BudgetError

        raise BudgetError(f"Unknown reward preset '{name}'. Known: {', '.join(PRESETS)}.")
    names, weights, source = _PRESETS[name]
    funcs = {
        "format": format_reward if prompt_opens_think is None else make_format_reward(prompt_opens_think),
        "accuracy_boxed": make_accuracy_reward(boxed_only=True, prompt_opens_think=prompt_opens_think),
        "accuracy_whole": make_accuracy_reward(whole=True),
        "tina_cosine": make_cosine_scaled_reward(**TINA_COSINE, whole=True),
        "tina_format": tina_format_reward,
    }
    return Preset(name, tuple(funcs[n] for n in names), weights, source)
