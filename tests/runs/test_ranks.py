"""Several trainer processes on one run folder: only rank 0 locks and writes it; the others read it.

Most tests simulate rank 1 with the environment accelerate launch sets (RANK, LOCAL_RANK, WORLD_SIZE)
and record the collectives instead of running them; the start-up refusals run as two real processes
joined by torch.distributed (gloo on the CPU), as torchrun starts them.
"""

import json
import os
import subprocess
import sys

import pytest
from transformers import TrainerControl, TrainerState

from budgetreason.runs import ranks
from budgetreason.runs.folder import RunFolder
from budgetreason.train.budget import BudgetClock
from budgetreason.train.callbacks import BudgetCallback, MetricsCallback, RunState


@pytest.fixture
def rank1(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")


@pytest.mark.parametrize("env, main", [({}, True), ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, True),
                                       ({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, False),
                                       ({"LOCAL_RANK": "1"}, False), ({"RANK": "2", "LOCAL_RANK": "0"}, False)])
def test_main_process_is_global_rank_zero_from_the_environment(monkeypatch, env, main):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert ranks.is_main_process() is main
    assert RunFolder("x").writer is main


def test_single_process_barrier_and_broadcast_do_nothing(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert ranks.agreed_error("refused") == "refused" and ranks.agreed_error(None) is None
    assert ranks.from_main(7) == 7
    assert BudgetCallback._agreed("deadline") == "deadline" and BudgetCallback._agreed(None) is None


def _hold_lock(path):
    """Rank 0 in another process, holding the run folder's lock until told to stop."""
    code = ("import sys, time; from budgetreason.runs.folder import RunFolder\n"
            "with RunFolder(sys.argv[1], writer=True).locked():\n"
            "    print('held', flush=True); sys.stdin.readline()\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=os.environ | {"RANK": "0", "WORLD_SIZE": "2"})
    assert p.stdout.readline().strip() == "held"
    return p


def test_rank_one_is_not_refused_by_rank_zeros_lock_and_writes_nothing(tmp_path, rank1):
    from budgetreason.runs.folder import RunFolderBusy

    holder = _hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunFolderBusy):  # a second writer is still refused
            with RunFolder(tmp_path / "run", writer=True).locked():
                pass
        folder = RunFolder(tmp_path / "run")
        assert folder.writer is False
        with folder.locked() as f:  # rank 1: no lock taken, no refusal
            f.event("start", "rank 1 says hello")
            f.write_json(f.summary, {"steps": 1})
            f.write_text(f.config, "x: 1\n")
            f.truncate_metrics(0)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]
        assert folder.holder()["pid"] == holder.pid  # the lock still names rank 0
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)


def _log_step(cb, step):
    state = TrainerState()
    state.global_step = step
    cb.on_log(None, state, TrainerControl(),
              logs={"reward": 0.5, "loss": 0.1})


def test_metrics_lines_come_from_rank_zero_only(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    for env in ({"RANK": "0"}, {"RANK": "1"}):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", env["RANK"])
        cb = MetricsCallback(RunState(folder=RunFolder(out), clock=BudgetClock()), [])
        _log_step(cb, 1)
        _log_step(cb, 2)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # each step once, not once per rank


def test_rank_one_stops_on_rank_zeros_clock_not_its_own(tmp_path, rank1, monkeypatch):
    """Rank 1's clock says the deadline is here; rank 0's (the broadcast value) says go on, then stop."""
    said = []
    monkeypatch.setattr(ranks, "from_main", lambda v: said.append(v) or told[0])
    run = RunState(folder=RunFolder(tmp_path), clock=BudgetClock(budget_s=1.0, spent_before_s=5.0))
    cb = BudgetCallback(run)
    args, state = None, TrainerState()  # TrainingArguments would start torch.distributed
    told = [0]
    control = cb.on_step_end(args, state, TrainerControl())
    assert said == [1] and not control.should_training_stop and run.stop_reason is None
    told = [2]  # rank 0 was interrupted: every rank stops, for that reason
    control = cb.on_step_end(args, state, TrainerControl())
    assert control.should_training_stop and control.should_save and run.stop_reason == "interrupted"


def test_rank_one_reads_the_folder_rank_zero_prepared(tmp_path, monkeypatch):
    """Rank 0 sets the broken checkpoint aside before the barrier; rank 1 then finds the same resume
    point and moves nothing; the order of barriers matches on both ranks."""
    from budgetreason.train import training
    from budgetreason.train.training import _locked_and_checked, _user_config, resolve

    out = tmp_path / "run"
    cfg = dict(model="tiny-arith", per_device_train_batch_size=8, num_generations=4, max_steps=8, save_steps=2,
               output=str(out))
    run0 = resolve(_user_config(None, cfg))
    folder = RunFolder(out, writer=True)
    out.mkdir()
    folder.write_text(folder.config, run0.config.to_yaml())
    for step in (2, 4):
        (out / f"checkpoint-{step}").mkdir()
        (out / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"w" * 100)
        folder.mark_complete(out / f"checkpoint-{step}", {"step": step, "elapsed_s": 1.0})
    (out / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"w" * 50)  # torn
    (out / "checkpoint-6").mkdir()  # cut short by a kill

    log = []
    monkeypatch.setattr(ranks, "agreed_error", lambda error: log.append("barrier") or error)
    monkeypatch.setattr(training, "check_folder", lambda run, real=training.check_folder: log.append(
        f"check {int(run.folder.writer is False)}") or real(run))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with _locked_and_checked(resolve(_user_config(None, cfg))) as first:
        pass
    assert log == ["check 0", "barrier", "barrier"]
    aside = sorted(p.name.rsplit("-", 1)[0] for p in (out / "incomplete").iterdir())
    assert first.resume_from == out / "checkpoint-2" and aside == ["checkpoint-4", "checkpoint-6"]

    log.clear()
    monkeypatch.setenv("RANK", "1")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with _locked_and_checked(resolve(_user_config(None, cfg))) as second:
        pass
    assert log == ["barrier", "check 1", "barrier"]
    assert second.resume_from == first.resume_from and second.config == first.config
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(*args: str, timeout: float = 150) -> list[tuple[int, list[str]]]:
    """`budgetreason train ...` as two trainer processes of one torch.distributed group (gloo on the CPU,
    the environment torchrun / accelerate launch set): each one's exit code and stderr lines."""
    from tests.conftest import ROOT

    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "train", *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=os.environ | {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "COLUMNS": "200"})
             for r in (0, 1)]
    try:
        done = []
        for p in procs:
            _, err = p.communicate(timeout=timeout)  # a rank left waiting in a collective fails here
            done.append((p.returncode, [x for x in err.splitlines() if x.strip()]))
        return done
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _other_run(out):
    from budgetreason.train.training import _user_config, resolve

    run = resolve(_user_config(None, dict(model="tiny-arith", lora_rank=8, max_steps=1, output=str(out))))
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(run.config.to_yaml())
    return (out / "config.yaml").read_text()


def test_rank_zeros_refusal_reaches_every_rank_as_the_same_line(tmp_path):
    """Another run in the folder: rank 0's check_folder refuses; rank 1 stops with the same one line
    (exit 2) instead of waiting in a barrier rank 0 never reaches."""
    out = tmp_path / "run"
    before = _other_run(out)
    done = _two_ranks("--model", "tiny-arith", "--max-steps", "1", "--output", str(out), "--no-progress")
    assert [code for code, _ in done] == [2, 2], done
    (line0,), (line1,) = (lines for _, lines in done)
    assert line0 == line1 and "holds a different run" in line0 and "lora_rank 8 → 16" in line0
    assert (out / "config.yaml").read_text() == before and sorted(p.name for p in out.iterdir()) == [".lock",
                                                                                                      "config.yaml"]


def test_a_busy_folder_refuses_every_rank_with_the_holders_line(tmp_path):
    """Another process holds the folder's lock: rank 0 is refused (RunFolderBusy) before any check, and
    rank 1, which takes no lock, hears the same refusal."""
    holder = _hold_lock(tmp_path / "run")
    try:
        done = _two_ranks("--model", "tiny-arith", "--max-steps", "1", "--output", str(tmp_path / "run"),
                          "--no-progress")
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert [code for code, _ in done] == [2, 2], done
    (line0,), (line1,) = (lines for _, lines in done)
    assert line0 == line1 and "is in use by another run" in line0 and f"pid {holder.pid}" in line0
