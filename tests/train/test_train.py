"""Training on the built-in tiny model through the real TRL trainer: run folder, resume, deadline, fidelity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from budgetreason.errors import BudgetError
from budgetreason.runs.folder import RunFolder
from tests.conftest import ROOT, run_cli

REQUIRED = ("step", "elapsed_s", "reward", "reward_std", "rewards/accuracy", "rewards/format", "completion_length",
            "clipped_ratio", "entropy", "kl", "learning_rate", "step_seconds", "rewards/unjudged")


def metrics(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x.strip()]


def cli_env() -> dict:
    return dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1")


def test_train_cli_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "--model", "tiny-arith", "--dataset", "arith", "--max-steps", "6", "--output", str(out),
                "--save-steps", "3", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    folder = RunFolder(out)
    cfg = yaml.safe_load(folder.config.read_text())
    assert cfg["model"] == "tiny-arith" and cfg["dataset"] == "arith" and cfg["backend"] == "hf"
    assert cfg["lora_rank"] == 16 and cfg["num_generations"] == 8
    plan = json.loads(folder.plan.read_text())
    assert plan["fits"] and plan["config"]["lora_rank"] == 16
    rows = metrics(out)
    assert [row["step"] for row in rows] == list(range(1, 7))
    for key in REQUIRED:
        assert all(key in row for row in rows), key
    assert all(0 <= row["rewards/accuracy"] <= 1 for row in rows)
    assert [c.name for c in folder.checkpoints()] == ["checkpoint-3", "checkpoint-6"]
    for c in folder.checkpoints():
        assert (c / "COMPLETE").is_file() and (c / "optimizer.pt").is_file() and (c / "rng_state.pth").is_file()
        assert (c / "adapter_model.safetensors").is_file() and (c / "trainer_state.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    summary = json.loads(folder.summary.read_text())
    assert summary["stop_reason"] == "max_steps" and summary["steps"] == 6
    assert "max_steps: 6 steps" in r.stdout
    assert not (out / "README.md").exists()  # no TRL auto card ("fine-tuned version of [None]")
    # Step t (1-based) trained at the schedule's update t − 1 (LambdaLR counts from 0): the logged LR is the
    # schedule's, step by step, with no lag.
    from budgetreason.train.budget import SCHEDULE_FILE, Horizon

    horizon = Horizon.from_dict(json.loads((out / SCHEDULE_FILE).read_text()))
    assert [row["learning_rate"] for row in rows] == pytest.approx(
        [cfg["learning_rate"] * horizon.multiplier(t - 1) for t in range(1, 7)])


def test_killed_run_resumes_with_every_step_once(tmp_path):
    out = tmp_path / "run"
    # A small shape (2 prompts × 4 completions per step): resume fidelity does not depend on it, and the
    # shared CPU reaches checkpoint-4 well inside the deadline.
    cmd = [sys.executable, "-m", "cli.main", "train", "--model", "tiny-arith", "--batch", "8", "--k", "4",
           "--max-steps", "10", "--save-steps", "4", "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "checkpoint-4" / "COMPLETE").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(1.0)  # let it get into step 5 or 6
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = metrics(out)
    assert partial and partial[-1]["step"] < 10
    r = subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = metrics(out)
    assert [row["step"] for row in rows] == list(range(1, 11))  # every step exactly once
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "resume" and e["step"] >= 4 for e in events)
    assert rows[-1]["elapsed_s"] > partial[0]["elapsed_s"]  # time before the kill counts
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from budgetreason.plan.architectures import tiny_model_dir

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir()), out / "adapter")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


def test_deadline_stops_in_time_with_a_loadable_adapter(tmp_path):
    out = tmp_path / "run"
    budget_s = 25.0
    t0 = time.time()
    r = run_cli("train", "--model", "tiny-arith", "--hours", str(budget_s / 3600), "--output", str(out), "--no-progress")
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "deadline"
    assert summary["elapsed_s"] <= budget_s
    assert summary["steps"] >= 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert wall < budget_s + 60  # start-up and the final save on top of the budget


def test_saved_adapter_gives_the_trained_log_probs(tmp_path):
    """What was trained is what was saved: fresh base + adapter/ reproduces the in-memory model's log-probs."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from budgetreason.plan.architectures import tiny_model_dir
    from budgetreason.train.training import train

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    ids = tok("<think>\n23 + 58\nunits: 3 + 8 = 11\ntens: 2 + 5 + 1 = 8\n</think>\n\\boxed{81}", return_tensors="pt")

    def logprobs(model):
        model.eval()
        with torch.no_grad():
            logits = model(**ids).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, ids["input_ids"][0, 1:, None]).squeeze(-1)

    captured = {}

    class Capture(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw):
            captured["lp"] = logprobs(model)

    train(model="tiny-arith", max_steps=4, output=str(tmp_path / "run"), progress=False, callbacks=[Capture()])
    fresh = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir()), tmp_path / "run" / "adapter")
    base = logprobs(AutoModelForCausalLM.from_pretrained(tiny_model_dir()))
    assert torch.allclose(logprobs(fresh), captured["lp"], atol=1e-5)  # fp32 on CPU: equal to rounding
    assert not torch.allclose(base, captured["lp"], atol=1e-4)  # and training did change the model


def test_other_run_in_folder_is_refused_then_moved_aside_with_overwrite(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--output", str(out), "--no-progress").returncode == 0
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--rank", "8", "--output", str(out), "--no-progress")
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "holds a different run" in lines[0] and "lora_rank" in lines[0]
    assert yaml.safe_load((out / "config.yaml").read_text())["lora_rank"] == 16  # untouched
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--rank", "8", "--output", str(out),
                "--overwrite", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert yaml.safe_load((out / "config.yaml").read_text())["lora_rank"] == 8
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "adapter").is_dir()


@pytest.mark.parametrize("args,needle", [
    (["--dataset", "no-such-data"], "Unknown dataset 'no-such-data'"),
    (["--rank", "0"], "--rank must be at least 1"),
    (["--k", "1"], "--k must be at least 2"),
    (["--hours", "-1"], "--hours must be more than 0"),
    (["--loss", "ppo"], "--loss must be one of"),
])
def test_bad_config_is_one_line(tmp_path, args, needle):
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "2", "--output", str(tmp_path / "r"), *args)
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], lines


def test_bad_yaml_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: tiny-arith\nlora_rnak: 8\n")
    r = run_cli("train", "--config", str(cfg), "--max-steps", "1")
    assert r.returncode == 2 and "Unknown setting(s)" in r.stderr and "lora_rnak" in r.stderr


def test_out_of_memory_is_retried_from_the_checkpoint_with_a_smaller_batch(tmp_path):
    from transformers import TrainerCallback

    from budgetreason.train.training import train

    class OOMOnce(TrainerCallback):
        fired = False

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3 and not OOMOnce.fired:
                OOMOnce.fired = True
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    out = tmp_path / "run"
    result = train(model="tiny-arith", max_steps=5, save_steps=2, output=str(out), progress=False,
                   callbacks=[OOMOnce()])
    assert result.steps == 5
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    oom = [e for e in events if e["kind"] == "oom"]
    assert len(oom) == 1 and oom[0]["change"]["per_device_train_batch_size"] == 32
    assert yaml.safe_load((out / "config.yaml").read_text())["per_device_train_batch_size"] == 32
    assert [r["step"] for r in metrics(out)] == [1, 2, 3, 4, 5]


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cli.main", "train", "--model", "tiny-arith", "--max-steps", "200", "--output",
           str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "metrics.jsonl").is_file() or len(metrics(out)) < 2:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode == 130
    assert "stopped on request; checkpoint saved" in proc.stderr.read().decode()
    ckpt = RunFolder(out).latest_complete_checkpoint()
    assert ckpt is not None and int(ckpt.name.split("-")[1]) >= 2
    assert json.loads((out / "summary.json").read_text())["stop_reason"] == "interrupted"


def test_budget_usd_converts_with_the_gpu_price():
    from budgetreason.train.config import RunConfig
    from budgetreason.train.training import resolve

    with pytest.raises(BudgetError, match="--hours or --budget-usd"):
        RunConfig(budget_hours=1, budget_usd=1)
    run = resolve(RunConfig(model="tiny-arith", gpu="a40", backend="hf", budget_usd=3.0))
    assert run.config.budget_hours == pytest.approx(3.0 / 0.30)


def test_validation_during_training_writes_val_accuracy(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "--model", "tiny-arith", "--max-steps", "4", "--output", str(out), "--no-progress",
                "--val-every", "2", "--val-benchmark", "arith", "--val-size", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = metrics(out)
    assert "val_initial/accuracy" in rows[0]
    assert [row["step"] for row in rows if "val/accuracy" in row] == [2, 4]
    assert all(0 <= row["val/accuracy"] <= 1 for row in rows if "val/accuracy" in row)


def test_resume_flag_continues_the_saved_run_with_a_larger_budget(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "tiny-arith", "--max-steps", "3", "--save-steps", "3", "--rank", "8",
                   "--output", str(out), "--no-progress").returncode == 0
    r = run_cli("train", "--resume", str(out), "--max-steps", "5", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [row["step"] for row in metrics(out)] == [1, 2, 3, 4, 5]
    assert yaml.safe_load((out / "config.yaml").read_text())["lora_rank"] == 8  # the saved run, not the defaults
    r = run_cli("train", "--resume", str(tmp_path / "nothing-here"))
    assert r.returncode == 2 and "no budgetreason run there" in r.stderr


def test_a_run_config_keeps_explicit_default_values_like_the_same_dict(tmp_path):
    """RunConfig(save_minutes=30.0) is a choice even though 30 is the field's default: tiny-arith's recipe
    (save_minutes 5) fills only what was not given, in train() and in launch.worker (which reads a YAML)."""
    from budgetreason.train.config import RunConfig
    from budgetreason.train.launch import worker
    from budgetreason.train.training import _user_config, resolve, train

    settings = dict(model="tiny-arith", save_minutes=30.0, loss="grpo", max_steps=1, progress=False)
    assert _user_config(RunConfig(**settings), {}) == _user_config(settings, {})
    assert _user_config(RunConfig(**settings), {}).save_minutes == 30.0
    assigned = RunConfig(model="tiny-arith")
    assert _user_config(assigned, {}).save_minutes == 5.0  # not given: the model's recipe decides
    assigned.save_minutes = 30.0
    assert _user_config(assigned, {}).save_minutes == 30.0

    train(RunConfig(**settings, output=str(tmp_path / "run")))
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["save_minutes"] == 30.0

    launch = tmp_path / "run2.launch"  # what `train --gpus N` writes, read by every trainer process
    launch.mkdir()
    (launch / "config.yaml").write_text(yaml.safe_dump(dict(settings, output=str(tmp_path / "run2"))))
    (launch / "layout.json").write_text(json.dumps(resolve(_user_config(settings, {})).plan.to_dict()))
    worker(str(launch / "config.yaml"))
    saved = yaml.safe_load((tmp_path / "run2" / "config.yaml").read_text())
    assert saved["save_minutes"] == 30.0 and json.loads((tmp_path / "run2" / "summary.json").read_text())["steps"] == 1


class _FixedEngine:
    """Stands in for the sampling engine: every problem gets the same completion (the scoring is what is tested)."""

    def __init__(self, text: str):
        self.text = text

    def generate(self, prompts, s):
        from budgetreason.evaluate.generation import Sample

        return [[Sample(self.text, 20, None, "length") for _ in range(s.n)] for _ in prompts]


def test_validation_scores_unfinished_reasoning_0_under_a_template_that_opens_think(tmp_path):
    """Review #3: validation reads the model's chat template as the training reward does."""
    from budgetreason.models.backends.hf import load_tokenizer
    from budgetreason.train.config import RunConfig
    from budgetreason.train.validation import ValidationCallback
    from tests.conftest import think_opening_model

    cfg = RunConfig(model="tiny-arith", val_benchmark="arith", val_size_benchmark=4, max_completion_length=32)
    for tok, opens in ((load_tokenizer(str(think_opening_model(tmp_path / "r1-like"))), True),
                       (load_tokenizer("tiny-arith"), False)):
        cb = ValidationCallback(None, cfg, tok, backend="hf")
        assert cb.prompt_opens_think is opens
        cb.problems = cb.problems[:1]
        gold = cb.problems[0].gold
        cut = f"so it is \\boxed{{{gold}}}, unless"  # cut mid-reasoning
        cb._engine = lambda model, text=cut: _FixedEngine(text)
        assert cb.validate(None)["val/accuracy"] == (0.0 if opens else 1.0)


def test_each_pass_over_the_data_is_an_event_and_num_train_epochs_ends_the_run(tmp_path):
    """16 prompts at 8 per step are 2 steps a pass. A step limit past the data loops over it with an
    `epoch` event at each boundary; num_train_epochs stops after its passes as end_of_data, which a
    rerun leaves finished and a larger limit continues."""
    from budgetreason.train.training import train

    def epochs(out):
        return [(e["step"], e["epoch"]) for e in map(json.loads, (out / "events.jsonl").read_text().splitlines())
                if e["kind"] == "epoch"]

    small = dict(model="tiny-arith", dataset_limit=16, progress=False)
    looped = train(**small, max_steps=5, output=str(tmp_path / "loop"))
    assert looped.stop_reason == "max_steps" and looped.steps == 5
    assert epochs(tmp_path / "loop") == [(2, 1), (4, 2)]  # step 5 is inside the third pass
    assert json.loads((tmp_path / "loop" / "summary.json").read_text())["epochs"] == pytest.approx(2.5)

    out = tmp_path / "epochs"
    done = train(**small, budget_hours=1.0, num_train_epochs=2, output=str(out))
    assert done.stop_reason == "end_of_data" and done.steps == 4 and epochs(out) == [(2, 1), (4, 2)]
    assert RunFolder(out).latest_complete_checkpoint().name == "checkpoint-4"  # saved at the stop
    again = train(**small, budget_hours=1.0, num_train_epochs=2, output=str(out))
    assert again.nothing_to_do and again.stop_reason == "end_of_data"
    more = train(**small, budget_hours=1.0, num_train_epochs=3, output=str(out))
    assert more.stop_reason == "end_of_data" and more.steps == 6 and epochs(out)[-1] == (6, 3)
    assert [row["step"] for row in metrics(out)] == [1, 2, 3, 4, 5, 6]


class _StubLLM:
    """Stands in for vLLM's LLM (no GPU here): records the sleep-mode calls around generate."""

    def __init__(self, calls: list, text: str):
        self.calls, self.text = calls, text

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags or ())))

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def generate(self, prompts, params, use_tqdm=True):
        from types import SimpleNamespace

        self.calls.append(("generate", len(prompts)))
        out = SimpleNamespace(text=self.text, token_ids=[1, 2, 3], logprobs=None, finish_reason="stop")
        return [SimpleNamespace(outputs=[out] * params.n) for _ in prompts]


class _StubVLLMGeneration:
    """TRL 1.15's VLLMGeneration as validation uses it: mode, enable_sleep_mode, llm, sync_weights."""

    def __init__(self, mode: str, sleep: bool, text: str):
        self.calls: list = []
        self.mode, self.enable_sleep_mode, self._llm_weights_sleeping = mode, sleep, sleep
        if mode == "colocate":
            self.llm = _StubLLM(self.calls, text)

    def sync_weights(self):
        self.calls.append(("sync_weights",))
        if self.enable_sleep_mode:  # TRL wakes only the weights here
            self.calls.append(("wake_up", ("weights",)))
            self._llm_weights_sleeping = False


@pytest.mark.parametrize("sleep", [True, False])
def test_validation_on_trls_engine_wakes_the_kv_cache_under_sleep_mode(monkeypatch, sleep):
    """Review #4: as TRL's own generate, wake kv_cache before sampling and sleep (level 2) after."""
    from types import SimpleNamespace

    from budgetreason.evaluate import generation
    from budgetreason.models.backends.hf import load_tokenizer
    from budgetreason.train.config import RunConfig
    from budgetreason.train.validation import ValidationCallback

    monkeypatch.setattr(generation, "vllm_params", lambda s, logprobs=None: s)  # vLLM's SamplingParams: not here
    cfg = RunConfig(model="tiny-arith", val_benchmark="arith", val_size_benchmark=4, val_samples=2,
                    max_completion_length=32)
    cb = ValidationCallback(None, cfg, load_tokenizer("tiny-arith"), backend="trl")
    gold = cb.problems[0].gold
    vg = _StubVLLMGeneration("colocate", sleep, f"</think>\n\\boxed{{{gold}}}")
    cb.trainer = SimpleNamespace(vllm_generation=vg)
    result = cb.validate(None)
    assert result["val/n_problems"] == 4 and result["val/samples"] == 2
    assert result["val/accuracy"] == 0.25  # real Math-Verify: the one gold the text names
    if sleep:
        assert vg.calls == [("sync_weights",), ("wake_up", ("weights",)), ("wake_up", ("kv_cache",)),
                            ("generate", 4), ("sleep", 2)]
        assert vg._llm_weights_sleeping is True  # TRL pushes the weights again before its next generation
    else:
        assert vg.calls == [("sync_weights",), ("generate", 4)]


def test_validation_in_trls_server_mode_is_one_clear_error():
    """Review #4: server mode has no engine in this process (TRL sets no .llm); say so, not AttributeError."""
    from types import SimpleNamespace

    from budgetreason.models.backends.hf import load_tokenizer
    from budgetreason.train.config import RunConfig
    from budgetreason.train.validation import ValidationCallback

    cfg = RunConfig(model="tiny-arith", val_benchmark="arith", val_size_benchmark=2, max_completion_length=32)
    cb = ValidationCallback(None, cfg, load_tokenizer("tiny-arith"), backend="trl")
    cb.trainer = SimpleNamespace(vllm_generation=_StubVLLMGeneration("server", False, ""))
    with pytest.raises(BudgetError, match="with --gpus N TRL generates on its vLLM server; drop --val-every"):
        cb.validate(None)


@pytest.mark.gpu
def test_validation_under_vllm_sleep_mode_on_a_gpu(tmp_path):
    """Review #4 on a GPU: TRL's colocated engine in sleep mode (vllm_standby) validates before step 1 and
    at each --val-every, and training goes on after (the KV cache was woken and put back to sleep)."""
    from budgetreason.models.synthetic import save_random_model
    from budgetreason.plan.architectures import resolve_model
    from budgetreason.train.training import train

    folder = save_random_model(resolve_model("Qwen/Qwen2.5-0.5B-Instruct"), tmp_path / "m")
    out = tmp_path / "run"
    train(model=str(folder), backend="trl", vllm_standby=True, max_steps=2, val_every=1, val_benchmark="arith",
          val_size_benchmark=4, max_completion_length=32, output=str(out), progress=False)
    rows = metrics(out)
    assert "val_initial/accuracy" in rows[0]
    assert [row["step"] for row in rows if "val/accuracy" in row] == [1, 2]
