"""The Colab notebooks: a static gate (no logic in cells, no stored outputs) and headless execution on the CPU."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil

import nbformat
import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "colab").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} == {"quickstart.ipynb", "rank_sweep.ipynb", "evaluate.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_holds_no_logic(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None, "outputs must be stripped"
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%")))
        tree = ast.parse(source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defs, f"{path.name}: logic belongs in budgetreason/, not in a cell ({type(defs[0]).__name__})"


def test_readme_badges_point_at_the_notebooks():
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"colab\.research\.google\.com/github/[^)\s]+/blob/main/(colab/[\w.]+\.ipynb)", readme))
    assert linked == {f"colab/{p.name}" for p in NOTEBOOKS}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_on_cpu(path, tmp_path):
    """Run every cell headless in no-GPU mode (nbclient); any cell error fails the test."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(path, work / path.name)
    env_path = os.environ["PATH"]
    os.environ["PATH"] = os.pathsep.join(p for p in env_path.split(os.pathsep) if not shutil.which("nvidia-smi", path=p))
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        os.environ["PATH"] = env_path
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "No GPU on this runtime" in text
    assert (work / "runs").is_dir()
