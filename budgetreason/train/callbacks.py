"""TrainerCallbacks that enforce the budget and keep the run folder: TRL owns the loop, these watch it.

- BudgetCallback: deadline (stop with time left to save), checkpoints every N minutes,
  graceful stop on Ctrl-C / SIGTERM, the COMPLETE marker that makes a checkpoint count.
- MetricsCallback: one line per optimizer step in metrics.jsonl, in budgetreason's names.
- HealthCallback: the warnings users of GRPO tools ask for (no learning signal, truncation,
  memory creeping up).
- ProgressCallback: a rich progress bar with the budget, reward, length and entropy.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from transformers import TrainerCallback

from budgetreason.runs.folder import DiskFull, RunFolder, human_bytes
from budgetreason.train.budget import REFINE_AFTER, BudgetClock, Horizon, refined_steps

#: TRL's log keys → the names metrics.jsonl uses (rewards/<name>/mean becomes rewards/<name>).
RENAME = {
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "clipped_ratio",
    "completions/max_length": "completion_length_max",
    "completions/min_length": "completion_length_min",
    "completions/mean_terminated_length": "terminated_length",
}
KEEP = ("loss", "grad_norm", "learning_rate", "reward", "reward_std", "frac_reward_zero_std", "entropy", "kl",
        "num_tokens", "clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean", "rewards/unjudged")


@dataclass
class RunState:
    """What the callbacks share: the folder, the clock, and why the run stopped."""

    folder: RunFolder
    clock: BudgetClock
    save_minutes: float | None = 30.0
    stop_reason: str | None = None
    stop_requested: str | None = None
    """Set by a signal handler: 'interrupted' (Ctrl-C) or 'terminated' (SIGTERM, e.g. preemption)."""
    step_seconds: deque = field(default_factory=lambda: deque(maxlen=10))
    save_seconds: float = 30.0
    """Estimate of one checkpoint save, measured after the first one."""
    pending: dict = field(default_factory=dict)
    """Extra values (validation) to merge into the next metrics line."""
    last_step_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    model: object = None
    """The policy (PEFT model) and tokenizer, for the adapter snapshot SIGTERM takes at once."""
    tokenizer: object = None
    steps_done: int = 0
    """Optimizer steps whose updates the weights in `model` hold (set under `weights_lock`)."""
    weights_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held from just before to just after each optimizer step, so the SIGTERM snapshot copies one
    step's weights, never half an update, and knows which step they are."""
    epochs: int | None = None
    """num_train_epochs: stop after this many passes over the training prompts (None: no limit)."""
    save_total_limit: int | None = None
    checkpoint_bytes: int | None = None
    """Size of one checkpoint: measured from the last one, estimated from the LoRA parameters before it."""
    console: object = None

    def typical_step(self) -> float:
        return max(self.step_seconds) if self.step_seconds else 0.0


#: Why a run stops, as the number rank 0 broadcasts to the other trainer processes.
STOP_REASONS = (None, "deadline", "interrupted", "terminated")


class BudgetCallback(TrainerCallback):
    """Stops before the deadline with time left to save; saves every N minutes; marks checkpoints complete."""

    def __init__(self, run: RunState, margin: float = 1.2):
        self.run = run
        self.margin = margin
        self._step_start = None
        self._last_save = time.monotonic()
        self._save_started = None
        self._saved_step = None

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        self._last_save = time.monotonic()
        self.run.model, self.run.tokenizer, self.run.steps_done = model, processing_class, state.global_step
        self.run.checkpoint_bytes = self.run.folder.checkpoint_bytes()
        if self.run.checkpoint_bytes is None and model is not None:
            # LoRA weights (fp32) plus Adam's two moments, plus tokenizer, RNG and trainer state.
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            self.run.checkpoint_bytes = 12 * trainable + 2**20
        self._warned_disk = False

    def on_step_begin(self, args, state, control, **kw):
        self._step_start = time.monotonic()

    def on_pre_optimizer_step(self, args, state, control, **kw):
        self.run.weights_lock.acquire()

    def on_optimizer_step(self, args, state, control, **kw):
        self.run.steps_done = state.global_step + 1  # transformers counts the step just after this call
        self.run.weights_lock.release()

    def on_step_end(self, args, state, control, **kw):
        if self._step_start is not None:
            dt = time.monotonic() - self._step_start
            self.run.step_seconds.append(dt)
            self.run.last_step_seconds = dt
        self.run.steps_done = state.global_step
        remaining, reason = self.run.clock.remaining_s(), None
        if remaining is not None:
            # Another step would end after the deadline, leaving no time to save: stop now.
            need = self.run.typical_step() * self.margin + self.run.save_seconds
            if remaining < need:
                reason = "deadline"
        reason = reason or self.run.stop_requested
        reason = self._agreed(reason)
        if reason:
            self._stop(control, reason)
        if self.run.save_minutes and time.monotonic() - self._last_save >= 60 * self.run.save_minutes:
            control.should_save = True
        if control.should_save:
            self._check_disk(state.global_step)
            self._save_started = time.monotonic()
        return control

    def _check_disk(self, step: int) -> None:
        """Refuse a save the disk cannot hold (before half a checkpoint is written); warn when two more won't fit."""
        need = self.run.checkpoint_bytes
        if not need:
            return
        free = shutil.disk_usage(self.run.folder.path).free
        if free < need:
            raise DiskFull(disk_full_message(self.run.folder, free, need))
        if free < 2 * need and not getattr(self, "_warned_disk", False):
            self._warned_disk = True
            msg = (f"disk nearly full at {self.run.folder.path}: {human_bytes(free)} free, a checkpoint needs "
                   f"{human_bytes(need)}; free space or lower save_total_limit before the next save")
            self.run.warnings.append(msg)
            self.run.folder.event("warning", msg, step=step, warning="disk")
            if self.run.console is not None:
                self.run.console.print(f"[yellow]warning (step {step}):[/] {msg}")

    @staticmethod
    def _agreed(reason: str | None) -> str | None:
        """Several trainer processes: rank 0's clock and stop request decide for all, so no rank waits
        in a collective for a step the others never take. A single process keeps its own `reason`."""
        from budgetreason.runs.ranks import from_main, world_size

        if world_size() <= 1:
            return reason
        return STOP_REASONS[from_main(STOP_REASONS.index(reason) if reason in STOP_REASONS else 0)]

    def _stop(self, control, reason: str) -> None:
        if self.run.stop_reason is None:
            self.run.stop_reason = reason
        control.should_training_stop = True
        control.should_save = True

    def on_epoch_end(self, args, state, control, **kw):
        """A full pass over the training prompts is an event (a time budget may loop over a small dataset
        many times); num_train_epochs ends the run there, as end_of_data.

        transformers calls this also when a stop cut the pass short; its epoch counter (batches done /
        batches per pass) is then not a whole number, and nothing is recorded."""
        passes = state.epoch or 0.0
        if passes < 1 or abs(passes - round(passes)) > 1e-6:
            return control
        n, limit = round(passes), self.run.epochs
        last = limit is not None and n >= limit
        self.run.folder.event("epoch", f"finished pass {n} over the training prompts"
                              + (f" (num_train_epochs {limit}): stopping" if last else ""),
                              step=state.global_step, epoch=n)
        if last:
            if self.run.stop_reason is None:
                self.run.stop_reason = "end_of_data"
            control.should_training_stop = True
            control.should_save = control.should_save or self._saved_step != state.global_step
        return control

    def on_save(self, args, state, control, **kw):
        self._saved_step = state.global_step
        ckpt = self.run.folder.path / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            self.run.folder.mark_complete(ckpt, {"step": state.global_step, "elapsed_s": self.run.clock.elapsed()})
            self.run.checkpoint_bytes = self.run.folder.checkpoint_bytes() or self.run.checkpoint_bytes
        self.run.folder.prune_set_aside(self.run.save_total_limit)
        now = time.monotonic()
        if self._save_started is not None:
            self.run.save_seconds = max(5.0, now - self._save_started)
            self._save_started = None
        self._last_save = now


class ScheduleCallback(TrainerCallback):
    """Sets a time-only horizon once: after REFINE_AFTER measured steps, from the median step time.

    Runs after BudgetCallback (which records the step time). The horizon is written to the run
    folder, so a resumed run keeps it; horizons from steps or a recipe are final from the start.
    """

    def __init__(self, run: RunState, horizon: Horizon, path, reserve: float = 0.0):
        self.run, self.horizon, self.path = run, horizon, path
        self.reserve = reserve
        """Share of the remaining time kept for work outside the measured steps (validation)."""

    def on_step_end(self, args, state, control, **kw):
        h, remaining = self.horizon, self.run.clock.remaining_s()
        if h.final or remaining is None or len(self.run.step_seconds) < REFINE_AFTER:
            return control
        before = h.steps
        from budgetreason.runs.ranks import from_main

        # rank 0's measurement sets the horizon on every rank: the LR must be the same on all of them
        h.steps = from_main(refined_steps(state.global_step, remaining * (1 - self.reserve), list(self.run.step_seconds)))
        h.source, h.final, h.set_at_step = "measured", True, state.global_step
        self.run.folder.write_json(self.path, h.to_dict())
        self.run.folder.event("schedule", f"horizon {before} → {h.steps} steps from the measured step time",
                              step=state.global_step, horizon=h.steps)
        return control


def disk_full_message(folder: RunFolder, free: int, need: int) -> str:
    last = folder.latest_complete_checkpoint()
    return (f"disk full at {folder.path}: {human_bytes(free)} free, a checkpoint needs {human_bytes(need)}; the last "
            f"good checkpoint is {last.name if last else 'none (nothing saved yet)'}. Free space, then re-run the "
            "same command to resume.")


class MetricsCallback(TrainerCallback):
    """Appends one JSON object per optimizer step to metrics.jsonl."""

    def __init__(self, run: RunState, reward_names: list[str]):
        self.run = run
        self.reward_names = reward_names
        rows = run.folder.read_metrics()
        self.last_step = max((r.get("step", 0) for r in rows), default=0)
        self._cuda = None

    def _gpu_peak_gib(self) -> float | None:
        import torch

        if self._cuda is None:
            self._cuda = torch.cuda.is_available()
        if not self._cuda:
            return None
        peak = torch.cuda.max_memory_reserved() / 1024**3
        torch.cuda.reset_peak_memory_stats()
        return round(peak, 3)

    def record(self, logs: dict, step: int) -> dict:
        rec = {"step": step, "elapsed_s": round(self.run.clock.elapsed(), 2),
               "step_seconds": round(self.run.last_step_seconds, 3)}
        for k in KEEP:
            if k in logs:
                rec[k] = logs[k]
        for k, v in RENAME.items():
            if k in logs:
                rec[v] = logs[k]
        for name in self.reward_names:
            key = f"rewards/{name}/mean"
            if key in logs:
                rec[f"rewards/{name}"] = logs[key]
                rec[f"rewards/{name}/std"] = logs.get(f"rewards/{name}/std")
        rec.setdefault("kl", logs.get("kl", 0.0))
        rec["budget_fraction"] = round(self.run.clock.fraction(step), 4)
        peak = self._gpu_peak_gib()
        if peak is not None:
            rec["peak_gpu_mem_gib"] = peak
        rec.update(self.run.pending)
        self.run.pending = {}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        step = state.global_step
        if "reward" not in logs or step <= self.last_step:
            return
        rec = self.record(logs, step)
        if self.run.folder.writer:  # one line per step: rank 0 writes it
            with self.run.folder.metrics.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        self.last_step = step


class HealthCallback(TrainerCallback):
    """Warns once per kind: no learning signal, truncated completions, GPU memory creeping up."""

    def __init__(self, run: RunState, console=None, zero_std_steps: int = 20, truncated_steps: int = 5):
        self.run = run
        self.console = console
        self.zero_std = deque(maxlen=zero_std_steps)
        self.clipped = deque(maxlen=truncated_steps)
        self.memory = deque(maxlen=10)
        self.warned: set[str] = set()

    def warn(self, kind: str, message: str, step: int) -> None:
        if kind in self.warned:
            return
        self.warned.add(kind)
        self.run.warnings.append(message)
        self.run.folder.event("warning", message, step=step, warning=kind)
        if self.console is not None:
            self.console.print(f"[yellow]warning (step {step}):[/] {message}")

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "reward" not in logs:
            return
        step = state.global_step
        if "frac_reward_zero_std" in logs:
            self.zero_std.append(logs["frac_reward_zero_std"])
            if len(self.zero_std) == self.zero_std.maxlen and min(self.zero_std) >= 0.95:
                self.warn("no_signal", f"no learning signal: in {self.zero_std.maxlen} steps nearly every group's "
                          "rewards were identical (frac_reward_zero_std >= 0.95). A cold start, a reward that cannot "
                          "parse the answers, or a format the model never hits; check a few completions.", step)
        if "completions/clipped_ratio" in logs:
            self.clipped.append(logs["completions/clipped_ratio"])
            if len(self.clipped) == self.clipped.maxlen and min(self.clipped) > 0.5:
                self.warn("truncated", f"most completions hit max_completion_length for {self.clipped.maxlen} steps "
                          "(clipped_ratio > 0.5): answers are cut off before the box; raise --max-completion or "
                          "consider mask_truncated_completions.", step)
        mem = self._allocated()
        if mem is not None:
            self.memory.append(mem)
            if len(self.memory) == self.memory.maxlen:
                m = list(self.memory)
                if all(b >= a for a, b in zip(m, m[1:])) and m[-1] > 1.05 * m[0]:
                    self.warn("memory_creep", f"GPU memory grew every step for {len(m)} steps "
                              f"({m[0]:.2f} → {m[-1]:.2f} GiB allocated): a leak would end in an out-of-memory error.",
                              step)

    @staticmethod
    def _allocated() -> float | None:
        import torch

        return torch.cuda.memory_allocated() / 1024**3 if torch.cuda.is_available() else None


class ProgressCallback(TrainerCallback):
    """A rich progress bar: step, budget used and left, reward, completion length, entropy."""

    def __init__(self, run: RunState, total_steps: int | None, console=None):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.run = run
        self.total = total_steps
        self.progress = Progress(
            TextColumn("[bold]step {task.fields[step]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}% of budget"),
            TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console, transient=False,
        )
        self.task = None

    def on_train_begin(self, args, state, control, **kw):
        self.progress.start()
        self.task = self.progress.add_task("train", total=100, step=state.global_step, status="generating…",
                                           completed=100 * self.run.clock.fraction(state.global_step))

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if self.task is None or "reward" not in logs:
            return
        left = self.run.clock.remaining_s()
        status = (f"reward {logs['reward']:.3f}  len {logs.get('completions/mean_length', 0):.0f}  "
                  f"train entropy {logs.get('entropy', float('nan')):.3f}")
        if left is not None:
            status += f"  left {max(0, left) / 60:.1f} min"
        self.progress.update(self.task, completed=100 * self.run.clock.fraction(state.global_step),
                             step=state.global_step, status=status)

    def on_train_end(self, args, state, control, **kw):
        self.progress.stop()


class GracefulStop:
    """Ctrl-C and SIGTERM ask the run to stop after the current step and save; a second Ctrl-C stops at once.

    SIGTERM usually comes with a short grace period before SIGKILL (``docker stop``: 10 s), far
    less than a GRPO step, so it also saves the adapter as of the last completed optimizer step into
    adapter/ at once, in a thread (a LoRA adapter takes a second or two; see save_adapter_snapshot). The optimizer state is
    not saved then: the resume point stays the last complete checkpoint.
    """

    def __init__(self, run: RunState, console=None):
        self.run = run
        self.console = console
        self._old = {}
        self._snapshot = None

    def _handler(self, signum, frame):
        if self.run.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.run.stop_requested = "interrupted" if signum == signal.SIGINT else "terminated"
        if signum == signal.SIGTERM and self._snapshot is None and self.run.model is not None:
            import threading

            self._snapshot = threading.Thread(target=save_adapter_snapshot, args=(self.run,), name="sigterm-save")
            self._snapshot.start()
        if self.console is not None:
            self.console.print("[yellow]stopping after this step and saving a checkpoint "
                               "(Ctrl-C again to stop at once)…[/]")

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._snapshot is not None:
            self._snapshot.join(timeout=120)  # before the final adapter save replaces adapter/
        return False


def save_adapter_snapshot(run: RunState, lock_timeout_s: float = 60.0) -> None:
    """adapter/ ← the policy's LoRA weights of one step, with an event.

    The trainable tensors are copied to the CPU under `run.weights_lock` (an optimizer step in flight
    finishes first; LoRA weights copy in well under a second) and written from the copy while
    training goes on, so adapter/ and SNAPSHOT.json name the same step."""
    folder = run.folder
    if not folder.writer:  # rank 0 saves the snapshot into the run folder
        return
    last = folder.latest_complete_checkpoint()
    step = run.steps_done
    try:
        if not run.weights_lock.acquire(timeout=lock_timeout_s):
            raise TimeoutError(f"the optimizer step in flight did not end within {lock_timeout_s:.0f} s")
        try:
            step = run.steps_done
            weights = {n: p.detach().to("cpu", copy=True) for n, p in run.model.named_parameters() if p.requires_grad}
        finally:
            run.weights_lock.release()
        tmp = folder.path / "adapter.snapshot.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run.model.save_pretrained(str(tmp), state_dict=weights)  # PEFT picks the adapter's keys from the copy
        if run.tokenizer is not None:
            run.tokenizer.save_pretrained(str(tmp))
        (tmp / "SNAPSHOT.json").write_text(json.dumps({"step": step, "why": "SIGTERM", "time": time.time()}))
        folder.install_adapter(tmp)
        folder.event("terminated", f"SIGTERM: saved the adapter of step {step} in adapter/; training resumes "
                     f"from {last.name if last else 'the start'} (later steps are trained again)", step=step)
    except Exception as e:  # a snapshot is a bonus; never let it mask the stop
        folder.event("terminated", f"SIGTERM: could not save the adapter ({type(e).__name__}: {e})", step=step)
