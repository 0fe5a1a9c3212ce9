"""Rewards follow TRL's contract and the definitions they cite (open-r1, TRL, DAPO, the papers)."""

from __future__ import annotations

import doctest
import math
import pickle

import pytest

from budgetreason import rewards, verify
from budgetreason.rewards import (
    PRESETS,
    STATS,
    accuracy_reward,
    format_reward,
    length_reward,
    make_cosine_scaled_reward,
    make_format_reward,
    make_repetition_penalty_reward,
    make_soft_overlong_punishment,
    preset,
    reasoning_steps_reward,
    tag_count_reward,
)


def msgs(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def every_reward():
    return [accuracy_reward, format_reward, tag_count_reward, reasoning_steps_reward, length_reward,
            make_cosine_scaled_reward(), make_repetition_penalty_reward(3, -1.0),
            make_soft_overlong_punishment(100, 20), make_format_reward(True)]


def test_trl_calling_convention():
    """TRL 1.15 calls f(prompts=, completions=, completion_ids=, **columns, trainer_state=, log_metric=, log_extra=)."""
    logged = []
    kwargs = dict(prompts=[[{"role": "user", "content": "2+2?"}]] * 2,
                  completions=[msgs("<think>\n2+2\n</think>\n\\boxed{4}"), msgs("\\boxed{5}")],
                  completion_ids=[[1, 2, 3], [4]], solution=["4", "4"], level=["1", "1"], trainer_state=object(),
                  log_metric=lambda name, value: logged.append((name, value)), log_extra=lambda *a: None)
    assert accuracy_reward(**kwargs) == [1.0, 0.0]
    assert format_reward(**kwargs) == [1.0, 0.0]
    for fn in every_reward():
        out = fn(**kwargs)
        assert len(out) == 2 and all(isinstance(x, float) for x in out), fn.__name__
    assert ("rewards/unjudged", 0.0) in logged


def test_names_are_the_metric_names():
    names = [f.__name__ for f in every_reward()]
    assert names == ["accuracy", "format", "tag_count", "reasoning_steps", "length", "cosine", "repetition_penalty",
                     "soft_overlong", "format"]


@pytest.mark.parametrize("fn", every_reward(), ids=lambda f: f.__name__)
def test_every_reward_pickles(fn):
    """TRL's async GRPO sends reward functions to a spawned process: closures would not survive."""
    again = pickle.loads(pickle.dumps(fn))
    assert again.__name__ == fn.__name__
    assert again(["<think>a</think>\\boxed{1}"], solution=["1"], completion_ids=[[1]]) == \
        fn(["<think>a</think>\\boxed{1}"], solution=["1"], completion_ids=[[1]])


FORMAT_CASES = [
    "<think>\nreason\n</think>\n\\boxed{1}", "<think>r</think>\\boxed{1}", "<think>r</think>", "\\boxed{1}",
    "reason</think>\\boxed{1}", "<think>a</think><think>b</think>\\boxed{1}", "<think>unclosed \\boxed{1}",
    "preamble <think>r</think>\\boxed{1}", "", " <think>r</think>", "<think>a</think>b</think>", "<think></think>",
    "<think>\nmulti\nline\n</think>\nanswer\nmore", "<THINK>r</THINK>", "<think>r</think><think>",
]


def test_format_reward_is_trls_think_format_reward():
    from trl.rewards import think_format_reward

    expected = think_format_reward([msgs(t) for t in FORMAT_CASES])
    assert format_reward(FORMAT_CASES) == expected
    assert format_reward([msgs(t) for t in FORMAT_CASES]) == expected
    assert expected[:4] == [1.0, 1.0, 1.0, 0.0]


def test_format_reward_when_the_prompt_opens_think():
    """DeepSeek-R1 distills end the prompt with <think>: the completion starts inside the block."""
    prompt = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"
    completion = "2+2=4\n</think>\n\\boxed{4}"
    assert format_reward([completion], prompts=[prompt]) == [1.0]
    assert format_reward([completion], prompts=["plain prompt"]) == [0.0]
    assert format_reward(["\\boxed{4}"], prompts=[prompt]) == [0.0]
    assert format_reward(["<think>again</think>4"], prompts=[prompt]) == [0.0]  # a second <think> breaks the rule
    assert format_reward([completion], prompts=[[{"role": "assistant", "content": "<think>"}]]) == [1.0]
    assert make_format_reward(prompt_opens_think=True)([completion], prompts=[[{"role": "user", "content": "2+2"}]]) \
        == [1.0]
    assert make_format_reward(prompt_opens_think=False)([completion], prompts=[prompt]) == [0.0]
    # chat-message prompts: the reward cannot see the rendering, so the preset is built for the template
    msgs_prompt = [[{"role": "user", "content": "What is 2+2?"}]]
    opened = preset("micro_budget", prompt_opens_think=True).funcs[0]
    assert opened.__name__ == "format"
    assert opened(["2+2=4\n</think>\n\\boxed{4}"], prompts=msgs_prompt) == [1.0]
    assert format_reward(["2+2=4\n</think>\n\\boxed{4}"], prompts=msgs_prompt) == [0.0]


def test_training_detects_templates_that_open_think():
    from transformers import AutoTokenizer

    from budgetreason.models import tiny_model_dir
    from budgetreason.training import _template_opens_think

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    rows = [{"prompt": [{"role": "user", "content": "hi"}]}]
    assert _template_opens_think(tok, rows) is False
    tok.chat_template = tok.chat_template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")
    assert _template_opens_think(tok, rows) is True


def test_tag_count_matches_open_r1():
    assert tag_count_reward(["<think>\nx\n</think>\n<answer>\n4\n</answer>"]) == [1.0]
    assert tag_count_reward(["<think>\nx\n</think>\n\\boxed{4}"]) == [0.5]
    assert tag_count_reward(["<think>\n<think>\nx\n</think>\n"]) == [0.25]  # twice counts as not once
    assert tag_count_reward(["nothing"]) == [0.0]


@pytest.mark.parametrize("text,steps", [
    ("Step 1: a\nStep 2: b\nStep 3: c", 3), ("First, a. Then b.", 1), ("1. a\n2. b", 1),  # ^\d+\. only at the start
    ("a\n- b\n- c\n* d", 3), ("First, Second, Next, Finally,", 4), ("just 4", 0),
])
def test_reasoning_steps_matches_open_r1(text, steps):
    assert reasoning_steps_reward([text]) == [pytest.approx(min(1.0, steps / 3))]


def test_length_reward_is_relative_within_the_batch():
    texts = ["\\boxed{1}", "xxxxxxxxxx \\boxed{1}", "xxxxxxxxxxxxxxxxxxxxxx \\boxed{2}", "xxx \\boxed{2}"]
    lo, hi = len(texts[0]), len(texts[2])
    lam = [0.5 - (len(t) - lo) / (hi - lo) for t in texts]
    assert length_reward(texts, solution=["1"] * 4) == [pytest.approx(lam[0]), pytest.approx(lam[1]), -0.5,
                                                        0.0 if lam[3] > 0 else pytest.approx(lam[3])]
    assert length_reward(["\\boxed{1}", "\\boxed{2}"], solution=["1", "1"]) == [0.0, 0.0]


@pytest.mark.parametrize("chars", [0, 40, 99, 100, 150, 250])
def test_cosine_reward_is_open_r1s_formula(chars):
    f = make_cosine_scaled_reward(-1.0, -0.5, 0.5, 1.0, max_len=100)
    text = "x" * chars + "\\boxed{3}"
    c = math.cos(len(text) / 100 * math.pi)  # not clipped at max_len, as in open-r1
    assert f([text], solution=["3"]) == [pytest.approx(0.5 + 0.5 * (1.0 - 0.5) * (1 + c))]
    assert f([text], solution=["4"]) == [pytest.approx(-0.5 + 0.5 * (-1.0 + 0.5) * (1 + c))]


def test_repetition_penalty_is_open_r1s():
    f = make_repetition_penalty_reward(ngram_size=3, max_penalty=-1.0)
    assert f(["the cat sat on the mat"]) == [0.0]
    assert f(["a b c a b c a b c"]) == [pytest.approx(-(1 - 3 / 7))]
    assert f(["A b C a B c"]) == [pytest.approx(-(1 - 3 / 4))]  # lower-cased words, as open-r1
    assert f(["one two"]) == [0.0]
    with pytest.raises(ValueError):
        make_repetition_penalty_reward(3, 0.5)


def test_soft_overlong_is_dapos_eq_13_as_trl_computes_it():
    from trl.rewards import get_soft_overlong_punishment

    ours, trls = make_soft_overlong_punishment(100, 20), get_soft_overlong_punishment(100, 20)
    ids = [[0] * n for n in (0, 10, 80, 81, 90, 99, 100, 101, 500)]
    assert ours(["x"] * len(ids), completion_ids=ids) == pytest.approx(trls(ids))
    assert ours(["x"] * 3, completion_ids=[[0] * 80, [0] * 90, [0] * 101]) == [0.0, -0.5, -1.0]
    with pytest.raises(ValueError):
        make_soft_overlong_punishment(100, 0)


@pytest.mark.parametrize("name,names,weights", [
    ("micro_budget", ["format", "accuracy"], (0.2, 1.0)),
    ("tina", ["accuracy", "format"], (2.0, 1.0)),
    ("tina_cosine", ["cosine", "format"], (2.0, 1.0)),
])
def test_presets(name, names, weights):
    p = preset(name)
    assert [f.__name__ for f in p.funcs] == names and p.weights == weights and p.source
    assert len(p.funcs) == len(p.weights)


def test_every_registered_preset_resolves_and_unknown_is_one_line():
    from budgetreason.errors import BudgetError

    assert set(PRESETS) == {"micro_budget", "tina", "tina_cosine"}
    for name in PRESETS:
        assert all(callable(f) for f in preset(name).funcs)
    assert preset("tina_cosine").funcs[0].max_len == 3584
    with pytest.raises(BudgetError, match="Known: micro_budget"):
        preset("nope")


def test_micro_budget_total_reward():
    p = preset("micro_budget")
    comps = ["<think>x</think>\\boxed{4}", "\\boxed{4}", "<think>x</think>\\boxed{5}", "nothing"]
    per_fn = [f(comps, solution=["4"] * 4) for f in p.funcs]
    totals = [sum(w * r[i] for w, r in zip(p.weights, per_fn)) for i in range(4)]
    assert totals == [pytest.approx(1.2), 1.0, pytest.approx(0.2), 0.0]


def test_unjudged_completions_score_zero_are_counted_and_logged():
    STATS.pop()
    logged = []
    out = accuracy_reward(["\\boxed{3}", "\\boxed{4}", "\\boxed{5}"], solution=["3", "\\frac{", "\\frac{"],
                          log_metric=lambda name, value: logged.append((name, value)))
    assert out == [1.0, 0.0, 0.0]
    assert rewards.stats() == {"judged": 1, "unjudged": 2}
    assert logged == [("rewards/unjudged", pytest.approx(2 / 3))]
    assert rewards.stats(reset=True) == {"judged": 1, "unjudged": 2}
    assert STATS.pop() == {"judged": 0, "unjudged": 0}


def test_a_missing_gold_column_is_a_loud_configuration_error():
    """Every reward of a paid run silently 0 would be worse than a failed first step."""
    for fn in (accuracy_reward, length_reward, make_cosine_scaled_reward()):
        with pytest.raises(TypeError, match="solution"):
            fn(["\\boxed{1}"], answer=["1"])


def test_docstring_examples_run():
    for module in (rewards, verify):
        failures, tried = doctest.testmod(module)
        assert failures == 0 and tried > 0
