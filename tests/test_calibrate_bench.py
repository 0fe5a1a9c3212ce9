"""calibrate and bench on the CPU with the tiny architecture; the GPU path under @pytest.mark.gpu."""

from __future__ import annotations

import json

import pytest

from budgetreason.calibrate import Correction, Spec, calibrate, load_correction
from budgetreason.errors import BudgetError
from budgetreason.planner import plan
from budgetreason.synthetic import build_tokenizer
from tests.conftest import run_cli


def test_synthetic_tokenizer_has_exactly_the_models_vocabulary():
    tok = build_tokenizer(151_936)
    assert len(tok) == 151_936
    ids = tok("t5 t77 t151931")["input_ids"]
    assert len(ids) == 3 and max(ids) == 151_935
    assert "<|im_start|>assistant" in tok.apply_chat_template([{"role": "user", "content": "t1"}],
                                                               add_generation_prompt=True, tokenize=False)


def test_calibrate_measures_through_the_training_code(tmp_path):
    out = tmp_path / "calibration.json"
    data = calibrate([Spec("tiny-arith", rank=4, k=4, completion=24, steps=2, gpu="cpu", prompt=32)], out)
    assert not data["failures"], data["failures"]
    rec = data["records"][0]
    assert rec["gpu"] == "cpu" and rec["backend"] == "hf" and rec["steps"] == 2
    assert rec["predicted"]["total_gib"] > 0 and rec["measured"]["peak_gib"] > 0
    assert rec["measured"]["step_seconds"] > 0
    assert rec["memory_error_pct"] == pytest.approx(
        100 * (rec["predicted"]["total_gib"] - rec["measured"]["peak_gib"]) / rec["measured"]["peak_gib"], abs=0.1)
    assert json.loads(out.read_text())["versions"]["trl"] == "1.15.0"


def _write(path, points, gpu="a40"):
    recs = [{"gpu": gpu, "predicted": {"total_gib": p, "step_seconds": ps},
             "measured": {"peak_gib": m, "step_seconds": ms}} for p, m, ps, ms in points]
    path.write_text(json.dumps({"records": recs, "failures": []}))
    return str(path)


def test_correction_is_a_least_squares_fit(tmp_path):
    path = _write(tmp_path / "c.json", [(10, 12, 100, 150), (20, 22, 200, 300), (30, 32, 300, 450)])
    c = load_correction(path, "a40")
    assert (c.a, c.b_gib, c.time_ratio, c.points) == (pytest.approx(1.0), pytest.approx(2.0), pytest.approx(1.5), 3)
    with pytest.raises(BudgetError, match="no measurements for t4"):
        load_correction(path, "t4")
    with pytest.raises(BudgetError, match="no such file"):
        load_correction(str(tmp_path / "missing.json"), "a40")


def test_plan_uses_the_correction(tmp_path):
    base = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24)
    path = _write(tmp_path / "c.json", [(10, 13, 100, 200), (30, 39, 300, 600)])  # 30% more memory, 2x time
    corrected = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24, calibration=path)
    assert corrected.memory.terms["calibration"] > 0
    assert corrected.memory.total <= corrected.usable_bytes
    assert corrected.step.total_s > base.step.total_s * 1.5
    assert any("corrected from 2 measurement" in w for w in corrected.warnings)
    assert Correction("x", a=1.3).memory(10 * 1024**3) == int(13 * 1024**3)
    r = run_cli("plan", "--gpu", "a40", "--calibration", path, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["memory_gib"]["calibration"] > 0


def test_bench_runs_both_variants_on_the_same_shape(tmp_path):
    r = run_cli("bench", "--model", "tiny-arith", "--completion", "24", "--rank", "4", "--k", "4", "--steps", "2",
                "--gpu", "cpu", "--output", str(tmp_path / "bench.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((tmp_path / "bench.json").read_text())
    ours, plain = data["results"]["budgetreason"], data["results"]["plain"]
    assert ours["completions_per_step"] == plain["completions_per_step"]
    assert ours["step_seconds"] > 0 and plain["step_seconds"] > 0 and plain["generation"] == "transformers"
    assert set(data["ratios"]) >= {"speedup_step", "generated_tokens_per_s", "trained_tokens_per_s"}
    assert "speedup_step" in r.stdout


# ---- the GPU path: runs only where CUDA is present ------------------------------------------------
@pytest.mark.gpu
def test_gpu_calibration_of_a_small_architecture(tmp_path):
    data = calibrate([Spec("Qwen/Qwen2.5-0.5B-Instruct", rank=8, k=4, completion=256, steps=2)], tmp_path / "c.json")
    assert not data["failures"], data["failures"]
    rec = data["records"][0]
    assert rec["backend"] in ("unsloth", "trl", "hf") and rec["measured"]["peak_gib"] > 1


@pytest.mark.gpu
def test_gpu_unsloth_backend_trains_and_saves_an_adapter(tmp_path):
    from budgetreason.models import resolve_model
    from budgetreason.synthetic import save_random_model, write_prompts
    from budgetreason.training import train

    arch = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    folder = save_random_model(arch, tmp_path / "m")
    data = write_prompts(tmp_path / "d.jsonl", 32, 64, arch.vocab_size)
    result = train(model=str(folder), dataset=str(data), lora_rank=8, num_generations=4, max_completion_length=128,
                   max_steps=2, output=str(tmp_path / "run"), progress=False)
    assert result.steps == 2 and (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("peak_gpu_mem_gib" in r for r in rows)


@pytest.mark.gpu
def test_gpu_bench(tmp_path):
    from budgetreason.bench import bench

    data = bench(Spec("Qwen/Qwen2.5-0.5B-Instruct", rank=8, k=4, completion=256, steps=2), tmp_path / "b.json")
    assert data["ratios"], data["results"]
