"""The shipped catalogs (GPUs, models, dataset recipes, benchmarks) as JSON data files."""

from __future__ import annotations

import json
from importlib import resources


def load(name: str) -> dict:
    """The parsed catalog file ``<name>.json`` shipped in this package."""
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
