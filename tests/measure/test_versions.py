"""The version matrix: pyproject, installed packages and the GPU packages' own constraints agree."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from budgetreason.measure import versions
from tests.conftest import ROOT


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _as_dict(reqs: list[str]) -> dict[str, str]:
    out = {}
    for r in reqs:
        req = Requirement(r)
        name = _canon(req.name) + (f"[{','.join(sorted(_canon(e) for e in req.extras))}]" if req.extras else "")
        out[name] = str(req.specifier)
    return out


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _norm(d: dict[str, str]) -> dict[str, str]:
    return _as_dict([f"{k}{v}" for k, v in d.items()])


def test_pyproject_pins_equal_the_matrix():
    project = _pyproject()
    assert _as_dict(project["dependencies"]) == _norm(versions.CORE)
    assert _as_dict(project["optional-dependencies"]["gpu"]) == _norm(versions.GPU)


def test_installed_versions_satisfy_the_matrix():
    assert versions.check_installed() == []


def test_gpu_set_satisfies_every_upstream_constraint():
    """torch 2.14.0 plus our pins must satisfy unsloth's, unsloth_zoo's, vllm's and trl's Requires-Dist."""
    chosen = {"torch": GPU_TORCH} if (GPU_TORCH := versions.GPU_TORCH) else {}
    for name, spec in versions.CORE.items():
        pin = re.fullmatch(r"==([\w.]+)", spec)
        if pin:
            chosen[name.split("[")[0]] = pin.group(1)
    assert SpecifierSet(versions.CORE["torch"]).contains(versions.GPU_TORCH)
    for owner, constraints in versions.UPSTREAM.items():
        for dep, spec in constraints.items():
            if dep in chosen:
                assert Version(chosen[dep]) in SpecifierSet(spec), f"{owner} wants {dep}{spec}, we pin {chosen[dep]}"
            elif dep in versions.CORE:  # a range of ours: it must overlap the upstream one at the installed version
                installed = versions.installed(dep)
                assert installed and Version(installed) in SpecifierSet(spec), f"{owner}: {dep} {installed} vs {spec}"


def test_readme_states_the_matrix():
    readme = (ROOT / "README.md").read_text()
    for name in ("unsloth", "vllm", "trl", "transformers", "peft", "torch", "datasets"):
        assert name in readme
    assert "2026.10.9" in readme and "0.33.0" in readme and "1.15.0" in readme and "5.17.0" in readme
