"""calibrate and bench on the CPU with the tiny architecture; the GPU path under @pytest.mark.gpu."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from budgetreason.errors import BudgetError
from budgetreason.measure.calibrate import Correction, Spec, calibrate, force_full_length, load_correction, quick
from budgetreason.models.synthetic import build_tokenizer
from budgetreason.plan.planner import plan
from tests.conftest import ROOT, run_cli


def test_synthetic_tokenizer_survives_a_reload_under_the_models_type(tmp_path):
    """transformers 5 rebuilds qwen2 tokenizers from tokenizer.json's vocab and merges: ids must not change."""
    from transformers import AutoTokenizer

    from budgetreason.models.synthetic import hf_config, prompt_overhead, write_prompts
    from budgetreason.plan.architectures import resolve_model

    tok = build_tokenizer(151_936)
    assert len(tok) == 151_936
    assert len(tok("0123456789")["input_ids"]) == 10  # one token per digit
    text = tok.apply_chat_template([{"role": "user", "content": "42"}], add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>assistant" in text
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(hf_config(resolve_model("Qwen/Qwen2.5-1.5B-Instruct"))))
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert len(again) == 151_936 and again("0123456789")["input_ids"] == tok("0123456789")["input_ids"]
    assert prompt_overhead(again) == prompt_overhead(tok) < 64  # template and system prompt: few tokens
    row = json.loads(write_prompts(tmp_path / "d.jsonl", 1, 100).read_text())
    assert len(again(row["problem"])["input_ids"]) == 100


def _no_checkpoints(*roots: Path) -> bool:
    return not any(p.name.startswith("checkpoint-") or p.name == "adapter" for r in roots for p in r.rglob("*"))


def test_quick_calibration_streams_one_line_per_step_and_builds_the_model_once(tmp_path):
    out, cache = tmp_path / "calibration.jsonl", tmp_path / "cache"
    specs = quick("tiny-arith", cuda=False, gpu="cpu")
    assert len(specs) == 3 and len({s.rank for s in specs}) == 2 and len({s.completion for s in specs}) == 2
    data = calibrate(specs, out, cache=cache)
    assert not data["failures"], data["failures"]
    assert data["models_built"] == ["tiny-arith"]  # once for all three configurations
    assert [p.name for p in cache.iterdir()] == ["tiny-arith-float32-v2"]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    assert rows[0]["kind"] == "session" and rows[0]["versions"]["trl"] == "1.15.0"
    assert len(steps) == 3 * 2 and {r["step"] for r in steps} == {1, 2}
    for r in steps:
        assert r["engine"] == "transformers" and r["gpu"] == "cpu"
        sec = r["seconds"]
        assert sec["generation"] > 0 and sec["reward"] >= 0 and sec["training"] > 0
        assert sec["total"] == pytest.approx(sec["generation"] + sec["reward"] + sec["training"], abs=0.01)
        assert r["memory_gib"]["torch_reserved"] is None and r["memory_gib"]["nvidia_smi"] is None
        assert r["memory_gib"]["rss"] > 0 and r["tokens_per_s"]["generated"] > 0
        # min_new_tokens forces every completion to its full length on transformers' generate
        assert r["tokens"]["completion"] == r["shape"]["completions_per_step"] * r["shape"]["completion"]
        per_prompt = r["tokens"]["prompt"] / r["shape"]["completions_per_step"]  # template + system prompt + digits
        assert abs(per_prompt - (r["shape"]["max_prompt_length"] - 8)) <= 2
    assert len(data["records"]) == 3 and all(rec["steps"] == 2 for rec in data["records"])
    assert _no_checkpoints(tmp_path)
    again = calibrate(specs[:1], out, cache=cache)  # the cache is reused: nothing built
    assert again["models_built"] == [] and len(again["records"]) == 4


def test_a_killed_calibration_keeps_its_finished_lines(tmp_path):
    out = tmp_path / "calibration.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "calibrate", "--quick", "--models", "tiny-arith",
                             "--gpu", "cpu", "--output", str(out), "--cache", str(tmp_path / "cache")],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and '"kind": "step"' in out.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]  # still running when the first step line is there
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    steps = [json.loads(x) for x in out.read_text().splitlines() if '"kind": "step"' in x]
    assert steps and steps[0]["step"] == 1 and steps[0]["seconds"]["total"] > 0
    assert _no_checkpoints(tmp_path)
    c = load_correction(out, "cpu")  # the kept line is enough to correct a plan
    assert c.points == 1


def _noisy_child(tmp_path: Path, code: int) -> Path:
    """A stand-in for `python -m budgetreason.measure.calibrate`: 200 kB of warnings on stderr, then exit `code`."""
    script = tmp_path / "noisy-python"
    script.write_text(f"#!{sys.executable}\n"
                      "import sys\n"
                      "for i in range(4000):\n"
                      "    print(f'UserWarning {i:05d}: ' + 'x' * 40, file=sys.stderr)\n"
                      "print('RuntimeError: CUDA out of memory in the child', file=sys.stderr)\n"
                      f"sys.exit({code})\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("code", [0, 3])
def test_an_isolated_configuration_never_blocks_on_its_own_stderr(tmp_path, monkeypatch, code):
    """A child that writes far more than a pipe's 64 KiB to stderr finishes on its own (not at the timeout).

    The bound is the child's exit: before the fix the parent waited out `timeout_s` and raised TimeoutExpired.
    """
    from rich.console import Console

    from budgetreason.measure import calibrate as cal

    monkeypatch.setattr(cal.sys, "executable", str(_noisy_child(tmp_path, code)))
    work = tmp_path / "work"
    work.mkdir()
    console = Console(record=True, width=200)
    spec = quick("tiny-arith", cuda=False, gpu="cpu")[0]
    args = (spec, tmp_path / "model", work, tmp_path / "calibration.jsonl", "r0", console, 60)
    if code == 0:
        cal._measure_in_subprocess(*args)
    else:
        with pytest.raises(RuntimeError, match="^RuntimeError: CUDA out of memory in the child$"):
            cal._measure_in_subprocess(*args)
        shown = console.export_text()
        assert "UserWarning 03999" in shown and "CUDA out of memory" in shown  # the tail is shown
        assert "UserWarning 00000" not in shown  # only the tail
    log = (work / "stderr.log").read_text()
    assert len(log) > 200_000 and log.count("UserWarning") == 4000  # all of it kept, in the tmp folder


def test_completion_length_is_forced_with_each_engines_own_argument():
    assert force_full_length("vllm", 512) == {"min_tokens": 512}
    assert force_full_length("hf", 512) == {"min_new_tokens": 512}


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


def _line(run_id, step, predicted_gib, peak_gib, pred_gen, pred_train, gen, rest, engine="vllm", gpu="a40"):
    return json.dumps({
        "kind": "step", "run_id": run_id, "gpu": gpu, "engine": engine, "step": step,
        "predicted": {"total_gib": predicted_gib,
                      "step_breakdown": {"generate_s": pred_gen, "train_s": pred_train, "overhead_s": 0.0,
                                         "total_s": pred_gen + pred_train}},
        "seconds": {"generation": gen, "reward": 0.0, "training": rest, "total": gen + rest},
        "memory_gib": {"torch_reserved": None, "nvidia_smi": peak_gib, "rss": None, "peak": peak_gib}})


def test_plan_corrects_memory_and_time_from_calibration_lines(tmp_path):
    path = tmp_path / "calibration.jsonl"
    lines = [json.dumps({"kind": "session", "versions": {}})]
    # three configurations, two steps each; step 1 is warm-up (slow) and must not count for time
    for i, (pred, meas) in enumerate([(10, 13), (20, 25), (30, 37)]):
        lines.append(_line(f"c{i}", 1, pred, meas - 0.5, 100, 50, 900, 900))
        lines.append(_line(f"c{i}", 2, pred, meas, 100, 50, 300, 75))  # generation 3x, training 1.5x
    lines.append(_line("c0", 3, 10, 13, 100, 50, 300, 75)[:40])  # a line cut short by a kill
    path.write_text("\n".join(lines) + "\n")
    c = load_correction(path, "a40", "vllm")
    assert c.points == 3 and c.engine == "vllm"
    assert (c.a, c.b_gib) == (pytest.approx(1.2), pytest.approx(1.0))  # peaks 13, 25, 37 = 1.2·x + 1
    assert (c.generate_ratio, c.train_ratio) == (pytest.approx(3.0), pytest.approx(1.5))
    base = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24)
    corrected = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24, calibration=str(path))
    assert corrected.memory.total == Correction("a40", a=c.a, b_gib=c.b_gib).memory(
        corrected.memory.total - corrected.memory.terms["calibration"])
    assert corrected.memory.total <= corrected.usable_bytes
    same = corrected.search_shape if hasattr(corrected, "search_shape") else corrected.shape
    from budgetreason.plan import timing
    raw = timing.step_time(corrected.model, corrected.gpu, same)
    assert corrected.step.generate_s == pytest.approx(3.0 * raw.generate_s)
    assert corrected.step.train_s == pytest.approx(1.5 * raw.train_s)
    assert corrected.step.total_s > base.step.total_s
    assert any("generation × 3.00" in w for w in corrected.warnings)
    r = run_cli("plan", "--gpu", "a40", "--calibration", str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memory_gib"]["calibration"] != 0


def test_time_ratios_come_from_the_plans_engine(tmp_path):
    path = tmp_path / "calibration.jsonl"
    path.write_text("\n".join([_line("v", 1, 10, 12, 10, 10, 20, 10), _line("h", 1, 10, 12, 10, 10, 50, 10,
                                                                              engine="unsloth")]) + "\n")
    assert load_correction(path, "a40", "unsloth").generate_ratio == pytest.approx(5.0)
    assert load_correction(path, "a40", "vllm").generate_ratio == pytest.approx(2.0)
    with pytest.raises(BudgetError, match="not a calibration file"):
        (tmp_path / "bad.jsonl").write_text('{"kind": "step"}\n')
        load_correction(tmp_path / "bad.jsonl", "a40")


# ---- Unsloth without vLLM: chosen, planned and configured ---------------------------------------------
@pytest.fixture
def only_unsloth(monkeypatch):
    """A CUDA machine's package set, as far as the choice can see: Unsloth installed, vLLM not."""
    import budgetreason.models.backends as backends

    monkeypatch.setattr(backends, "installed", lambda m: m == "unsloth")


def test_auto_picks_unsloth_with_transformers_generation_when_vllm_is_missing(only_unsloth, monkeypatch):
    import budgetreason.models.backends as backends
    from budgetreason.models.backends import choose_backend, choose_engine
    from budgetreason.plan.hardware import resolve_gpu

    h100, cpu = resolve_gpu("h100"), resolve_gpu("cpu")
    assert choose_engine("auto", "auto", h100) == ("unsloth", "hf")
    assert choose_engine("unsloth", "auto", h100) == ("unsloth", "hf")
    assert choose_engine("unsloth", "hf", h100) == ("unsloth", "hf")
    assert choose_backend("auto", h100) == "unsloth"
    assert choose_engine("auto", "auto", cpu) == ("hf", "hf")
    with pytest.raises(BudgetError, match="--generation hf"):
        choose_engine("unsloth", "vllm", h100)
    with pytest.raises(BudgetError, match="always generates with vLLM"):
        choose_engine("trl", "hf", h100)
    monkeypatch.setattr(backends, "installed", lambda m: m in ("unsloth", "vllm"))
    assert choose_engine("auto", "auto", h100) == ("unsloth", "vllm")
    assert choose_engine("auto", "hf", h100) == ("unsloth", "hf")
    monkeypatch.setattr(backends, "installed", lambda m: m == "vllm")
    assert choose_engine("auto", "auto", h100) == ("trl", "vllm")
    assert choose_engine("auto", "hf", h100) == ("hf", "hf")


def test_plan_models_unsloth_without_vllm():
    from budgetreason.plan import memory, timing
    with_vllm = plan("h100", "Qwen/Qwen2.5-1.5B-Instruct", 24, backend="unsloth")
    p = plan("h100", "Qwen/Qwen2.5-1.5B-Instruct", 24, backend="unsloth", generation="hf")
    assert with_vllm.shape.engine == "vllm" and p.shape.engine == "unsloth" and p.fits
    t = p.memory.terms
    assert t["vllm_activations"] == t["cuda_graphs"] == t["vllm_weights"] == 0  # no vLLM pool, graphs, copy
    assert t["kv_cache"] == memory.hf_generation_bytes(p.model, p.shape)  # transformers' dynamic cache
    assert p.memory.vllm_gpu_memory_utilization == 0.0 and p.memory.peak_phase in ("train", "generate")
    assert t["activations"] == memory.activation_bytes(p.model, p.shape)  # Unsloth's offloaded checkpoints
    d = p.to_dict()
    assert d["config"]["backend"] == "unsloth" and d["config"]["generation"] == "hf"
    assert d["generation_engine"] == "unsloth"
    # Unsloth's generate has per-layer launch costs vLLM's CUDA graphs remove, and no adapter sync
    same = p.shape.replace(generation="vllm")
    assert timing.generate_seconds(p.model, p.gpu, p.shape) > timing.generate_seconds(p.model, p.gpu, same)
    assert timing.overhead_seconds(p.model, p.gpu, p.shape) < timing.overhead_seconds(p.model, p.gpu, same)
    assert timing.steps_in_budget(100, 1, "unsloth") > timing.steps_in_budget(100, 1, "vllm")
    r = run_cli("plan", "--gpu", "h100", "--backend", "unsloth", "--generation", "hf")
    assert r.returncode == 0 and "transformers' generate under Unsloth" in r.stdout and "vLLM share" not in r.stdout
    with pytest.raises(BudgetError, match="--vllm-share applies only"):
        plan("h100", "Qwen/Qwen2.5-1.5B-Instruct", 24, backend="unsloth", generation="hf",
             vllm_gpu_memory_utilization=0.5)
    with pytest.raises(BudgetError, match="always generates with vLLM"):
        plan("h100", "Qwen/Qwen2.5-1.5B-Instruct", 24, backend="trl", generation="hf")


def test_unsloth_with_hf_generation_is_configured_without_vllm(only_unsloth, tmp_path, monkeypatch):
    from budgetreason.models.backends.unsloth_backend import from_pretrained_kwargs
    from budgetreason.rewards.functions import preset
    from budgetreason.train.config import RunConfig
    from budgetreason.train.trainer_args import grpo_config
    from budgetreason.train.training import resolve

    run = resolve(RunConfig(gpu="h100", model="Qwen/Qwen2.5-1.5B-Instruct", max_steps=2, output=str(tmp_path / "r")))
    assert (run.backend, run.generation) == ("unsloth", "hf")
    assert run.config.vllm_gpu_memory_utilization is None and run.config.vllm_standby is False
    assert run.plan.shape.engine == "unsloth"
    # GRPOConfig checks the local GPU for bf16: this machine has none, the planned H100 has it
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: True)
    args = grpo_config(run, preset(run.config.rewards))
    assert args.use_vllm is False and args.bf16 and args.gradient_checkpointing
    kw = from_pretrained_kwargs("m", dtype="bfloat16", load_in_4bit=False, max_seq_length=4096, seed=1, lora_rank=64,
                                gpu_memory_utilization=None, fast_inference=False)
    assert kw["fast_inference"] is False and kw["load_in_16bit"] is True
    assert "gpu_memory_utilization" not in kw and "max_lora_rank" not in kw  # vLLM's arguments only with vLLM
    kw = from_pretrained_kwargs("m", dtype="bfloat16", load_in_4bit=True, max_seq_length=4096, seed=1, lora_rank=64,
                                gpu_memory_utilization=0.4, fast_inference=True)
    assert (kw["fast_inference"], kw["gpu_memory_utilization"], kw["max_lora_rank"]) == (True, 0.4, 64)


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


def test_a_bench_stopped_after_its_first_side_keeps_that_side(tmp_path):
    """A GPU window that ends mid-bench (gpu_session.sh's stage timeout) leaves the finished side in bench.json."""
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "bench", "--model", "tiny-arith", "--completion", "24",
                             "--rank", "4", "--k", "4", "--steps", "2", "--gpu", "cpu", "--output", str(out)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not out.exists():
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]  # bench.json is there while the second side runs
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    data = json.loads(out.read_text())
    assert list(data["results"]) == ["budgetreason"] and data["results"]["budgetreason"]["step_seconds"] > 0
    assert data["ratios"] == {}  # no ratio from one side
    assert not list(tmp_path.glob("*.tmp"))


# ---- the GPU path: runs only where CUDA is present ------------------------------------------------
@pytest.mark.gpu
def test_gpu_calibration_of_a_small_architecture(tmp_path):
    data = calibrate([Spec("Qwen/Qwen2.5-0.5B-Instruct", rank=8, k=4, completion=256, steps=2)],
                     tmp_path / "c.jsonl", cache=tmp_path / "cache")
    assert not data["failures"], data["failures"]
    rec = data["records"][0]
    assert rec["backend"] in ("unsloth", "trl", "hf") and rec["measured"]["peak_gib"] > 1
    line = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[1])
    assert line["memory_gib"]["torch_reserved"]["training"] > 0


@pytest.mark.gpu
def test_gpu_unsloth_without_vllm_calibrates(tmp_path):
    pytest.importorskip("unsloth")
    data = calibrate([Spec("Qwen/Qwen2.5-0.5B-Instruct", rank=8, k=4, completion=128, steps=2, backend="unsloth",
                           generation="hf", prompt=64, prompts_per_step=2, batch=4)],
                     tmp_path / "c.jsonl", cache=tmp_path / "cache")
    assert not data["failures"], data["failures"]
    assert data["records"][0]["engine"] == "unsloth" and data["records"][0]["measured"]["peak_gib"] > 1


@pytest.mark.gpu
def test_gpu_unsloth_backend_trains_and_saves_an_adapter(tmp_path):
    from budgetreason.models.synthetic import save_random_model, write_prompts
    from budgetreason.plan.architectures import resolve_model
    from budgetreason.train.training import train

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
    from budgetreason.measure.bench import bench

    data = bench(Spec("Qwen/Qwen2.5-0.5B-Instruct", rank=8, k=4, completion=256, steps=2), tmp_path / "b.json")
    assert data["ratios"], data["results"]
