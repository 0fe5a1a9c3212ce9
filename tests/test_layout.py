"""The parts of budgetreason import downward only, and no modules import each other in a circle.

Every ``import`` and ``from … import`` in ``budgetreason/`` and ``cli/`` is read with ``ast``
(nothing is imported), at module level and inside functions alike: a lazy import is still a
dependency. docs/layout.md draws the same rules.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from tests.conftest import ROOT

#: Modules every part may use: the one exception type, the shipped catalogs, the hub probe, argument
#: checks, the callable stage packages, and the root package itself (its version and lazy API).
SHARED = {"budgetreason", "budgetreason.errors", "budgetreason.catalog", "budgetreason.online", "budgetreason.checks",
          "budgetreason.stage"}
#: Thin orchestration on top of the stages.
TOP = {"budgetreason.demonstration", "budgetreason.sweeps", "budgetreason.reproduce"}
#: Floor of each part: a part imports the shared modules, itself, and parts on lower floors only.
#: Parts on one floor never import each other: plan, rewards, data and runs import no other part;
#: report (floor 4, beside train) reads run folders through runs and never imports train.
FLOORS = {"plan": 1, "rewards": 1, "data": 1, "runs": 1, "models": 2, "evaluate": 3, "train": 4, "report": 4,
          "measure": 5, "share": 5, "top": 6, "cli": 7}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str | None:
    """The part a module belongs to ('shared', a stage, 'top', 'cli'), or None for a module no rule covers."""
    if module in SHARED or module.startswith("budgetreason.catalog."):
        return "shared"
    if module in TOP:
        return "top"
    if module == "cli" or module.startswith("cli."):
        return "cli"
    bits = module.split(".")
    if bits[0] == "budgetreason" and len(bits) > 1 and bits[1] in FLOORS:
        return bits[1]
    return None


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for folder in ("budgetreason", "cli") for p in sorted((root / folder).rglob("*.py"))}


def imports(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a budgetreason or cli module in `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself.
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            found += [(node.lineno, s) for s in subs] or [(node.lineno, target)]
    return [(line, m) for line, m in found if m.split(".")[0] in ("budgetreason", "cli")]


def violations(root: Path) -> list[str]:
    """One line per import that runs against the allowed direction, naming the file, the line and the import."""
    mods = modules(root)
    out = []
    for name, path in mods.items():
        here = part_of(name)
        where = path.relative_to(root)
        if here is None:
            out.append(f"{where}: belongs to no part; move it into a stage's package (docs/layout.md) "
                       "or list it in tests/test_layout.py")
            continue
        for line, target in imports(path, name, set(mods)):
            there = part_of(target)
            if there in (here, "shared") or (there is None and target not in mods):
                continue
            if here == "shared":
                out.append(f"{where}:{line} imports {target}: shared modules import only other shared modules")
            elif there == "cli":
                out.append(f"{where}:{line} imports {target}: nothing in budgetreason imports cli")
            elif there is not None and FLOORS[there] >= FLOORS[here]:
                rule = "never imports train" if (here, there) == ("report", "train") else \
                    f"may import only parts below it ({', '.join(p for p, f in FLOORS.items() if f < FLOORS[here]) or 'none'})"
                out.append(f"{where}:{line} imports {target}: {here} {rule}")
    return sorted(out)


def circles(root: Path) -> list[list[str]]:
    """Strongly connected groups of two or more modules (or a module importing itself), by Tarjan's algorithm."""
    mods = modules(root)
    graph = {m: sorted({t for _, t in imports(p, m, set(mods)) if t in mods}) for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                found.append(sorted(group))

    for m in graph:
        if m not in index:
            visit(m)
    return found


def test_imports_run_downward_only():
    assert violations(ROOT) == []


def test_no_circle_of_imports():
    assert circles(ROOT) == []


def test_every_stage_package_says_what_it_owns_and_may_import():
    for part in FLOORS:
        if part in ("top", "cli"):
            continue
        doc = ast.get_docstring(ast.parse((ROOT / "budgetreason" / part / "__init__.py").read_text())) or ""
        assert "May import" in doc and "Must never import" in doc, part


def _copy(tmp_path: Path) -> Path:
    for folder in ("budgetreason", "cli"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("assets", "__pycache__", "*.json"))
    return tmp_path


def test_the_check_fails_on_a_forbidden_import(tmp_path):
    """A test of the test: forbidden imports added to temporary modules are each reported, by file and import."""
    root = _copy(tmp_path)
    assert violations(root) == []
    (root / "budgetreason" / "plan" / "probe.py").write_text("from budgetreason.train.config import RunConfig\n")
    (root / "budgetreason" / "report" / "probe.py").write_text("def f():\n    from budgetreason.train import training\n")
    (root / "budgetreason" / "rewards" / "probe.py").write_text("import budgetreason.data.datasets\n")
    (root / "budgetreason" / "evaluate" / "probe.py").write_text("from cli.main import app\n")
    (root / "budgetreason" / "stray.py").write_text("X = 1\n")
    assert violations(root) == [
        "budgetreason/evaluate/probe.py:1 imports cli.main: nothing in budgetreason imports cli",
        "budgetreason/plan/probe.py:1 imports budgetreason.train.config: plan may import only parts below it (none)",
        "budgetreason/report/probe.py:2 imports budgetreason.train.training: report never imports train",
        "budgetreason/rewards/probe.py:1 imports budgetreason.data.datasets: rewards may import only parts below it (none)",
        "budgetreason/stray.py: belongs to no part; move it into a stage's package (docs/layout.md) "
        "or list it in tests/test_layout.py",
    ]


def test_the_check_finds_a_circle(tmp_path):
    root = _copy(tmp_path)
    (root / "budgetreason" / "train" / "probe_a.py").write_text("from budgetreason.train import probe_b\n")
    (root / "budgetreason" / "train" / "probe_b.py").write_text("def f():\n    from budgetreason.train.probe_a import X\n")
    assert circles(root) == [["budgetreason.train.probe_a", "budgetreason.train.probe_b"]]
    assert violations(root) == []  # one part: allowed by direction, still a circle
