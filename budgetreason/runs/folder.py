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
      .lock                held (flock) by the process training in the folder; the kernel releases it
                           when that process ends, however it ends
      incomplete/          checkpoints set aside: cut short by a kill, or failing their manifest
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.runs.ranks import is_main_process

COMPLETE = "COMPLETE"
BUDGET_STATE = "budget_state.json"
LOCK = ".lock"
#: Files up to this size are hashed whole; larger ones by size plus 32 spread 1 MiB samples,
#: which catches truncation and torn writes without reading a multi-GB optimizer state twice.
FULL_HASH_BYTES = 64 * 2**20
SAMPLE_BYTES, SAMPLES = 2**20, 32


def fast_hash(path: Path) -> str:
    """blake2b of a file (whole when small, size + spread samples when large)."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as f:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            for i in range(SAMPLES):
                f.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def manifest(folder: Path, skip: tuple[str, ...] = (COMPLETE,)) -> dict[str, dict]:
    """{relative path: {"bytes", "hash"}} of every file under `folder`."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in skip:
            out[p.relative_to(folder).as_posix()] = {"bytes": p.stat().st_size, "hash": fast_hash(p)}
    return out


def verify_checkpoint(checkpoint: Path) -> str | None:
    """None when the checkpoint matches the manifest in its COMPLETE marker, else what is wrong.

    Checkpoints written before manifests existed (a marker without "files") are trusted.
    """
    try:
        marker = json.loads((checkpoint / COMPLETE).read_text())
    except (OSError, ValueError):
        return "its COMPLETE marker is unreadable"
    files = marker.get("files") if isinstance(marker, dict) else None
    if files is None:
        return None
    for name, want in files.items():
        p = checkpoint / name
        if not p.is_file():
            return f"{name} is missing"
        size = p.stat().st_size
        if size != want["bytes"]:
            return f"{name} has {size} bytes, its manifest says {want['bytes']}"
        if fast_hash(p) != want["hash"]:
            return f"{name} does not match its manifest's hash"
    return None


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


class RunFolderBusy(BudgetError):
    """Another live process holds the run folder's lock."""


class DiskFull(BudgetError):
    """The run folder's disk cannot take another checkpoint."""


def human_bytes(n: float) -> str:
    """GB for checkpoint-sized numbers, MB below 0.1 GB (a tiny model's checkpoint is a few MB)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


class RunFolder:
    """Paths and small atomic writes inside a run folder.

    `writer` is False on the non-main processes of a multi-GPU run (``ranks.is_main_process``):
    they read the folder, and every write (and the lock) is left to rank 0.
    """

    def __init__(self, path: str | Path, writer: bool | None = None):
        self.path = Path(path)
        self.writer = is_main_process() if writer is None else writer

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

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    @property
    def incomplete(self) -> Path:
        return self.path / "incomplete"

    def exists(self) -> bool:
        return self.config.is_file()

    def is_empty(self) -> bool:
        """Nothing in the folder but (perhaps) its lock file: a start that never got going."""
        return not self.path.exists() or all(p.name == LOCK for p in self.path.iterdir())

    # the lock
    def holder(self) -> dict | None:
        """Who holds the folder's lock ({"pid", "host", "since"}), or None when no live process does."""
        if not self.lock_file.is_file():
            return None
        fd = os.open(self.lock_file, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                return _read_holder(self.lock_file)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def wait_until_free(self, wait: bool = False, console=None, poll_s: float = 2.0) -> None:
        """Return once no live process holds the lock, without taking it (a supervisor checks before it
        starts GPU processes whose trainer takes the lock). Held and not `wait`: RunFolderBusy."""
        who = self.holder()
        if who is None:
            return
        if not wait:
            raise RunFolderBusy(f"{self.path} is in use by another run ({_describe(who)}); wait for it to "
                                "end, stop it, or pass --wait to start when it ends.")
        if console is not None:
            console.print(f"waiting for the run in {self.path} ({_describe(who)}) to end…", soft_wrap=True)
        while self.holder() is not None:
            time.sleep(poll_s)

    @contextlib.contextmanager
    def locked(self, wait: bool = False, console=None):
        """Hold an exclusive flock on <folder>/.lock for the block.

        The kernel drops the lock when the process ends, even by SIGKILL, so it never goes stale.
        Another holder: raise RunFolderBusy naming its PID and host, or (wait=True) wait for it.
        A reader (a non-main rank) takes no lock: rank 0 holds it for the whole run.
        """
        if not self.writer:
            yield self
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                who = _read_holder(self.lock_file)
                if not wait:
                    raise RunFolderBusy(f"{self.path} is in use by another run ({_describe(who)}); wait for it to "
                                        "end, stop it, or pass --wait to start when it ends.") from None
                if console is not None:
                    console.print(f"waiting for the run in {self.path} ({_describe(who)}) to end…", soft_wrap=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
            yield self
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # writes
    def write_json(self, path: Path, data) -> None:
        """Write via a temporary file and rename, so a crash never leaves half a file."""
        if not self.writer:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)

    def write_text(self, path: Path, text: str) -> None:
        if not self.writer:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def event(self, kind: str, message: str, step: int | None = None, **extra) -> None:
        if not self.writer:
            return
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
        if not self.writer:
            return moved
        for p in self.checkpoints():
            if not (p / COMPLETE).is_file():
                moved.append(self.set_aside(p))
        return moved

    def mark_complete(self, checkpoint: Path, state: dict) -> None:
        """Write the budget state, then the COMPLETE marker with every file's size and hash (written last)."""
        if not self.writer:
            return
        self.write_json(checkpoint / BUDGET_STATE, state)
        self.write_json(checkpoint / COMPLETE, {"step": state.get("step"), "time": time.time(),
                                                "files": manifest(checkpoint)})

    def set_aside(self, checkpoint: Path) -> Path:
        if not self.writer:
            return checkpoint
        self.incomplete.mkdir(exist_ok=True)
        dest = claim_free_dir(self.incomplete / f"{checkpoint.name}-{int(time.time())}")
        os.replace(checkpoint, dest)  # onto the empty folder just claimed: same disk, one rename
        return dest

    def checkpoint_bytes(self) -> int | None:
        """Size of the newest complete checkpoint (what the next save will need), None before the first."""
        ckpt = self.latest_complete_checkpoint()
        if ckpt is None:
            return None
        return sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())

    def prune_set_aside(self, limit: int | None) -> list[Path]:
        """Delete the oldest set-aside checkpoints in incomplete/ while complete plus set-aside ones exceed
        `limit` (save_total_limit), so that checkpoints cut short or corrupt never fill the disk."""
        if not limit or not self.writer or not self.incomplete.is_dir():
            return []
        complete = [p for p in self.checkpoints() if (p / COMPLETE).is_file()]
        aside = sorted((p for p in self.incomplete.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        removed = []
        while aside and len(complete) + len(aside) > limit:
            victim = aside.pop(0)
            shutil.rmtree(victim, ignore_errors=True)
            removed.append(victim)
        return removed

    def newest_verified_checkpoint(self) -> tuple[Path | None, list[tuple[str, str]]]:
        """The newest complete checkpoint whose files match its manifest; the failing newer ones are
        set aside in incomplete/ (with an event). Returns it and [(name, why)] of those set aside."""
        failed = []
        for ckpt in reversed([p for p in self.checkpoints() if (p / COMPLETE).is_file()]):
            why = verify_checkpoint(ckpt)
            if why is None:
                return ckpt, failed
            dest = self.set_aside(ckpt)
            self.event("corrupt_checkpoint", f"{ckpt.name} failed verification ({why}); moved to "
                       f"{dest.relative_to(self.path)}", step=step_of(ckpt))
            failed.append((ckpt.name, why))
        return None, failed

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
        if not self.writer:
            return len(rows)
        self.write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))
        return len(rows)

    def install_adapter(self, tmp: Path) -> None:
        """Replace adapter/ with the folder `tmp` written beside it (renames only: never half an adapter)."""
        if not self.writer:
            return
        self.tidy_adapter()
        if self.adapter.exists():
            old = self.path / f"adapter.prev-{time.time_ns()}"
            self.adapter.rename(old)
            tmp.rename(self.adapter)
            shutil.rmtree(old)
        else:
            tmp.rename(self.adapter)

    def tidy_adapter(self) -> list[Path]:
        """Finish an adapter swap a kill cut short: install_adapter renames adapter/ to adapter.prev-<ns>,
        the new one into place, then deletes the old. Killed between the renames, adapter/ is missing and
        the newest adapter.prev-* is the last good adapter: it is put back. Killed before the delete, the
        adapter.prev-* left are deleted (each is a full adapter copy). Returns what was deleted."""
        if not self.writer:
            return []
        prev = sorted((p for p in self.path.glob("adapter.prev-*") if p.name.rsplit("-", 1)[1].isdigit()),
                      key=lambda p: int(p.name.rsplit("-", 1)[1]))
        if prev and not self.adapter.exists():
            prev.pop().rename(self.adapter)
        for p in prev:
            shutil.rmtree(p, ignore_errors=True)
        return prev

    def move_aside(self) -> Path:
        """For --overwrite: move the folder's content to <name>.old-<time> (-1, -2 within one second; nothing is lost).

        The lock file stays, so the lock this process holds keeps guarding the folder."""
        if not self.writer:
            return self.path
        dest = claim_free_dir(self.path.with_name(f"{self.path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}"))
        for p in self.path.iterdir():
            if p.name != LOCK:
                shutil.move(str(p), dest / p.name)
        return dest


def claim_free_dir(path: Path) -> Path:
    """Create `path`, or `path-1`, `path-2`, ... when it exists, and return the one created.

    Names carry a time stamp in seconds; two set-asides in the same second (a script's loop, a fast
    failing start) get two folders instead of a FileExistsError or one moved inside the other.
    mkdir is atomic, so two processes never claim the same name.
    """
    candidate, n = path, 0
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


def _try_lock(fd: int, tries: int = 5) -> bool:
    """Non-blocking exclusive flock, tried a few times: `holder()` probes hold it for an instant."""
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if i < tries - 1:
            time.sleep(0.1)
    return False


def _read_holder(lock_file: Path) -> dict:
    """The holder's {"pid", "host", "since"}; it writes them just after taking the lock, so wait a moment."""
    for _ in range(20):
        try:
            who = json.loads(lock_file.read_text() or "{}")
        except (OSError, ValueError):
            who = {}
        if who:
            return who
        time.sleep(0.05)
    return {}


def _describe(who: dict) -> str:
    if not who:
        return "holder unknown"
    return f"pid {who.get('pid', '?')} on {who.get('host', '?')}, since {who.get('since', '?')}"


if __name__ == "__main__":  # `python -m budgetreason.runs.folder DIR`: exit 0 and print the holder when a run holds DIR
    import sys

    who = RunFolder(sys.argv[1]).holder()
    if who is not None:
        print(_describe(who))
    sys.exit(0 if who is not None else 1)
