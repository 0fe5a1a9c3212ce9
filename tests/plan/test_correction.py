"""plan --calibration: the memory fit applies across engines, time ratios only from the plan's own engine."""

from __future__ import annotations

import json

import pytest

from budgetreason.errors import BudgetError
from budgetreason.plan.correction import load_correction
from budgetreason.plan.planner import plan
from tests.conftest import run_cli

MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


def _step(run_id, step, predicted_gib, peak_gib, pred_gen, pred_train, gen, rest, engine):
    return json.dumps({
        "kind": "step", "run_id": run_id, "gpu": "a40", "engine": engine, "step": step,
        "predicted": {"total_gib": predicted_gib,
                      "step_breakdown": {"generate_s": pred_gen, "train_s": pred_train, "overhead_s": 0.0,
                                         "total_s": pred_gen + pred_train}},
        "seconds": {"generation": gen, "reward": 0.0, "training": rest, "total": gen + rest},
        "memory_gib": {"torch_reserved": None, "nvidia_smi": peak_gib, "rss": None, "peak": peak_gib}})


@pytest.fixture
def transformers_only(tmp_path):
    """What gpu_session.sh's calibrate-hf stage leaves: two configurations, transformers' generate only."""
    path = tmp_path / "calibration.jsonl"
    rows = [json.dumps({"kind": "session", "versions": {}})]
    for i, (pred, peak) in enumerate([(10, 13), (20, 25)]):  # peak = 1.2 x + 1
        rows += [_step(f"c{i}", s, pred, peak, 100, 50, 300, 75, "transformers") for s in (1, 2)]  # time x3, x1.5
    path.write_text("\n".join(rows) + "\n")
    return path


def test_another_engines_time_ratios_are_not_applied(transformers_only):
    c = load_correction(transformers_only, "a40", "vllm")
    assert (c.a, c.b_gib, c.points) == (pytest.approx(1.2), pytest.approx(1.0), 2)  # memory: every engine's
    assert (c.time_ratio, c.generate_ratio, c.train_ratio, c.engine) == (1.0, None, None, None)
    assert c.times(10.0, 20.0, 1.0) == (10.0, 20.0, 1.0)
    base = plan("a40", MODEL, 24, backend="unsloth", generation="vllm")
    corrected = plan("a40", MODEL, 24, backend="unsloth", generation="vllm", calibration=str(transformers_only))
    assert corrected.memory.terms["calibration"] != 0  # the memory fit is kept
    from budgetreason.plan import timing

    raw = timing.step_time(corrected.model, corrected.gpu, corrected.shape)
    assert (corrected.step.generate_s, corrected.step.train_s) == (raw.generate_s, raw.train_s)  # the model's own
    note = [w for w in corrected.warnings if "time not corrected" in w]
    assert len(note) == 1 and "transformers" in note[0] and "vllm" in note[0], corrected.warnings
    assert base.step.total_s == pytest.approx(timing.step_time(base.model, base.gpu, base.shape).total_s)


def test_the_same_engines_time_ratios_are_applied(transformers_only):
    c = load_correction(transformers_only, "a40", "transformers")
    assert (c.generate_ratio, c.train_ratio, c.engine) == (pytest.approx(3.0), pytest.approx(1.5), "transformers")
    corrected = plan("a40", MODEL, 24, backend="hf", calibration=str(transformers_only))
    assert any("generation × 3.00" in w and "measured with transformers" in w for w in corrected.warnings)
    assert not any("time not corrected" in w for w in corrected.warnings)


@pytest.mark.parametrize("text", ['{"kind": "session", "versions": {}}\n', '{"a": 1}\n', "hello\n", ""])
def test_a_jsonl_without_step_lines_is_not_a_calibration_file(tmp_path, text):
    path = tmp_path / "c.jsonl"
    path.write_text(text)
    with pytest.raises(BudgetError, match="not a calibration file|no measured step"):
        load_correction(path, "a40")
    r = run_cli("plan", "--gpu", "a40", "--calibration", str(path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no measurements for a40" not in r.stderr  # the file is the problem, not the GPU
