"""What users do to runs: two starts on one folder, corrupt checkpoints, re-running a finished run,
config and data mistakes, a full disk. Real tiny-model training through the CLI and TRL."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from budgetreason.runs.folder import LOCK as LOCK_NAME
from budgetreason.runs.folder import RunFolder, verify_checkpoint
from tests.conftest import ROOT, run_cli

#: A small shape (2 prompts × 4 completions per step) keeps each CPU step short.
SMALL = ("--model", "tiny-arith", "--batch", "8", "--k", "4", "--no-progress")


def metrics_steps(out: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


def events(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines() if x.strip()]


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# ---- 1. the run-folder lock ---------------------------------------------------------------------------
def test_second_run_on_a_folder_is_refused_naming_the_holder_and_steps_are_written_once(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cli.main", "train", *SMALL, "--max-steps", "3", "--output", str(out)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while RunFolder(out).holder() is None:
        assert first.poll() is None, first.stderr.read()[-2000:]
        assert time.time() < deadline
        time.sleep(0.1)
    second = run_cli("train", *SMALL, "--max-steps", "3", "--output", str(out))
    assert first.poll() is None  # the refusal did not wait for the first run
    line = one_line(second.stderr)
    assert second.returncode == 2
    assert "in use by another run" in line and f"pid {first.pid}" in line and socket.gethostname() in line
    assert "--wait" in line
    first.wait(timeout=600)
    assert first.returncode == 0, first.stderr.read()[-2000:]
    assert metrics_steps(out) == [1, 2, 3]
    assert RunFolder(out).holder() is None  # released at the end


_HOLD = """
import sys, time
from budgetreason.runs.folder import RunFolder
with RunFolder(sys.argv[1]).locked(wait=len(sys.argv) > 2):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_lock_dies_with_a_killed_holder_and_wait_queues_behind_a_live_one(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert RunFolder(out).holder()["pid"] == holder.pid
    waiter = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), "wait"], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        time.sleep(2.0)
        assert waiter.poll() is None and RunFolder(out).holder()["pid"] == holder.pid  # still queued
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the lock
        holder.wait()
        assert waiter.stdout.readline().strip() == "locked"
        assert RunFolder(out).holder()["pid"] == waiter.pid
    finally:
        waiter.kill()
        waiter.wait()
    assert RunFolder(out).holder() is None  # no stale lock after SIGKILL either
    with RunFolder(out).locked():
        pass


# ---- 2 and 3. corrupt checkpoints, finished runs -------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    """A run that reached --max-steps 4 with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("finished") / "run"
    args = (*SMALL, "--max-steps", "4", "--save-steps", "2", "--output", str(out))
    r = run_cli("train", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, args


def _copy(finished_run, tmp_path) -> tuple[Path, list[str]]:
    src, args = finished_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return out, [a if a != str(src) else str(out) for a in args]


def test_checkpoints_carry_a_manifest_that_verifies(finished_run):
    out, _ = finished_run
    for ckpt in RunFolder(out).checkpoints():
        files = json.loads((ckpt / "COMPLETE").read_text())["files"]
        assert {"adapter_model.safetensors", "optimizer.pt", "budget_state.json"} <= set(files)
        assert all(f["bytes"] == (ckpt / name).stat().st_size for name, f in files.items())
        assert verify_checkpoint(ckpt) is None
        # what the resume reads, nothing more (the metrics line count was written and never read)
        assert set(json.loads((ckpt / "budget_state.json").read_text())) == {"step", "elapsed_s"}


@pytest.mark.parametrize("victim", ["adapter_model.safetensors", "optimizer.pt", "budget_state.json"])
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(finished_run, tmp_path, victim):
    from budgetreason.train.training import _user_config, check_folder, resolve

    out, _ = _copy(finished_run, tmp_path)
    path = out / "checkpoint-4" / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert victim in verify_checkpoint(out / "checkpoint-4")
    run = check_folder(resolve(_user_config(None, dict(model="tiny-arith", per_device_train_batch_size=8,
                                                       num_generations=4, max_steps=4, save_steps=2,
                                                       output=str(out)))))
    assert run.resume_from == out / "checkpoint-2" and run.finished is None
    assert not (out / "checkpoint-4").exists()
    assert [p.name.rsplit("-", 1)[0] for p in (out / "incomplete").iterdir()] == ["checkpoint-4"]
    bad = [e for e in events(out) if e["kind"] == "corrupt_checkpoint"]
    assert len(bad) == 1 and victim in bad[0]["message"] and bad[0]["step"] == 4
    assert any("resuming from checkpoint-2" in n and victim in n for n in run.notes)


def test_rerun_with_a_truncated_optimizer_resumes_from_the_previous_checkpoint(finished_run, tmp_path):
    out, args = _copy(finished_run, tmp_path)
    opt = out / "checkpoint-4" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:1000])
    r = run_cli("train", *args)
    assert r.returncode == 0, r.stderr[-3000:]  # before: a 50-line traceback from torch.load, on every re-run
    said = [x for x in r.stderr.splitlines() if "failed verification" in x]
    assert len(said) == 1 and "optimizer.pt" in said[0] and "resuming from checkpoint-2" in said[0]
    assert metrics_steps(out) == [1, 2, 3, 4]
    assert verify_checkpoint(out / "checkpoint-4") is None  # step 4 trained and saved again


def test_an_adapter_swap_cut_short_by_a_kill_is_finished_on_the_next_start_or_save(finished_run, tmp_path):
    """install_adapter renames adapter/ aside, the new one in, then deletes the old. A kill between the
    renames leaves no adapter/: the next start puts the last good one back. A kill before the delete
    leaves adapter.prev-*: the next start (or save) deletes them."""
    from budgetreason.train.training import _user_config, check_folder, resolve

    out, _ = _copy(finished_run, tmp_path)
    good = _tensors(out / "adapter")
    shutil.copytree(out / "adapter", out / "adapter.prev-100")  # an older swap's leftover
    (out / "adapter").rename(out / "adapter.prev-200")  # killed between the two renames
    run = check_folder(resolve(_user_config(None, dict(model="tiny-arith", per_device_train_batch_size=8,
                                                       num_generations=4, max_steps=4, save_steps=2,
                                                       output=str(out)))))
    assert run.finished is not None and _tensors(out / "adapter") == good
    assert not list(out.glob("adapter.prev-*"))

    folder = RunFolder(out)
    shutil.copytree(out / "checkpoint-2", out / "adapter.tmp")  # a new adapter, written beside
    shutil.copytree(out / "adapter", out / "adapter.prev-300")  # killed before the delete, earlier
    folder.install_adapter(out / "adapter.tmp")
    assert _tensors(out / "adapter") == _tensors(out / "checkpoint-2") != good
    assert sorted(p.name for p in out.glob("adapter*")) == ["adapter"]


def test_rerunning_a_finished_run_leaves_it_untouched(finished_run, tmp_path):
    out, args = _copy(finished_run, tmp_path)
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    before = sorted(p.name for p in out.iterdir())
    metrics_before = (out / "metrics.jsonl").read_text()
    r = run_cli("train", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "already finished at step 4 (max_steps); nothing to do" in r.stdout
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert sorted(p.name for p in out.iterdir()) == before  # no checkpoint-5
    assert (out / "metrics.jsonl").read_text() == metrics_before


def test_a_larger_budget_continues_a_finished_run_and_says_so(finished_run, tmp_path):
    from budgetreason.train.training import _user_config, check_folder, resolve

    out, _ = _copy(finished_run, tmp_path)
    base = dict(model="tiny-arith", per_device_train_batch_size=8, num_generations=4, save_steps=2, output=str(out))
    same = check_folder(resolve(_user_config(None, dict(base, max_steps=4))))
    assert same.finished is not None and same.finished.steps == 4 and same.finished.stop_reason == "max_steps"
    fewer = check_folder(resolve(_user_config(None, dict(base, max_steps=3))))
    assert fewer.finished is not None and fewer.finished.steps == 4
    more = check_folder(resolve(_user_config(None, dict(base, max_steps=6))))
    assert more.finished is None and more.resume_from == out / "checkpoint-4"
    assert any("continuing the run that finished at step 4 (max_steps) up to --max-steps 6" in n for n in more.notes)


# ---- 5. config mistakes --------------------------------------------------------------------------------
@pytest.mark.parametrize("text,needles", [
    ("model: tiny-arith\nlora_rank: \"abc\"\n", ["lora_rank", "'abc'", "whole number", "line 2"]),
    ("model: tiny-arith\nmax_steps: 2\nprogress: maybe\n", ["progress", "'maybe'", "true or false", "line 3"]),
    ("model: tiny-arith\nlora_rank: [8\n", ["not valid YAML", "line 3"]),
    ("model: tiny-arith\nextra:\n  num_iteratoins: 2\n", ["extra", "num_iteratoins", "num_iterations"]),
])
def test_config_file_mistakes_are_one_line_exit_2_before_anything_is_written(tmp_path, text, needles):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    out = tmp_path / "run"
    r = run_cli("train", "--config", str(cfg), "--max-steps", "1", "--output", str(out))
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-2000:])
    line = one_line(r.stderr)
    for needle in needles:
        assert needle in line, line
    assert not (out / "config.yaml").exists()


def test_yaml_exponent_without_a_dot_is_a_float(tmp_path):
    from budgetreason.train.config import RunConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: tiny-arith\nlearning_rate: 1e-3\nbudget_hours: 2\n")
    loaded = RunConfig.from_yaml(cfg)
    assert loaded.learning_rate == 0.001 and isinstance(loaded.learning_rate, float)
    assert loaded.budget_hours == 2.0


# ---- 5, 6 and 7. data mistakes -------------------------------------------------------------------------
def _rows(n: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"problem": f"What is {i} + {i}?", "result": str(2 * i)}).encode() + b"\n"
            for i in range(start, start + n)]


@pytest.mark.parametrize("content,needle", [
    (b"", "has no rows"),
    (b"\n\n", "has no rows"),
    (b"".join(_rows(1)), "1 training rows, but one optimizer step needs 2 prompts"),
])
def test_empty_and_too_small_datasets_are_refused_in_one_line(tmp_path, content, needle):
    data = tmp_path / "d.jsonl"
    data.write_bytes(content)
    out = tmp_path / "run"
    r = run_cli("train", *SMALL, "--dataset", str(data), "--answer-column", "result", "--max-steps", "1",
                "--output", str(out))
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-2000:])
    assert needle in one_line(r.stderr)
    assert RunFolder(out).is_empty()  # nothing written but the lock file


def test_a_failed_start_leaves_no_run_behind_and_a_non_utf8_row_is_skipped_and_counted(tmp_path):
    data = tmp_path / "d.jsonl"
    rows = _rows(6)
    rows.insert(3, b'{"problem": "What is caf\xe9 + 1?", "result": "2"}\n')  # Latin-1, not UTF-8
    data.write_bytes(b"".join(rows))
    out = tmp_path / "run"
    common = (*SMALL, "--dataset", str(data), "--max-steps", "1", "--output", str(out))
    r = run_cli("train", *common)  # the file has `result`, not `answer`
    assert r.returncode == 2 and "--answer-column" in one_line(r.stderr)
    assert not (out / "config.yaml").exists()
    r = run_cli("train", *common, "--answer-column", "result")  # the fix the message suggests, same --output
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped 1 row(s) that are not UTF-8 text (line 4)" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and "6 train" in summary["data"] and "1 rows not UTF-8" in summary["data"]
    assert any("line 4" in e["message"] for e in events(out) if e["kind"] == "data")


# ---- 4. a full disk ------------------------------------------------------------------------------------
def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_a_save_on_a_full_disk_stops_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """On a small tmpfs when the test may mount one (root), else with a writer that raises ENOSPC."""
    import errno

    import torch
    from transformers import TrainerCallback

    from budgetreason.errors import BudgetError
    from budgetreason.train.training import train

    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "12m")
    filler = disk / "filler.bin"
    real_save = torch.save

    class FillTheDisk(TrainerCallback):
        """At step 4, after budgetreason's free-space check and before TRL saves checkpoint-4."""

        def on_step_end(self, args, state, control, **kw):
            if state.global_step != 4 or filler.exists():
                return
            if mounted:
                filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 300_000))
            else:
                filler.write_bytes(b"")

                def no_space(*a, **k):
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(torch, "save", no_space)

    out = disk / "run"
    settings = dict(model="tiny-arith", per_device_train_batch_size=8, num_generations=4, max_steps=4, save_steps=2,
                    output=str(out), progress=False)
    try:
        with pytest.raises(BudgetError) as e:
            train(**settings, callbacks=[FillTheDisk()])
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"disk full at {out}: ")
        assert "free, a checkpoint needs" in msg and "the last good checkpoint is checkpoint-2" in msg
        folder = RunFolder(out)
        assert [p.name for p in folder.checkpoints()] == ["checkpoint-2"]  # the partial checkpoint-4 is gone
        assert not folder.incomplete.exists() and verify_checkpoint(out / "checkpoint-2") is None
        full = [ev for ev in events(out) if ev["kind"] == "disk_full"]
        assert len(full) == 1 and full[0]["deleted"] == ["checkpoint-4"] and full[0]["step"] == 4
        # space freed: the same call resumes from checkpoint-2 (before: Errno 28 on config.yaml.tmp)
        filler.unlink()
        monkeypatch.setattr(torch, "save", real_save)
        result = train(**settings)
        assert result.steps == 4 and metrics_steps(out) == [1, 2, 3, 4]
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


def test_the_free_space_check_refuses_a_save_that_cannot_fit_before_writing_it(tmp_path):
    from transformers import TrainerControl, TrainerState

    from budgetreason.runs.folder import DiskFull
    from budgetreason.train.budget import BudgetClock
    from budgetreason.train.callbacks import BudgetCallback, RunState

    folder = RunFolder(tmp_path / "run")
    (folder.path / "checkpoint-2").mkdir(parents=True)
    folder.mark_complete(folder.path / "checkpoint-2", {"step": 2, "elapsed_s": 1.0})
    free = shutil.disk_usage(tmp_path).free
    state = RunState(folder=folder, clock=BudgetClock(budget_s=None, max_steps=10), checkpoint_bytes=free * 2)
    control = TrainerControl(should_save=True)
    with pytest.raises(DiskFull, match=r"the last good checkpoint is checkpoint-2") as e:
        BudgetCallback(state).on_step_end(None, TrainerState(global_step=3), control)
    assert str(e.value).startswith(f"disk full at {folder.path}: ") and "GB" in str(e.value)
    assert [p.name for p in folder.checkpoints()] == ["checkpoint-2"]


def test_set_aside_checkpoints_count_toward_save_total_limit(tmp_path):
    folder = RunFolder(tmp_path / "run")
    for step in (2, 4, 6):
        (folder.path / f"checkpoint-{step}").mkdir(parents=True)
        folder.mark_complete(folder.path / f"checkpoint-{step}", {"step": step})
    for i, name in enumerate(["checkpoint-1-100", "checkpoint-3-200"]):
        (folder.incomplete / name).mkdir(parents=True)
        (folder.incomplete / name / "optimizer.pt").write_bytes(b"x" * 10)
        os.utime(folder.incomplete / name, (1000 + i, 1000 + i))
    removed = folder.prune_set_aside(limit=4)
    assert [p.name for p in removed] == ["checkpoint-1-100"]
    assert [p.name for p in folder.incomplete.iterdir()] == ["checkpoint-3-200"]
    assert len(folder.checkpoints()) == 3  # complete ones are TRL's to rotate



def test_set_asides_within_one_second_keep_every_copy(tmp_path, monkeypatch):
    """Names carry the second: --overwrite twice (or a checkpoint set aside twice) in one second gets a
    second folder (-1), not a FileExistsError traceback or one copy moved inside the other."""
    import budgetreason.runs.folder as runfolder

    monkeypatch.setattr(runfolder.time, "strftime", lambda fmt, *a: "20261201-120000")  # one frozen second
    monkeypatch.setattr(runfolder.time, "time", lambda: 1764590400.0)
    folder = RunFolder(tmp_path / "run", writer=True)
    moved = []
    for i in range(3):
        folder.path.mkdir(exist_ok=True)
        folder.config.write_text(f"seed: {i}\n")
        (folder.path / LOCK_NAME).write_text("")
        moved.append(folder.move_aside())
    assert [p.name for p in moved] == ["run.old-20261201-120000", "run.old-20261201-120000-1",
                                       "run.old-20261201-120000-2"]
    assert [(p / "config.yaml").read_text() for p in moved] == ["seed: 0\n", "seed: 1\n", "seed: 2\n"]
    assert sorted(p.name for p in folder.path.iterdir()) == [LOCK_NAME]  # the lock stays with the folder

    aside = []
    for i in range(2):
        (folder.path / "checkpoint-6").mkdir()
        (folder.path / "checkpoint-6" / "optimizer.pt").write_bytes(b"x" * (i + 1))
        aside.append(folder.set_aside(folder.path / "checkpoint-6"))
    assert [p.name for p in aside] == ["checkpoint-6-1764590400", "checkpoint-6-1764590400-1"]
    assert [sorted(q.name for q in p.iterdir()) for p in aside] == [["optimizer.pt"], ["optimizer.pt"]]
    assert [(p / "optimizer.pt").read_bytes() for p in aside] == [b"x", b"xx"]


# ---- 9. the vast.ai on-start script and docker stop ----------------------------------------------------
SCRIPT = ROOT / "colab" / "vastai_onstart.sh"


def _onstart(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the on-start script with a stand-in `budgetreason` that records its arguments."""
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "budgetreason"
    fake.write_text('#!/bin/sh\necho "$@" > "$BR_WORKDIR/args.txt"\n')
    fake.chmod(0o755)
    full = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", BR_WORKDIR=str(work), BR_SKIP_INSTALL="1", BR_SKIP_DOCTOR="1",
                BR_PYTHON=sys.executable, PYTHONPATH=str(ROOT), **env)
    for k in ("BR_MODEL", "BR_DATASET", "BR_HOURS", "BR_CONFIG", "BR_GPU", "BR_MAX_STEPS", "BR_OUTPUT"):
        if k not in env:
            full.pop(k, None)
    r = subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=120)
    return r, work


def _recorded_args(work: Path) -> list[str]:
    deadline = time.time() + 60
    while not (work / "args.txt").is_file() or not (work / "args.txt").read_text():
        assert time.time() < deadline
        time.sleep(0.1)
    return (work / "args.txt").read_text().split()


def test_onstart_honours_br_config_instead_of_its_own_defaults(tmp_path):
    r, work = _onstart(tmp_path, BR_CONFIG="tina-open-rs2")
    assert r.returncode == 0, r.stderr
    args = _recorded_args(work)
    assert args[:3] == ["train", "--config", "tina-open-rs2"]
    assert "--model" not in args and "--hours" not in args and "--dataset" not in args  # the recipe decides
    assert args[args.index("--output") + 1] == str(work / "runs" / "tina-open-rs2")
    r, work = _onstart(tmp_path / "b", BR_CONFIG="tina-open-rs2", BR_HOURS="2")
    args = _recorded_args(work)
    assert args[args.index("--hours") + 1] == "2" and "--model" not in args


def test_onstart_resumes_despite_a_stale_pid_file_and_not_while_the_run_folder_is_locked(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    unrelated = subprocess.Popen(["sleep", "120"])
    (work / "train.pid").write_text(str(unrelated.pid))  # after a restart, an unrelated process has the old PID
    try:
        r, work = _onstart(tmp_path)
    finally:
        unrelated.kill()
        unrelated.wait()
    assert r.returncode == 0, r.stderr
    assert "training in the background" in r.stdout and "already running" not in r.stdout
    args = _recorded_args(work)
    output = Path(args[args.index("--output") + 1])
    assert output == work / "runs" / "qwen2.5-1.5b-instruct-open-rs" and "--hours" in args
    (work / "args.txt").unlink()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(output)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r, work = _onstart(tmp_path)
        assert r.returncode == 0 and "training already running" in r.stdout and f"pid {holder.pid}" in r.stdout
        time.sleep(1.0)
        assert not (work / "args.txt").exists()  # nothing started
    finally:
        holder.kill()
        holder.wait()


_SLOW_STEP = """
import sys, time
from pathlib import Path
from transformers import TrainerCallback
from budgetreason.train.training import train

class SlowStep(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == 2:  # step 3 takes minutes, as a long GRPO generation does
            Path(sys.argv[2]).write_text("slow")
            time.sleep(600)

train(model="tiny-arith", per_device_train_batch_size=8, num_generations=4, max_steps=6, save_steps=2,
      output=sys.argv[1], progress=False, callbacks=[SlowStep()])
"""


def _sigterm_once_marked(script: str, out: Path, marker: Path) -> list[dict]:
    """Run `script` (a training run into `out`), SIGTERM it once it writes `marker`, SIGKILL it 10 s later as
    docker stop does; the run's 'terminated' events."""
    import signal

    proc = subprocess.Popen([sys.executable, "-c", script, str(out), str(marker)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    grace = time.time() + 10
    while time.time() < grace and not any(e["kind"] == "terminated" for e in events(out)):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    return [e for e in events(out) if e["kind"] == "terminated"]


def test_docker_stop_mid_step_saves_the_adapter_within_the_grace_period(tmp_path):
    """docker stop: SIGTERM, 10 s, SIGKILL. The step in flight cannot finish; the adapter of the last step is saved."""
    from budgetreason.train.training import _user_config, check_folder, resolve

    out, marker = tmp_path / "run", tmp_path / "slow"
    term = _sigterm_once_marked(_SLOW_STEP, out, marker)
    assert len(term) == 1 and "saved the adapter of step 2" in term[0]["message"]
    assert "resumes from checkpoint-2" in term[0]["message"]
    assert json.loads((out / "adapter" / "SNAPSHOT.json").read_text())["step"] == 2
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from budgetreason.plan.architectures import tiny_model_dir

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir()), out / "adapter")
    assert _tensors(out / "adapter") == _tensors(out / "checkpoint-2")  # the very weights of step 2
    run = check_folder(resolve(_user_config(None, dict(model="tiny-arith", per_device_train_batch_size=8,
                                                       num_generations=4, max_steps=6, save_steps=2,
                                                       output=str(out)))))
    assert run.resume_from == out / "checkpoint-2" and run.finished is None  # the resume point is unchanged


def _tensors(folder: Path) -> dict:
    """An adapter folder's LoRA tensors as lists (exact comparison)."""
    from safetensors.torch import load_file

    return {k: v.tolist() for k, v in load_file(str(folder / "adapter_model.safetensors")).items()}


_AFTER_OPTIMIZER = """
import sys, time
from pathlib import Path
import torch
from peft import get_peft_model_state_dict
from transformers import TrainerCallback
from budgetreason.train.training import train

class SlowAfterOptimizer(TrainerCallback):
    def on_optimizer_step(self, args, state, control, model=None, **kw):
        if state.global_step == 2:  # step 3's update is in the weights; transformers has not counted it yet
            torch.save({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}, sys.argv[2] + ".pt")
            Path(sys.argv[2]).write_text("updated")
            time.sleep(600)

train(model="tiny-arith", per_device_train_batch_size=8, num_generations=4, max_steps=6, save_steps=2,
      output=sys.argv[1], progress=False, callbacks=[SlowAfterOptimizer()])
"""


def test_sigterm_after_an_optimizer_step_snapshots_that_steps_weights_under_its_number(tmp_path):
    """SIGTERM lands between the optimizer's update and transformers counting the step: the snapshot
    holds step 3's weights and says step 3 (not step 2's number on step 3's tensors)."""
    import torch

    out, marker = tmp_path / "run", tmp_path / "updated"
    term = _sigterm_once_marked(_AFTER_OPTIMIZER, out, marker)
    assert len(term) == 1 and "saved the adapter of step 3" in term[0]["message"], term
    assert json.loads((out / "adapter" / "SNAPSHOT.json").read_text())["step"] == 3
    step3 = {k: v.tolist() for k, v in torch.load(str(marker) + ".pt").items()}
    assert _tensors(out / "adapter") == step3 and step3 != _tensors(out / "checkpoint-2")


def test_the_snapshot_waits_for_an_optimizer_step_in_flight(tmp_path):
    """The callbacks hold the weights' lock across the optimizer step: a snapshot asked for mid-update
    copies the updated weights, labelled with the step they belong to."""
    import threading

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

    from budgetreason.plan.architectures import tiny_model_dir
    from budgetreason.train.budget import BudgetClock
    from budgetreason.train.callbacks import BudgetCallback, RunState, save_adapter_snapshot

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir()),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    folder = RunFolder(tmp_path / "run", writer=True)
    folder.path.mkdir()
    run = RunState(folder=folder, clock=BudgetClock(), model=model, steps_done=2)
    cb, state = BudgetCallback(run), TrainerState()
    state.global_step = 2
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model(input_ids=ids, labels=ids).loss.backward()

    cb.on_pre_optimizer_step(None, state, TrainerControl())  # the trainer is about to update the weights
    snapshot = threading.Thread(target=save_adapter_snapshot, args=(run,))
    snapshot.start()
    snapshot.join(timeout=1.0)
    assert snapshot.is_alive() and not (folder.path / "adapter").exists()  # waiting, nothing written
    opt.step()
    cb.on_optimizer_step(None, state, TrainerControl())
    snapshot.join(timeout=60)
    assert json.loads((folder.path / "adapter" / "SNAPSHOT.json").read_text())["step"] == 3
    from peft import get_peft_model_state_dict

    assert _tensors(folder.path / "adapter") == {k: v.tolist() for k, v in get_peft_model_state_dict(model).items()}


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    from budgetreason.runs.folder import RunFolderBusy
    from budgetreason.sweeps import sweep

    out = tmp_path / "sweep"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}"):
            sweep(["tiny-arith"], [4], output=out, max_steps_each=1)
        assert not (out / "sweep.json").exists()
    finally:
        holder.kill()
        holder.wait()
