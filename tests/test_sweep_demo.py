"""The rank sweep survives a kill between runs; the demo's tiny model really learns, for three seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli


def test_sweep_killed_between_runs_finishes_with_both_and_a_report(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "cli.main", "sweep", "--models", "tiny-arith", "--ranks", "4,8", "--max-steps-each", "3",
           "--output", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first, second = out / "tiny-arith-r4", out / "tiny-arith-r8"
    deadline = time.time() + 300
    while not (first / "summary.json").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # between the runs (or early in the second)
    proc.wait()
    state = json.loads((out / "sweep.json").read_text())
    assert state["queue"][0]["status"] == "done" and "finished" not in state
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((out / "sweep.json").read_text())
    assert [q["status"] for q in state["queue"]] == ["done", "done"]
    for run in (first, second):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in rows] == [1, 2, 3]
    rep = json.loads((out / "report" / "report.json").read_text())
    assert [x["label"] for x in rep["runs"]] == ["rank 4", "rank 8"]
    assert (out / "report" / "accuracy.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_model_really_learns(tmp_path, seed):
    """The accuracy reward over the last fifth of 30 steps beats the first fifth (the demo's claim)."""
    from budgetreason.train.training import train

    train(model="tiny-arith", dataset="arith", max_steps=30, seed=seed, output=str(tmp_path / "run"), progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    acc = [r["rewards/accuracy"] for r in rows]
    assert len(acc) == 30
    first, last = sum(acc[:6]) / 6, sum(acc[-6:]) / 6
    assert last > first + 0.05, (first, last)


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path):
    t0 = time.time()
    r = run_cli("demo", "--output", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert time.time() - t0 < 300  # under 5 minutes on 2 cores
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["accuracy_reward_last_fifth"] > summary["accuracy_reward_first_fifth"]
    assert summary["heldout_after"]["pass@1"] >= summary["heldout_before"]["pass@1"]
    assert (tmp_path / "demo" / "comparison.md").is_file() and (tmp_path / "demo" / "report" / "report.md").is_file()
    assert "held-out pass@1" in r.stdout
