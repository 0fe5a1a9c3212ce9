"""Shared test set-up: offline hub, headless plots, and the gpu marker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: str | Path | None = None):
    """Run the installed console script's code in a fresh interpreter, as a user would."""
    import subprocess

    full_env = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


def think_opening_model(folder: Path) -> Path:
    """A copy of the built-in tiny model whose chat template ends the prompt with ``<think>\\n``, as the
    DeepSeek-R1 distills' does (real weights, real tokenizer; only the template file differs)."""
    import shutil

    from budgetreason.plan.architectures import tiny_model_dir

    shutil.copytree(tiny_model_dir(), folder)
    template = folder / "chat_template.jinja"
    text = template.read_text()
    assert "'<|im_start|>assistant\\n'" in text
    template.write_text(text.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'"))
    return folder
