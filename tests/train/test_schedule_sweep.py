"""The learning rate follows the optimizer step over a fixed horizon; the rank sweep varies only the rank."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from transformers import TrainerCallback

from budgetreason.train.budget import SCHEDULE_FILE, lr_multiplier


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


class SlowSteps(TrainerCallback):
    """Simulates a slower GPU: every step takes `seconds` longer (counted by the budget's step timer)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_begin(self, args, state, control, **kw):
        time.sleep(self.seconds)


class StopAt(TrainerCallback):
    """Ends the session after `step` with a checkpoint, as a preemption with a save would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


#: Small steps for the 2-core machine: 16 completions of at most 32 tokens.
SMALL = dict(model="tiny-arith", per_device_train_batch_size=16, gradient_accumulation_steps=1,
             max_completion_length=32, progress=False)


def test_same_max_steps_on_different_step_times_gives_the_same_learning_rates(tmp_path):
    from budgetreason.train.training import train

    lrs = []
    for name, extra in (("fast", []), ("slow", [SlowSteps(0.4)])):
        out = tmp_path / name
        train(**SMALL, max_steps=4, output=str(out), callbacks=extra)
        lrs.append([r["learning_rate"] for r in rows(out)])
        schedule = json.loads((out / SCHEDULE_FILE).read_text())
        assert schedule["steps"] == 4 and schedule["source"] == "max_steps" and schedule["final"]
    assert lrs[0] == lrs[1]
    # the tiny recipe: peak 2e-3, warm-up ceil(0.1 × 4) = 1 step, cosine to 0.1 × peak; step s logs the rate
    # of update s, which LambdaLR counts from 0
    assert lrs[0] == pytest.approx([2e-3 * lr_multiplier(s - 1, 4, 1, 0.1) for s in range(1, 5)])


def test_hours_run_killed_and_resumed_keeps_its_horizon(tmp_path):
    from budgetreason.train.training import train

    out = tmp_path / "run"
    settings = dict(SMALL, budget_hours=1.0, save_steps=2, output=str(out))
    train(**settings, callbacks=[StopAt(4)])
    first = json.loads((out / SCHEDULE_FILE).read_text())
    assert first["source"] == "measured" and first["final"] and first["set_at_step"] == 3
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("schedule") == 1
    train(**settings, callbacks=[SlowSteps(0.5), StopAt(5)])  # resumes from checkpoint-4, on a "slower GPU"
    assert json.loads((out / SCHEDULE_FILE).read_text()) == first
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "resume" and e["step"] == 4 for e in events)
    assert [e["kind"] for e in events].count("schedule") == 1  # not re-estimated on resume
    got = {r["step"]: r["learning_rate"] for r in rows(out)}
    assert sorted(got) == list(range(1, 6))
    for step in (5,):
        assert got[step] == pytest.approx(2e-3 * lr_multiplier(step - 1, first["steps"], first["warmup_steps"], 0.1))


def test_micro_budget_sweep_holds_alpha_lr_prompts_and_schedule_across_ranks():
    from budgetreason.sweeps import sweep_configs
    from budgetreason.train.training import _user_config, resolve

    pinned = sweep_configs(["Qwen/Qwen2.5-1.5B-Instruct"], [8, 64, 256], recipe="micro-budget")
    runs = {r: resolve(_user_config("micro-budget", pinned[("Qwen/Qwen2.5-1.5B-Instruct", r)])).config
            for r in (8, 64, 256)}
    assert [runs[r].lora_rank for r in (8, 64, 256)] == [8, 64, 256]
    same = {(c.lora_alpha, c.learning_rate, c.prompts_per_step, c.num_generations, c.lr_scheduler, c.warmup_ratio,
             c.min_lr_ratio, c.schedule_steps, c.budget_hours,
             c.per_device_train_batch_size * c.gradient_accumulation_steps) for c in runs.values()}
    assert same == {(32, 1e-6, 16, 8, "constant", 0.0, 0.0, None, 24, 128)}


def test_sweep_without_recipe_still_fixes_alpha_and_prompts_per_step():
    from budgetreason.sweeps import SWEEP_ALPHA, sweep_configs

    pinned = sweep_configs(["Qwen/Qwen2.5-1.5B-Instruct"], [8, 256], gpu="a40", hours_each=24)
    values = {(p["lora_alpha"], p["prompts_per_step"]) for p in pinned.values()}
    assert len(values) == 1 and next(iter(values))[0] == SWEEP_ALPHA


def test_planner_keeps_pinned_prompts_per_step_and_only_changes_the_split():
    from budgetreason.plan.planner import plan

    p = plan("l40s", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.0, lora_rank=32, lora_alpha=128,
             num_generations=6, prompts_per_step=8)
    assert p.shape.prompts_per_step == 8 and p.shape.generation_batch_size == 48
    small = plan("t4", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.0, lora_rank=32, lora_alpha=128,
                 num_generations=6, prompts_per_step=8)
    assert small.shape.prompts_per_step == 8
    assert small.shape.per_device_train_batch_size <= p.shape.per_device_train_batch_size
    assert p.to_dict()["lora_scale"] == 4.0
