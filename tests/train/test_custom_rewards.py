"""Your own rewards: given on the CLI and in Python they train the tiny model and are logged; broken ones are
refused before the model loads."""

from __future__ import annotations

import json

import pytest
import yaml

from budgetreason.errors import BudgetError
from budgetreason.train.custom_rewards import check_reward, load_reward, sample_batch
from tests.conftest import run_cli

REWARDS_FILE = '''
def brevity(completions, **kwargs):
    """1 for a completion under 40 characters, falling linearly to 0 at 120."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [max(0.0, min(1.0, (120 - len(t)) / 80)) for t in texts]


def one_number(completions, **kwargs):
    return 1.0


def too_few(completions, **kwargs):
    return [0.0]


def words(completions, **kwargs):
    return ["good" for _ in completions]


def needs_column(completions, difficulty, **kwargs):
    return [0.0 for _ in completions]


NOT_A_FUNCTION = 3
'''


def metrics(path) -> list[dict]:
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x.strip()]


def has_digit(completions, solution, **kwargs):
    """A module-level reward for the Python API: 1 when the gold answer appears in the completion."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if str(s) in t else 0.0 for t, s in zip(texts, solution)]


def skips_all(completions, **kwargs):
    return [None for _ in completions]


def too_few(completions, **kwargs):
    return [1.0]


class Brevity:
    """A reward class of the user's own: an instance is recordable only when a module-level name holds it."""

    __name__ = "brevity_obj"

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, completions, **kwargs):
        return [1.0 if len(c[0]["content"] if isinstance(c, list) else c) < self.limit else 0.0 for c in completions]


BREVITY_40 = Brevity(40)


@pytest.fixture
def rewards_dir(tmp_path):
    (tmp_path / "my_rewards.py").write_text(REWARDS_FILE)
    return tmp_path


def test_cli_custom_reward_trains_and_is_logged(rewards_dir):
    out = rewards_dir / "run"
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--output", str(out), "--no-progress",
                "--reward", "my_rewards:brevity", "--reward", "accuracy", "--reward-weight", "0.5",
                "--reward-weight", "1", cwd=rewards_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = metrics(out)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert 0 <= row["rewards/brevity"] <= 1 and 0 <= row["rewards/accuracy"] <= 1
        assert "rewards/format" not in row  # the list replaces the preset, as TRL's reward_funcs
        # TRL's total is the weighted sum: the weights given on the command line were applied
        assert row["reward"] == pytest.approx(0.5 * row["rewards/brevity"] + row["rewards/accuracy"], abs=1e-4)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["reward_funcs"] == ["my_rewards:brevity", "accuracy"] and cfg["reward_weights"] == [0.5, 1.0]


def test_python_custom_reward_trains_and_is_logged(tmp_path, monkeypatch):
    from budgetreason.train.training import train

    monkeypatch.chdir(tmp_path)
    result = train(model="tiny-arith", max_steps=2, output=str(tmp_path / "run"), progress=False,
                   rewards=[has_digit, "format"], reward_weights=[1.0, 0.25])
    assert result.steps == 2
    rows = metrics(tmp_path / "run")
    assert all(0 <= row["rewards/has_digit"] <= 1 and "rewards/format" in row for row in rows)
    assert all(row["reward"] == pytest.approx(row["rewards/has_digit"] + 0.25 * row["rewards/format"], abs=1e-4)
               for row in rows)
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["reward_funcs"] == ["tests.train.test_custom_rewards:has_digit", "format"]


@pytest.mark.parametrize("spec,needle", [
    ("no_such_module:fn", "module 'no_such_module' not found"),
    ("my_rewards:missing", "'my_rewards' has no attribute 'missing'"),
    ("my_rewards:NOT_A_FUNCTION", "is a int, not a function"),
    ("my_rewards:one_number", "returned float; it must return a list"),
    ("my_rewards:too_few", "returned 1 values for 4 completions"),
    ("my_rewards:words", "returned a str ('good')"),
    ("my_rewards:needs_column", "raised TypeError"),
    ("nowhere.py:fn", "no such file"),
    ("softmax", "not a budgetreason reward"),
])
def test_broken_cli_reward_is_one_line_before_the_model_loads(rewards_dir, spec, needle):
    out = rewards_dir / "run"
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--output", str(out), "--reward", spec,
                cwd=rewards_dir)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not out.exists()  # refused before the run folder (and the model) existed


def test_broken_python_reward_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    import budgetreason.models.backends.hf as hf
    from budgetreason.train.training import train

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the reward was checked")

    monkeypatch.setattr(hf, "load", no_model)
    with pytest.raises(BudgetError, match="returned 1 values for 4 completions"):
        train(model="tiny-arith", max_steps=1, output=str(tmp_path / "r"), rewards=[too_few])
    with pytest.raises(BudgetError, match=r"cannot be recorded in config.yaml.*\(a lambda\)"):
        train(model="tiny-arith", max_steps=1, output=str(tmp_path / "r"), rewards=[lambda completions, **kw: [1.0]])
    with pytest.raises(BudgetError, match="2 --reward-weight value"):
        train(model="tiny-arith", max_steps=1, output=str(tmp_path / "r"), rewards=[has_digit],
              reward_weights=[1.0, 2.0])
    with pytest.raises(BudgetError, match="share the name 'has_digit'"):
        train(model="tiny-arith", max_steps=1, output=str(tmp_path / "r"), rewards=[has_digit, has_digit])
    assert not (tmp_path / "r").exists()


def test_sample_batch_has_trl_keywords_and_one_completion_form():
    rows = [{"prompt": [{"role": "user", "content": "2+2"}], "solution": "4", "level": 1},
            {"prompt": [{"role": "user", "content": "3+3"}], "solution": "6", "level": 2}]
    batch = sample_batch(rows)
    assert len(batch["prompts"]) == len(batch["completions"]) == len(batch["completion_ids"]) == 4
    assert batch["solution"] == ["4", "4", "6", "6"] and batch["level"] == [1, 1, 2, 2]
    assert batch["completions"][0][0]["role"] == "assistant" and "\\boxed{4}" in batch["completions"][0][0]["content"]
    check_reward(has_digit, "has_digit", batch)
    check_reward(skips_all, "skips_all", batch)  # None (skip) is a valid value
    assert has_digit(**batch) == [1.0, 0.0, 1.0, 0.0]
    assert load_reward("accuracy")(**batch)[:2] == [1.0, 0.0]


def test_async_reward_is_checked_too():
    async def slow_but_fine(completions, **kwargs):
        return [0.5 for _ in completions]

    rows = [{"prompt": "1+1", "solution": "2"}]
    check_reward(slow_but_fine, "slow_but_fine", sample_batch(rows))


def test_reward_objects_are_recorded_as_specs_that_rebuild_them_or_refused():
    import functools

    from budgetreason.rewards.functions import accuracy_reward, make_cosine_scaled_reward, make_repetition_penalty_reward
    from budgetreason.train.custom_rewards import spec_of

    short, long = make_cosine_scaled_reward(max_len=100), make_cosine_scaled_reward(max_len=3584, min_value_wrong=0.0)
    assert spec_of(short) != spec_of(long)  # two parameterisations are two runs
    for fn in (long, make_repetition_penalty_reward(3, -0.5, unit="tokens")):
        rebuilt = load_reward(spec_of(fn))
        assert rebuilt is not fn and type(rebuilt) is type(fn) and vars(rebuilt) == vars(fn)
    texts = ["\\boxed{2}", "\\boxed{3}" + " wrong" * 30]
    assert load_reward(spec_of(long))(texts, solution=["2", "2"]) == long(texts, solution=["2", "2"])
    assert long(texts, solution=["2", "2"]) != short(texts, solution=["2", "2"])
    assert spec_of(accuracy_reward) == "budgetreason.rewards.functions:accuracy_reward"
    assert spec_of(has_digit) == "tests.train.test_custom_rewards:has_digit"
    assert spec_of(BREVITY_40) == "tests.train.test_custom_rewards:BREVITY_40"
    assert load_reward(spec_of(BREVITY_40)) is BREVITY_40

    def nested(completions, **kwargs):
        return [0.0 for _ in completions]

    for fn, why in [(lambda completions, **kw: [0.0], "a lambda"), (nested, "defined inside a function"),
                    (functools.partial(has_digit), "a functools.partial"), (Brevity(10), "an instance of Brevity")]:
        with pytest.raises(BudgetError, match="cannot be recorded in config.yaml") as e:
            spec_of(fn)
        assert why in str(e.value) and "module:function" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(BudgetError, match="not a budgetreason reward factory"):
        load_reward("make_nothing(1)")
    with pytest.raises(BudgetError, match="plain values"):
        load_reward("make_cosine_scaled_reward(max_len=__import__('os').getpid())")


def test_a_configured_reward_object_resumes_from_the_cli_and_exports_to_verl(tmp_path, monkeypatch):
    import importlib.util

    from budgetreason.rewards.functions import make_cosine_scaled_reward
    from budgetreason.share.verl_export import export
    from budgetreason.train.training import train

    monkeypatch.chdir(tmp_path)
    cosine = make_cosine_scaled_reward(max_len=64, min_value_wrong=0.0)
    out = tmp_path / "run"
    assert train(model="tiny-arith", max_steps=1, save_steps=1, output=str(out), progress=False,
                 rewards=[cosine, "format"]).steps == 1
    spec = yaml.safe_load((out / "config.yaml").read_text())["reward_funcs"][0]
    assert spec.startswith("make_cosine_scaled_reward(") and vars(load_reward(spec)) == vars(cosine)

    r = run_cli("train", "--resume", str(out), "--max-steps", "2", "--no-progress")  # a fresh interpreter
    assert r.returncode == 0, r.stderr[-3000:]
    rows = metrics(out)
    assert [row["step"] for row in rows] == [1, 2] and all("rewards/cosine" in row for row in rows)

    other = make_cosine_scaled_reward(max_len=128, min_value_wrong=0.0)
    with pytest.raises(BudgetError, match="holds a different run") as e:
        train(model="tiny-arith", max_steps=3, output=str(out), progress=False, rewards=[other, "format"])
    assert "reward_funcs" in str(e.value)

    export(str(out), str(tmp_path / "verl"))
    spec_ = importlib.util.spec_from_file_location("verl_reward_cosine", tmp_path / "verl" / "reward.py")
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    assert type(mod.FUNCS[0]) is type(cosine) and vars(mod.FUNCS[0]) == vars(cosine)
    text = "<think>\n1 + 1\n</think>\n\\boxed{2}"
    assert mod.FUNCS[0]([text], solution=["2"]) == cosine([text], solution=["2"])
