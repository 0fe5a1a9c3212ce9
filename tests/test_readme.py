"""README's commands are the ones CI and users run."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_readmes_test_command_exactly():
    test_cmd = _bash_blocks()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in [line.strip() for line in ci], "the test command in README and .ci/run differ"


def test_ci_installs_cpu_torch_first():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and ci.index("torch==2.13.0") < ci.index("pytest")
