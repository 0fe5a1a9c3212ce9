"""ruff (pyflakes, pycodestyle, import order, bugbear) holds across the code."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_ruff_is_clean():
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.fail("ruff is part of the [dev] extra; install it with pip install -e '.[dev]'")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "budgetreason", "cli", "tests", "benchmarks"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
