"""RunConfig validation, shipped recipes, the budget clock and the schedule that spans the budget."""

from __future__ import annotations

import pytest

from budgetreason.errors import BudgetError
from budgetreason.runs.folder import RunFolder
from budgetreason.train.budget import BudgetClock, lr_multiplier
from budgetreason.train.callbacks import HealthCallback, RunState
from budgetreason.train.config import RunConfig
from budgetreason.train.recipes import describe, load_recipe, recipe_names


def test_every_shipped_recipe_is_a_valid_config_and_says_what_it_expects():
    names = recipe_names()
    assert {"tiny-arith", "micro-budget", "tina-open-rs2", "tina-open-rs3"} <= set(names)
    for name in names:
        cfg = RunConfig.from_dict(load_recipe(name))
        assert cfg.model
        text = describe(name).lower()
        assert "expects:" in text and ("hour" in text or "minute" in text)


def test_recipes_fit_their_gpu():
    """Every GPU recipe plans as it is written: fits, nothing reduced that the recipe fixed."""
    from budgetreason.plan.planner import plan

    for name in recipe_names():
        data = load_recipe(name)
        if "gpu" not in data:
            continue
        p = plan(data["gpu"], data["model"], data.get("budget_hours", 24), lora_rank=data.get("lora_rank"),
                 lora_alpha=data.get("lora_alpha"), num_generations=data.get("num_generations"),
                 prompts_per_step=data.get("prompts_per_step"),
                 max_completion_length=data.get("max_completion_length"),
                 max_prompt_length=data.get("max_prompt_length"))
        assert p.fits, name


@pytest.mark.parametrize("field,value,needle", [
    ("lora_rank", 0, "--rank"), ("num_generations", 1, "--k"), ("budget_hours", 0, "--hours"),
    ("loss", "ppo", "--loss"), ("learning_rate", 2.0, "--lr"), ("save_minutes", 0, "--save-minutes"),
    ("backend", "tpu", "--backend"), ("report_to", "mlflow", "--report-to"), ("max_steps", 0, "--max-steps"),
])
def test_config_rejects_bad_values_in_one_line(field, value, needle):
    with pytest.raises(BudgetError, match=needle) as e:
        RunConfig(**{field: value})
    assert "\n" not in str(e.value)


def test_yaml_round_trip_and_flags_override(tmp_path):
    cfg = RunConfig(model="tiny-arith", lora_rank=8, budget_hours=2.0)
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    back = RunConfig.from_yaml(path)
    assert back == cfg
    assert back.merged(lora_rank=16, seed=None).lora_rank == 16 and back.merged(seed=None).seed == cfg.seed


def test_lr_schedule_is_transformers_cosine_with_min_lr_by_step():
    """Tina's schedule: 150 warm-up steps of a 1500-step cosine to 0.1, step for step as transformers builds it."""
    import torch
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_cosine_with_min_lr_schedule_with_warmup(opt, num_warmup_steps=150, num_training_steps=1500, min_lr_rate=0.1)
    ours = [lr_multiplier(s, 1500, 150, 0.1) for s in range(1500)]
    theirs = [hf.lr_lambdas[0](s) for s in range(1500)]
    assert ours == pytest.approx(theirs)
    assert lr_multiplier(3000, 1500, 150, 0.1) == pytest.approx(0.1)  # past the horizon: the floor
    assert [lr_multiplier(s, 300, 0, 0.0, "constant") for s in (0, 150, 299)] == [1.0, 1.0, 1.0]


def test_clock_counts_earlier_sessions_and_the_faster_limit_wins():
    clock = BudgetClock(budget_s=100.0, max_steps=10, spent_before_s=50.0)
    assert 0.5 <= clock.fraction(0) < 0.6  # half the time already spent before a preemption
    assert clock.fraction(8) == pytest.approx(0.8)  # steps further along than time
    assert clock.remaining_s() == pytest.approx(50.0, abs=0.5)
    steps_only = BudgetClock(max_steps=4)
    assert steps_only.fraction(2) == 0.5 and steps_only.remaining_s() is None


def _health(tmp_path) -> tuple[HealthCallback, RunState]:
    folder = RunFolder(tmp_path)
    state = RunState(folder=folder, clock=BudgetClock())
    return HealthCallback(state), state


class _S:
    def __init__(self, step):
        self.global_step = step


def test_no_learning_signal_warning(tmp_path):
    cb, state = _health(tmp_path)
    for step in range(1, 20):
        cb.on_log(None, _S(step), None, logs={"reward": 0.0, "frac_reward_zero_std": 1.0})
    assert not state.warnings
    cb.on_log(None, _S(20), None, logs={"reward": 0.0, "frac_reward_zero_std": 0.96})
    assert len(state.warnings) == 1 and "no learning signal" in state.warnings[0]
    cb.on_log(None, _S(21), None, logs={"reward": 0.0, "frac_reward_zero_std": 1.0})
    assert len(state.warnings) == 1  # once per kind
    assert "no_signal" in (tmp_path / "events.jsonl").read_text()


def test_truncation_warning_needs_five_steps_in_a_row(tmp_path):
    cb, state = _health(tmp_path)
    for step, ratio in enumerate([0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9], 1):
        cb.on_log(None, _S(step), None, logs={"reward": 0.1, "completions/clipped_ratio": ratio})
    assert not state.warnings
    cb.on_log(None, _S(8), None, logs={"reward": 0.1, "completions/clipped_ratio": 0.8})
    assert state.warnings and "max_completion_length" in state.warnings[0]
