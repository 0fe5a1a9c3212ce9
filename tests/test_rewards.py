"""Rewards follow TRL's contract and the definitions they cite (open-r1, TRL, DAPO, the papers)."""

from __future__ import annotations

import doctest
import math

import pytest

from budgetreason import rewards
from budgetreason.rewards import (PRESETS, STATS, accuracy_reward, format_reward, length_reward,
                                  make_cosine_scaled_reward, make_repetition_penalty_reward,
                                  make_soft_overlong_punishment, preset, reasoning_steps_reward, tag_count_reward)


def msgs(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_trl_calling_convention_with_message_lists():
    """TRL 1.15 calls f(prompts=, completions=, completion_ids=, **columns, trainer_state=)."""
    comps = [msgs("<think>\n2+2\n</think>\n\\boxed{4}"), msgs("\\boxed{5}")]
    kwargs = dict(prompts=[[{"role": "user", "content": "2+2?"}]] * 2, completions=comps,
                  completion_ids=[[1, 2, 3], [4]], solution=["4", "4"], level=["1", "1"], trainer_state=object())
    assert accuracy_reward(**kwargs) == [1.0, 0.0]
    assert format_reward(**kwargs) == [1.0, 0.0]
    for fn in (tag_count_reward, reasoning_steps_reward, length_reward, make_cosine_scaled_reward(),
               make_repetition_penalty_reward(3, -1.0), make_soft_overlong_punishment(100, 20)):
        out = fn(**kwargs)
        assert len(out) == 2 and all(isinstance(x, float) for x in out)


def test_names_are_stable_metric_names():
    assert [f.__name__ for f in preset("micro_budget").funcs] == ["format", "accuracy"]
    assert make_cosine_scaled_reward().__name__ == "cosine"
    assert make_soft_overlong_punishment(10, 2).__name__ == "soft_overlong"
    assert make_repetition_penalty_reward(3, -1).__name__ == "repetition_penalty"


@pytest.mark.parametrize("text,expected", [
    ("<think>\nreason\n</think>\n\\boxed{1}", 1.0), ("<think>r</think>\\boxed{1}", 1.0), ("<think>r</think>", 1.0),
    ("\\boxed{1}", 0.0), ("reason</think>\\boxed{1}", 0.0), ("<think>a</think><think>b</think>\\boxed{1}", 0.0),
    ("<think>unclosed \\boxed{1}", 0.0), ("preamble <think>r</think>\\boxed{1}", 0.0), ("", 0.0),
])
def test_format_reward_is_trls_think_rule(text, expected):
    assert format_reward([text]) == [expected]


def test_format_reward_when_the_prompt_opens_think():
    """DeepSeek-R1 distills end the prompt with <think>: the completion starts inside the block."""
    prompt = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"
    assert format_reward(["2+2=4\n</think>\n\\boxed{4}"], prompts=[prompt]) == [1.0]
    assert format_reward(["2+2=4\n</think>\n\\boxed{4}"], prompts=["plain prompt"]) == [0.0]
    assert format_reward(["\\boxed{4}"], prompts=[prompt]) == [0.0]
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
    assert tag_count_reward(["nothing"]) == [0.0]


def test_reasoning_steps_matches_open_r1():
    assert reasoning_steps_reward(["Step 1: a\nStep 2: b\nStep 3: c"]) == [1.0]
    assert reasoning_steps_reward(["First, a. Then b."]) == [pytest.approx(1 / 3)]


def test_length_reward_is_relative_within_the_batch():
    out = length_reward(["\\boxed{1}", "xxxxxxxxxx \\boxed{1}", "xxxxxxxxxxxxxxxxxxxxxx \\boxed{2}"], solution=["1"] * 3)
    assert out[0] == 0.5 and out[2] == -0.5 and -0.5 < out[1] < 0.5
    assert length_reward(["\\boxed{1}", "\\boxed{2}"], solution=["1", "1"]) == [0.0, 0.0]


def test_cosine_reward_follows_the_formula():
    f = make_cosine_scaled_reward(-1.0, -0.5, 0.5, 1.0, max_len=100)
    text = "x" * 40 + "\\boxed{3}"
    c = math.cos(len(text) / 100 * math.pi)
    assert f([text], solution=["3"]) == [pytest.approx(0.5 + 0.25 * (1 + c))]
    assert f([text], solution=["4"]) == [pytest.approx(-0.5 + 0.5 * (-1.0 + 0.5) * (1 + c))]
    long = "x" * 500 + "\\boxed{3}"
    assert f([long], solution=["3"]) == [pytest.approx(0.5)]


def test_repetition_penalty():
    f = make_repetition_penalty_reward(ngram_size=3, max_penalty=-1.0)
    assert f(["the cat sat on the mat"]) == [0.0]
    assert f(["a b c a b c a b c"]) == [pytest.approx(-(1 - 3 / 7))]
    with pytest.raises(ValueError):
        make_repetition_penalty_reward(3, 0.5)


def test_soft_overlong_is_dapos_eq_13():
    f = make_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)
    ids = [[0] * n for n in (10, 80, 81, 90, 100, 101)]
    assert f(["x"] * 6, completion_ids=ids) == [0.0, 0.0, pytest.approx(-0.05), -0.5, -1.0, -1.0]


@pytest.mark.parametrize("name,names,weights", [
    ("micro_budget", ["format", "accuracy"], (0.2, 1.0)),
    ("tina", ["accuracy", "format"], (2.0, 1.0)),
    ("tina_cosine", ["cosine", "format"], (2.0, 1.0)),
])
def test_presets(name, names, weights):
    p = preset(name)
    assert [f.__name__ for f in p.funcs] == names and p.weights == weights and p.source


def test_every_registered_preset_resolves_and_unknown_is_one_line():
    for name in PRESETS:
        assert preset(name).funcs
    from budgetreason.errors import BudgetError

    with pytest.raises(BudgetError, match="Known: micro_budget"):
        preset("nope")


def test_micro_budget_total_reward():
    p = preset("micro_budget")
    comps = ["<think>x</think>\\boxed{4}", "\\boxed{4}", "<think>x</think>\\boxed{5}", "nothing"]
    per_fn = [f(comps, solution=["4"] * 4) for f in p.funcs]
    totals = [sum(w * r[i] for w, r in zip(p.weights, per_fn)) for i in range(4)]
    assert totals == [pytest.approx(1.2), 1.0, pytest.approx(0.2), 0.0]


def test_unjudged_completions_are_counted():
    STATS.pop()
    accuracy_reward(["\\boxed{3}", "\\boxed{4}"], solution=["3", "\\frac{"])
    counts = STATS.pop()
    assert counts["judged"] + counts["unjudged"] == 2 and counts["unjudged"] >= 1
    assert STATS.pop() == {"judged": 0, "unjudged": 0}


def test_docstring_examples_run():
    import budgetreason.verify as verify

    for module in (rewards, verify):
        failures, _ = doctest.testmod(module)
        assert failures == 0
