"""benchmarks/gpu_session.sh: its stages fit the window it is written for, in order of value, and a stage
that cannot fit what is left is skipped (the real script under bash; no GPU needed for the accounting)."""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"
ORDER = ["env", "doctor", "calibrate-hf", "bench", "plan-hf", "calibrate-unsloth-hf", "plan-unsloth-hf"]


def _session(out, **env) -> list[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("BR_", "LIMIT_"))} | env
    full["PYTHONPATH"] = str(ROOT)  # run from an empty folder: no .whl/ there, so no install stage
    work = out.parent / f"{out.name}-cwd"
    work.mkdir()
    r = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=work, env=full, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return [line.split(" ", 1)[1] for line in (out / "session.log").read_text().splitlines() if not line.startswith(" ")]


def _events(lines: list[str]) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in lines if (m := re.match(r"(start|skip) ([\w-]+)", line))]


def test_the_syntax_is_valid():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_every_stage_but_the_second_engine_fits_the_default_window_at_worst(tmp_path):
    """Dry run: each stage counted at its whole limit. 540 s is what a 15-minute device loan leaves."""
    lines = _session(tmp_path / "a", BR_DRY_RUN="1")
    assert "BR_WINDOW_S=540 s" in lines[0]
    assert [name for kind, name in _events(lines) if kind == "start"] == [s for s in ORDER if s != "calibrate-unsloth-hf"]
    assert ("skip", "calibrate-unsloth-hf") in _events(lines)
    assert lines[-1].startswith("done after 440 of 540 s")  # 20 + 60 + 150 + 150 + 30 + 30
    assert not (tmp_path / "a" / "calibration.jsonl").exists()  # nothing ran


def test_a_shorter_window_skips_what_cannot_fit_and_keeps_the_stages_after_it(tmp_path):
    lines = _session(tmp_path / "b", BR_DRY_RUN="1", BR_WINDOW_S="300", LIMIT_DOCTOR="40")
    assert _events(lines) == [("start", "env"), ("start", "doctor"), ("start", "calibrate-hf"), ("skip", "bench"),
                              ("start", "plan-hf"), ("skip", "calibrate-unsloth-hf"), ("start", "plan-unsloth-hf")]
    assert "skip bench: limit 150 s > 90 s left (elapsed 210 of BR_WINDOW_S=300 s)" in lines
    assert lines[-1].startswith("done after 270 of 300 s")


def test_a_real_run_counts_real_elapsed_time(tmp_path):
    """Not a dry run: env really runs (nvidia-smi missing here is a finding in env.log); every later
    stage's limit is above what a 25 s window leaves, so each is skipped and nothing else starts."""
    out = tmp_path / "c"
    lines = _session(out, BR_WINDOW_S="25", LIMIT_ENV="25")
    assert _events(lines) == [("start", "env")] + [("skip", s) for s in ORDER[1:]]
    end = next(line for line in lines if line.startswith("end env: exit "))
    assert re.search(r"after \d+ s \(elapsed \d+ of 25 s\)", end)
    assert (out / "env.txt").read_text() == (out / "env.log").read_text() != ""
    assert sorted(p.name for p in out.iterdir()) == ["env.log", "env.txt", "session.log"]
