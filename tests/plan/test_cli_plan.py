"""The CLI as a user runs it: plan, gpus, models, versions; exit codes; no heavy imports at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "vllm", "unsloth")


def test_plan_json_for_the_readme_command():
    r = run_cli("plan", "--gpu", "a40", "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--hours", "24", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fits"] and d["config"]["lora_rank"] == 256 and d["gpu"]["key"] == "a40"


def test_plan_table_shows_terms_and_cost():
    r = run_cli("plan", "--gpu", "a40", "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--hours", "24")
    assert r.returncode == 0, r.stderr
    for text in ("KV cache", "activations", "optimizer states", "steps in 24 h", "$7.20"):
        assert text in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["plan", "--gpu", "v100"], "Unknown GPU 'v100'"),
    (["plan", "--gpu", "a40", "--hours", "0"], "--hours must be more than 0"),
    (["plan", "--gpu", "a40", "--hours", "-1"], "--hours must be more than 0"),
    (["plan", "--gpu", "a40", "--model", "someone/unknown-model"], "the hub is out of reach"),
    (["plan", "--gpu", "t4", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--no-load-in-4bit"], "Does not fit"),
    (["plan", "--gpu", "a40", "--k", "1"], "--k must be at least 2"),
])
def test_bad_input_one_line_exit_2(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in r.stderr


def test_verbose_shows_the_traceback():
    r = run_cli("--verbose", "plan", "--gpu", "v100")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_nothing_fits_exits_1_and_says_what_would():
    r = run_cli("plan", "--vram-gb", "6", "--model", "Qwen/Qwen3-8B")
    assert r.returncode == 1
    assert "bigger GPU" in r.stdout


def test_gpus_and_models_list_the_catalogs():
    r = run_cli("gpus", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) >= 12
    r = run_cli("models")
    assert r.returncode == 0 and "DeepScaleR-1.5B-Preview" in r.stdout


def test_versions_command_passes_on_this_install():
    r = run_cli("versions")
    assert r.returncode == 0, r.stdout
    assert "ok: the core matrix holds" in r.stdout


COMMANDS = ["demo", "plan", "train", "eval", "compare", "report", "sweep", "recipes", "benchmarks", "gpus", "models",
            "versions", "calibrate", "bench", "export", "push", "serve", "doctor"]


def test_every_command_is_registered():
    from cli.main import app

    assert {c.name for c in app.registered_commands} == set(COMMANDS)


@pytest.mark.parametrize("args", [["--help"], ["plan", "--gpu", "a40", "--json"], ["gpus"], ["models"], ["recipes"],
                                  ["benchmarks"]] + [[c, "--help"] for c in COMMANDS])
def test_startup_imports_no_heavy_library(args):
    """`python -X importtime` lists every module imported; none of the heavy ones may appear."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli.main", *args], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    top = {m.split(".")[0] for m in imported}
    assert not (top & set(HEAVY)), sorted(top & set(HEAVY))
