"""The settings tables of docs/reproduce.md, generated from the recipes and the evaluation protocols.

The recipe files (their values and the source note beside each) and ``evaluation.PROTOCOLS`` are
the one source of truth; ``python -m budgetreason.reproduce docs/reproduce.md`` rewrites every
block between ``<!-- table:KIND:NAME -->`` and ``<!-- /table -->``, and a test checks the doc is current.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- table:(recipe|protocol):([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def cell(value) -> str:
    return f"`{json.dumps(value)}`"


def recipe_table(name: str) -> str:
    from budgetreason.train.recipes import settings

    lines = ["| setting | value | source |", "|---|---|---|"]
    lines += [f"| `{r['key']}` | {cell(r['value'])} | {r['source'].replace('|', '/')} |" for r in settings(name)]
    return "\n".join(lines) + "\n"


def protocol_table(name: str) -> str:
    from budgetreason.evaluate.evaluation import PROTOCOLS

    p = PROTOCOLS[name]
    lines = ["| setting | value | source |", "|---|---|---|"]
    lines += [f"| `{k}` | {cell(p[k])} | {p['source'][k]} |" for k in p if k != "source"]
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """`text` with every generated block rebuilt from the data."""
    def build(m: re.Match) -> str:
        table = recipe_table(m[3]) if m[2] == "recipe" else protocol_table(m[3])
        return m[1] + table + m[5]

    return BLOCK.sub(build, text)


def parse_table(text: str, kind: str, name: str) -> dict:
    """{setting: value} read back from the doc's block (what the per-recipe tests compare with)."""
    m = next(m for m in BLOCK.finditer(text) if m[2] == kind and m[3] == name)
    out = {}
    for line in m[4].splitlines()[2:]:
        key, value = (c.strip().strip("`") for c in line.strip("|").split("|")[:2])
        out[key] = json.loads(value)
    return out


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reproduce.md")
    path.write_text(render(path.read_text()))
