"""Shipped training recipes: YAML files of RunConfig fields, each saying what GPU and time it expects."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from budgetreason.errors import BudgetError

#: Models whose recipe supplies their defaults when only --model is given.
MODEL_DEFAULTS = {"tiny-arith": "tiny-arith"}


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def recipe_path(name: str) -> Path:
    p = Path(str(resources.files(__name__).joinpath(f"{name}.yaml")))
    if not p.is_file():
        raise BudgetError(f"Unknown recipe '{name}'. Shipped recipes: {', '.join(recipe_names())}; or pass a YAML file.")
    return p


def recipe_file(name_or_path: str) -> Path:
    """The YAML file of a shipped recipe name, or the path itself."""
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") or p.is_file() else recipe_path(name_or_path)
    if not path.is_file():
        raise BudgetError(f"Config file '{name_or_path}' does not exist.")
    return path


def load_recipe_lines(name_or_path: str) -> tuple[dict, dict[str, int]]:
    """A recipe's settings and the line each one is on (for errors that point into the file)."""
    from budgetreason.train.config import read_yaml

    return read_yaml(recipe_file(name_or_path))


def load_recipe(name_or_path: str) -> dict:
    """A recipe's settings by name, or any YAML file's."""
    return load_recipe_lines(name_or_path)[0]


def describe(name: str) -> str:
    """The recipe's header comment: what it is and what GPU and time it expects."""
    lines = recipe_path(name).read_text().splitlines()
    return " ".join(line.lstrip("# ").strip() for line in lines if line.startswith("#"))


def settings(name: str) -> list[dict]:
    """The recipe's settings in file order, each with the source note written beside it (after '#')."""
    import yaml

    rows = []
    for line in recipe_path(name).read_text().splitlines():
        if not line or line.startswith(("#", " ")):
            continue
        body, _, note = line.partition(" # ")
        (key, value), = yaml.safe_load(body).items()
        rows.append({"key": key, "value": value, "source": note.strip()})
    return rows
