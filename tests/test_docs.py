"""User docs build strictly, the CLI reference is generated from the app, and the vast.ai script works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT


def test_cli_reference_is_current():
    from cli.reference import markdown

    assert (ROOT / "docs" / "cli.md").read_text().strip() == markdown().strip(), \
        "docs/cli.md is stale: python -m cli.reference > docs/cli.md"


def test_loss_help_names_every_loss_train_accepts():
    """`--loss` help (and so docs/cli.md) lists every TRL loss the config accepts, bnpo included."""
    from budgetreason.train.config import LOSSES
    from cli.reference import markdown

    line = next(ln for ln in markdown().splitlines() if ln.startswith("| `--loss` |"))
    assert [name for name in LOSSES if name not in line] == [], line


def test_docs_cover_every_topic():
    names = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {"index.md", "quickstart.md", "concepts.md", "planner.md", "training.md", "rewards.md", "data.md",
            "evaluation.md", "reports.md", "reproduce.md", "vastai.md", "troubleshooting.md", "gpu-results.md", "benchmarks.md",
            "cli.md"} <= names
    assert "RESULTS_PLACEHOLDER" not in (ROOT / "docs" / "rewards.md").read_text()


def test_mkdocs_build_strict(tmp_path):
    """The documented command, from the repository root: mkdocs build --strict (mkdocs.yml there, docs_dir: docs)."""
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "site" / "planner" / "index.html").is_file()


@pytest.mark.slow
def test_vastai_onstart_trains_in_the_background_and_resumes(tmp_path):
    env = dict(os.environ, BR_WORKDIR=str(tmp_path), BR_MODEL="tiny-arith", BR_DATASET="arith", BR_MAX_STEPS="3",
               BR_SKIP_INSTALL="1", BR_GPU="cpu", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    script = str(ROOT / "colab" / "vastai_onstart.sh")
    r = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "in the background" in r.stdout
    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
    assert "already running" in again.stdout
    summary = tmp_path / "runs" / "tiny-arith-arith" / "summary.json"
    deadline = time.time() + 300
    while not summary.is_file():
        assert time.time() < deadline, (tmp_path / "train.log").read_text()[-2000:]
        time.sleep(0.5)
    assert json.loads(summary.read_text())["steps"] == 3


def _reproduce_shell():
    """From docs/reproduce.md: the training loop's models and --output, and the evaluation block's variable lines."""
    import re

    text = (ROOT / "docs" / "reproduce.md").read_text()
    loop = re.search(r"for model in (.*?); do\n\s*budgetreason sweep [^\n]*?--output ([^\n]+)\n", text, re.S)
    models = loop[1].replace("\\\n", " ").split()
    names = [ln.split("#")[0].strip() for ln in text.splitlines() if ln.startswith(("NAME=", "RUN="))]
    assert len(names) == 2 and "--adapter $RUN-r256" in text and "--adapter $RUN-r$r" in text
    return models, loop[2], names


def test_reproduce_eval_paths_are_the_sweeps_run_folders(tmp_path):
    """Review #12: the doc's evaluation commands name the folders its training commands create."""
    from budgetreason.evaluate.evaluation import adapter_dir
    from budgetreason.sweeps import run_folder
    from tests.conftest import run_cli

    models, output, lines = _reproduce_shell()
    assert len(models) == 5 and "Qwen/Qwen2.5-Math-1.5B" in models
    for model in models:  # the shell's own answers, for the doc's five models
        script = f"model={model}; MODEL=$model; " + "; ".join(lines) + f"; echo {output}; echo $RUN-r256"
        sweep_out, run = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                        check=True).stdout.split()
        assert run == run_folder(sweep_out, model, 256), model
    # and end to end: a real (one-step) sweep, then the doc's path through eval's adapter_dir
    sweep_out = subprocess.run(["bash", "-c", f"model=tiny-arith; echo {output}"], capture_output=True, text=True,
                               check=True).stdout.strip()
    r = run_cli("sweep", "--models", "tiny-arith", "--ranks", "2", "--max-steps-each", "1", "--no-progress",
                "--output", sweep_out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = subprocess.run(["bash", "-c", "MODEL=tiny-arith; " + "; ".join(lines) + "; echo $RUN-r2"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert f"tiny-arith rank 2: {tmp_path / run}" in r.stdout or f"tiny-arith rank 2: {run}" in r.stdout
    state = json.loads((tmp_path / sweep_out / "sweep.json").read_text())
    assert [q["output"] for q in state["queue"]] == [run]
    adapter, cfg = adapter_dir(str(tmp_path / run))
    assert adapter == str(tmp_path / run / "adapter") and cfg["lora_rank"] == 2
