"""Rewards follow TRL's contract and the definitions they cite (open-r1, TRL, DAPO, the papers)."""

from __future__ import annotations

import doctest
import math
import pickle
import warnings

import pytest

from budgetreason.rewards import functions as rewards
from budgetreason.rewards import verify
from budgetreason.rewards.functions import (
    PRESETS,
    accuracy_reward,
    format_reward,
    length_reward,
    make_accuracy_reward,
    make_cosine_scaled_reward,
    make_format_reward,
    make_repetition_penalty_reward,
    make_soft_overlong_punishment,
    preset,
    reasoning_steps_reward,
    tag_count_reward,
    tina_format_reward,
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

    from budgetreason.plan.architectures import tiny_model_dir
    from budgetreason.train.training import _template_opens_think

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


def test_unparsable_golds_are_skipped_timeouts_score_zero_both_counted_and_logged(monkeypatch):
    """TRL 1.15's contract: None skips a sample (its own accuracy_reward returns None for a gold it
    cannot parse). A gold is a data fault, not the model's; a check out of time stays 0.0."""
    monkeypatch.setattr(rewards, "STATS", rewards._Stats())  # a fresh run: the warning has not been given yet
    logged = []
    with pytest.warns(UserWarning):  # 2 of 4 golds do not parse: far above 1%
        out = accuracy_reward(["\\boxed{3}", "\\boxed{4}", "\\boxed{5}", "\\boxed{9^{9^{9^{9}}}}"],
                              solution=["3", "\\frac{", "forty two", "12"],
                              log_metric=lambda name, value: logged.append((name, value)))
    assert out == [1.0, None, None, 0.0]
    assert rewards.stats() == {"judged": 1, "unjudged": 3}
    assert logged == [("rewards/unjudged", pytest.approx(3 / 4))]
    assert rewards.stats(reset=True) == {"judged": 1, "unjudged": 3}
    assert rewards.STATS.pop() == {"judged": 0, "unjudged": 0}


def test_unparsable_golds_warn_once_per_run_naming_rows(monkeypatch):
    fresh = rewards._Stats()
    monkeypatch.setattr(rewards, "STATS", fresh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1 bad gold in 200 (0.5%) is under the threshold: no warning
        assert accuracy_reward(["\\boxed{1}"] * 200, solution=["1"] * 199 + ["forty two"],
                               id=[f"r{i}" for i in range(200)])[-1] is None
    with pytest.warns(UserWarning, match=r"do not parse.*rows r199, r7, r8") as caught:
        accuracy_reward(["\\boxed{1}"] * 3, solution=["1", "bad gold text", "more bad text"], id=["r6", "r7", "r8"])
    assert len(caught) == 1 and "3 of 203" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per run
        accuracy_reward(["\\boxed{1}"], solution=["not a gold"], id=["r9"])
    assert fresh.bad_gold == 4


def test_a_missing_gold_column_is_a_loud_configuration_error():
    """Every reward of a paid run silently 0 would be worse than a failed first step."""
    for fn in (accuracy_reward, length_reward, make_cosine_scaled_reward()):
        with pytest.raises(TypeError, match="solution"):
            fn(["\\boxed{1}"], answer=["1"])


def test_docstring_examples_run():
    for module in (rewards, verify):
        failures, tried = doctest.testmod(module)
        assert failures == 0 and tried > 0


# ---- what counts as the final answer, per mode -----------------------------------------------------
ANSWER_MODES = [  # (completion, prompt ends with <think>, default, whole text (Tina), final box only (micro_budget))
    ("<think>\n3+4\n</think>\nThe answer is $7$.", False, 1.0, 1.0, 0.0),
    ("<think>\n3+4\n</think>\nSo \\boxed{7}.", False, 1.0, 1.0, 1.0),
    ("<think>\nmaybe \\boxed{7}\n</think>\nI could not finish.", False, 0.0, 1.0, 0.0),
    ("<think>\nmaybe \\boxed{7}, still thinking", False, 0.0, 1.0, 0.0),   # unfinished
    ("3+4, so \\boxed{7}", True, 0.0, 1.0, 0.0),                            # unfinished: <think> in the prompt
    ("3+4\n</think>\n\\boxed{7}", True, 1.0, 1.0, 1.0),
    ("\\boxed{7}", False, 1.0, 1.0, 1.0),                                    # no think tags: all answer
    ("Final Answer: The largest $n$ is 7.", False, 1.0, 1.0, 0.0),
    ("<think>\n\\boxed{7}\n</think>\nSo \\boxed{8}.", False, 0.0, 0.0, 0.0),
    ("<think>x</think> \\boxed{7} or rather \\boxed{8}", False, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("text,opens,default,whole,boxed", ANSWER_MODES)
def test_answer_region_per_mode(text, opens, default, whole, boxed):
    prompt = "<｜User｜>3+4?<｜Assistant｜><think>\n" if opens else "3+4?"
    assert accuracy_reward([text], solution=["7"], prompts=[prompt]) == [default]
    assert make_accuracy_reward(whole=True)([text], solution=["7"], prompts=[prompt]) == [whole]
    assert make_accuracy_reward(boxed_only=True, prompt_opens_think=opens)([text], solution=["7"]) == [boxed]


def test_presets_choose_their_papers_answer_modes():
    micro, tina, tina_cos = (preset(n).funcs for n in ("micro_budget", "tina", "tina_cosine"))
    assert micro[1].boxed_only and not micro[1].whole
    assert tina[0].whole and not tina[0].boxed_only and tina_cos[0].whole
    unfinished = "<think>\nso \\boxed{7}"
    assert micro[1]([unfinished], solution=["7"]) == [0.0]
    assert tina[0]([unfinished], solution=["7"]) == [1.0]  # open-r1 and Tina parse the whole text
    assert preset("micro_budget", prompt_opens_think=True).funcs[1].prompt_opens_think is True


# ---- Tina's format rule and cosine values (issue 12, points 5 and 6) --------------------------------
def test_tina_format_counts_the_closing_tag_once():
    texts = ["work\n</think>\n\\boxed{1}", "<think>\nwork\n</think>\nanswer", "<think>w</think>\\boxed{1}",
             "a\n</think>\nb\n</think>\n", "no tags", "work\n</think>"]
    assert tina_format_reward(texts) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert tina_format_reward([msgs(t) for t in texts]) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    for name in ("tina", "tina_cosine"):
        assert preset(name).funcs[1] is tina_format_reward
    # micro_budget keeps TRL's <think>...</think> rule: a completion without <think> fails it, Tina's passes
    assert preset("micro_budget").funcs[0](["work\n</think>\n\\boxed{1}"]) == [0.0]


def test_tina_cosine_uses_tinas_released_values():
    f = preset("tina_cosine").funcs[0]
    assert (f.min_value_wrong, f.max_value_wrong, f.min_value_correct, f.max_value_correct, f.max_len) == \
        (0.0, -0.5, 0.5, 1.0, 3584)
    assert f.unit == "chars"
    # a wrong answer of length ~0 gets min_value_wrong (Tina: 0.0, open-r1: -1.0); a correct one max_value_correct
    assert f(["\\boxed{3}", "\\boxed{4}"], solution=["4", "4"]) == [pytest.approx(0.0, abs=1e-3),
                                                                     pytest.approx(1.0, abs=1e-3)]
    assert make_cosine_scaled_reward(max_len=3584)(["\\boxed{3}"], solution=["4"]) == [pytest.approx(-1.0, abs=1e-3)]


# ---- TRL 1.15's token-based variants: the values of TRL's own tests (tests/test_rewards.py) ----------
def trl_msgs(text: str) -> list[dict]:
    return [{"content": text}]


THIRD, HALF = r"\boxed{\frac{1}{3}}", r"\boxed{\frac{1}{2}}"
COSINE_TRL = [  # (test in TRL's TestCosineScaledReward, completions, token lengths, keyword args, TRL's expected)
    ("correct_shorter_rewarded_more", [THIRD, THIRD], [25, 75], {}, [0.92678, 0.57322]),
    ("wrong_longer_penalized_less", [HALF, HALF], [25, 75], {}, [-0.92678, -0.57322]),
    ("midpoint_values", [THIRD, HALF], [50, 50], {}, [0.75, -0.75]),
    ("correct_boundary_values", [THIRD, THIRD], [0, 100], {}, [1.0, 0.5]),
    ("wrong_boundary_values", [HALF, HALF], [0, 100], {}, [-1.0, -0.5]),
    ("length_exceeding_max_len_is_clamped", [THIRD, HALF], [200, 200], {}, [0.5, -0.5]),
    ("custom_value_bounds", [THIRD], [50], {"min_value_correct": 0.0, "max_value_correct": 2.0}, [1.0]),
]


@pytest.mark.parametrize("name,texts,lengths,kw,expected", COSINE_TRL, ids=[c[0] for c in COSINE_TRL])
def test_cosine_tokens_reproduces_trls_tests(name, texts, lengths, kw, expected):
    from trl.rewards import get_cosine_scaled_reward

    ours = make_cosine_scaled_reward(max_len=100, unit="tokens", **kw)
    completions, solution, ids = [trl_msgs(t) for t in texts], [r"\frac{1}{3}"] * len(texts), [[1] * n for n in lengths]
    assert ours(completions, solution, ids) == [pytest.approx(e, abs=1e-4) for e in expected]
    assert ours(completions, solution, ids) == pytest.approx(get_cosine_scaled_reward(max_len=100, **kw)(
        completions, solution, ids))


def test_cosine_tokens_skips_an_unparsable_gold_as_trl():
    f = make_cosine_scaled_reward(max_len=100, unit="tokens")
    assert f([trl_msgs(r"\boxed{42}")], ["forty two"], [[1] * 50]) == [None]
    with pytest.raises(TypeError, match="completion_ids"):
        f([trl_msgs(r"\boxed{42}")], ["42"])
    with pytest.raises(ValueError):
        make_cosine_scaled_reward(unit="words")


REPETITION_TRL = [  # (test in TRL's TestRepetitionPenaltyReward, ngram_size, max_penalty, completion_ids, expected)
    ("no_repetition_yields_zero", 2, -1.0, [[1, 2, 3, 4]], [0.0]),
    ("full_repetition_approaches_max_penalty", 2, -1.0, [[5, 5, 5, 5, 5]], [-0.75]),
    ("partial_repetition", 2, -1.0, [[1, 2, 1, 2, 1, 2]], [-0.6]),
    ("completion_shorter_than_ngram_size_yields_zero", 3, -1.0, [[1, 2]], [0.0]),
    ("completion_exactly_ngram_size_yields_zero", 3, -1.0, [[1, 2, 3]], [0.0]),
    ("empty_completion_yields_zero", 3, -1.0, [[]], [0.0]),
    ("max_penalty_scales_reward", 2, -0.5, [[5, 5, 5, 5, 5]], [-0.375]),
    ("ngram_size_changes_reward_bigram", 2, -1.0, [[1, 2, 3, 1, 2, 3]], [-0.4]),
    ("ngram_size_changes_reward_trigram", 3, -1.0, [[1, 2, 3, 1, 2, 3]], [-0.25]),
    ("batch_of_completions", 2, -1.0, [[1, 2, 3, 4], [5, 5, 5, 5, 5], [9]], [0.0, -0.75, 0.0]),
]


@pytest.mark.parametrize("name,n,penalty,ids,expected", REPETITION_TRL, ids=[c[0] for c in REPETITION_TRL])
def test_repetition_tokens_reproduces_trls_tests(name, n, penalty, ids, expected):
    from trl.rewards import get_repetition_penalty_reward

    ours = make_repetition_penalty_reward(n, penalty, unit="tokens")
    texts = ["x"] * len(ids)  # the text is ignored: tokens are what count
    assert ours(texts, completion_ids=ids) == [pytest.approx(e) for e in expected]
    assert ours(texts, completion_ids=ids) == pytest.approx(get_repetition_penalty_reward(n, penalty)(ids))
    # extra keyword arguments, as trainers pass them, are ignored (TRL's test_extra_kwargs_are_ignored)
    assert ours(texts, completion_ids=ids, prompts=["x"] * len(ids)) == [pytest.approx(e) for e in expected]
    assert pickle.loads(pickle.dumps(ours))(texts, completion_ids=ids) == [pytest.approx(e) for e in expected]


def test_repetition_units_differ_where_words_and_tokens_differ():
    words, tokens = make_repetition_penalty_reward(2, -1.0), make_repetition_penalty_reward(2, -1.0, unit="tokens")
    assert words(["a b a b a b"], completion_ids=[[1, 2, 3, 4, 5, 6]]) == [pytest.approx(-0.6)]
    assert tokens(["a b a b a b"], completion_ids=[[1, 2, 3, 4, 5, 6]]) == [0.0]
    with pytest.raises(TypeError, match="completion_ids"):
        tokens(["a b"])


@pytest.mark.parametrize("length,expected", [(50, 0.0), (110, -1.0), (90, -0.5)])
def test_soft_overlong_reproduces_trls_tests(length, expected):
    """TRL's TestSoftOverlongPunishmentReward: max 100, soft cache 20, lengths 50, 110 and 90 tokens."""
    assert make_soft_overlong_punishment(100, 20)(["x"], completion_ids=[[1] * length]) == \
        [pytest.approx(expected, abs=1e-4)]


def test_accuracy_with_conversational_prompts_follows_the_stated_template():
    """Review #3: TRL 1.15 passes rewards the conversational prompts before the template is applied, so the
    plain reward cannot see a <think> the template adds (docs/rewards.md); stating it makes a box in
    unfinished reasoning score 0, and a --reward accuracy list in training is bound the same way."""
    from budgetreason.rewards.functions import Preset, accuracy_reward, format_reward, make_accuracy_reward
    from budgetreason.train.custom_rewards import bind_template

    unfinished = [{"role": "assistant", "content": "Let me try x=7, so \\boxed{7}? Wait, let me re-check"}]
    finished = [{"role": "assistant", "content": "x=7\n</think>\n\\boxed{7}"}]
    prompts = [[{"role": "user", "content": "Solve for x."}]] * 2
    batch = dict(solution=["7", "7"], prompts=prompts)
    assert accuracy_reward([unfinished, finished], **batch) == [1.0, 1.0]  # the template is not known here
    assert make_accuracy_reward(prompt_opens_think=True)([unfinished, finished], **batch) == [0.0, 1.0]
    # a string prompt the template has already rendered is read as it is
    assert accuracy_reward([unfinished, finished], solution=["7", "7"],
                           prompts=["<|im_start|>assistant\n<think>\n"] * 2) == [0.0, 1.0]

    def mine(completions, **kwargs):
        return [0.5] * len(completions)

    custom = Preset("custom", (accuracy_reward, format_reward, mine), (1.0, 1.0, 1.0), "")
    bound = bind_template(custom, prompt_opens_think=True)
    assert [f.__name__ for f in bound.funcs] == ["accuracy", "format", "mine"] and bound.funcs[2] is mine
    assert bound.funcs[0]([unfinished, finished], **batch) == [0.0, 1.0]
    assert bound.funcs[1]([finished, unfinished], prompts=prompts) == [1.0, 0.0]
    assert bind_template(custom, prompt_opens_think=False) is custom
