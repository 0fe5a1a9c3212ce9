"""The run folder: the one place training writes and evaluation and reports read.

Layout::

    runs/<name>/
      config.yaml          resolved RunConfig
      plan.json            the planner's Plan.to_dict()
      metrics.jsonl        one JSON object per optimizer step
      events.jsonl         warnings, OOM retries, stops, resumes
      checkpoint-<step>/   adapter, optimizer, scheduler, RNG, trainer state, budget state;
                           complete only once COMPLETE exists (written last)
      adapter/             the final LoRA adapter (+ tokenizer)
      summary.json         how the run ended
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

COMPLETE = "COMPLETE"
BUDGET_STATE = "budget_state.json"


class RunFolder:
    """Paths and small atomic writes inside a run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # paths
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def plan(self) -> Path:
        return self.path / "plan.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    def exists(self) -> bool:
        return self.config.is_file()

    # writes
    def write_json(self, path: Path, data) -> None:
        """Write via a temporary file and rename, so a crash never leaves half a file."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)

    def write_text(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def event(self, kind: str, message: str, step: int | None = None, **extra) -> None:
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "kind": kind, "step": step, "message": message, **extra}
        with self.events.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    # checkpoints
    def checkpoints(self) -> list[Path]:
        """Checkpoint folders, oldest first, complete or not."""
        found = [p for p in self.path.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    def latest_complete_checkpoint(self) -> Path | None:
        done = [p for p in self.checkpoints() if (p / COMPLETE).is_file()]
        return done[-1] if done else None

    def set_aside_incomplete(self) -> list[Path]:
        """Move checkpoints without the COMPLETE marker out of the way (never delete)."""
        moved = []
        for p in self.checkpoints():
            if not (p / COMPLETE).is_file():
                dest = self.path / "incomplete" / f"{p.name}-{int(time.time())}"
                dest.parent.mkdir(exist_ok=True)
                shutil.move(str(p), dest)
                moved.append(dest)
        return moved

    def mark_complete(self, checkpoint: Path, state: dict) -> None:
        self.write_json(checkpoint / BUDGET_STATE, state)
        self.write_json(checkpoint / COMPLETE, {"step": state.get("step"), "time": time.time()})

    # metrics
    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        rows = []
        for line in self.metrics.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a kill mid-write
        return rows

    def truncate_metrics(self, last_step: int) -> int:
        """Keep only lines of steps ≤ last_step (steps after a checkpoint are trained again)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        self.write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))
        return len(rows)

    def move_aside(self) -> Path:
        """For --overwrite: rename the whole folder to <name>.old-<time> (nothing is lost)."""
        dest = self.path.with_name(f"{self.path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(self.path), dest)
        return dest
