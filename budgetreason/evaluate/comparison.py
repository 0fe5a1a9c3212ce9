"""Baseline-vs-final tables in the micro-budget paper's Table 1 layout, with its Table 2 entropy change.

Rows are evaluations (the first is the baseline the others are compared with), columns are
benchmark × k; a value above the baseline's is marked (bold in Markdown, green in the
terminal). ΔH_rel is the micro-budget paper's (Table 2): the relative change, in percent, of the
mean token entropy (its equation 1) of the evaluation completions of each row against the
baseline's (the base model), per benchmark (``entropy_change_pct_by_benchmark``), and its mean
over the benchmarks both evaluated (``entropy_change_pct``). It is not the training-time entropy.
"""

from __future__ import annotations

import json
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.evaluate.metrics import relative_change


def load_eval(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "eval.json"
    if not p.is_file():
        raise BudgetError(f"{path}: no eval.json there; run `budgetreason eval` first.")
    return json.loads(p.read_text())


def comparison(evals: list[dict], ks=(1, 8, 16)) -> dict:
    """Rows of pass@k percentages per benchmark and k, improvement flags, and ΔH_rel per row."""
    if len(evals) < 2:
        raise BudgetError("compare needs a baseline and at least one other eval.json.")
    benches = [b for b in evals[0]["benchmarks"] if all(b in e["benchmarks"] for e in evals[1:])]
    if not benches:
        raise BudgetError("The evaluations share no benchmark.")
    cols = [(b, k) for b in benches for k in ks if f"pass@{k}" in evals[0]["benchmarks"][b]]
    base = evals[0]
    rows = []
    for i, e in enumerate(evals):
        vals, better = {}, {}
        for b, k in cols:
            v = e["benchmarks"][b].get(f"pass@{k}")
            vals[f"{b}@{k}"] = None if v is None else round(100 * v, 1)
            bv = base["benchmarks"][b].get(f"pass@{k}")
            better[f"{b}@{k}"] = i > 0 and v is not None and bv is not None and round(100 * v, 1) > round(100 * bv, 1)
        by_bench = {b: relative_change(base["benchmarks"][b].get("entropy"), e["benchmarks"][b].get("entropy"))
                    for b in benches}
        changes = [c for c in by_bench.values() if c is not None]
        rows.append({"label": e.get("label") or e.get("model"), "config": "Baseline" if i == 0 else "Final",
                     "values": vals, "improved": better,
                     "entropy_change_pct": None if i == 0 or not changes else round(sum(changes) / len(changes), 1),
                     "entropy_change_pct_by_benchmark": {} if i == 0 else
                     {b: None if c is None else round(c, 1) for b, c in by_bench.items()}})
    return {"benchmarks": benches, "columns": [f"{b}@{k}" for b, k in cols], "rows": rows}


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    head = "| Model | Config | " + " | ".join(c.replace("@", " @") for c in cols) + " | ΔH_rel (%) |"
    lines = [head, "|" + "---|" * (len(cols) + 3)]
    for r in table["rows"]:
        cells = []
        for c in cols:
            v = r["values"][c]
            s = "–" if v is None else f"{v:.1f}"
            cells.append(f"**{s}**" if r["improved"][c] else s)
        dh = "" if r["entropy_change_pct"] is None else f"{r['entropy_change_pct']:+.1f}"
        lines.append(f"| {r['label']} | {r['config']} | " + " | ".join(cells) + f" | {dh} |")
    lines.append("\npass@k in percent (unbiased estimator); **bold**: above the baseline. "
                 "ΔH_rel: relative change of the evaluation completions' mean token entropy against the baseline "
                 "(micro-budget paper, Table 2), mean over the benchmarks; per benchmark:")
    benches = table["benchmarks"]
    lines += ["", "| Model | " + " | ".join(f"ΔH_rel {b} (%)" for b in benches) + " |", "|" + "---|" * (len(benches) + 1)]
    for r in table["rows"][1:]:
        cells = [("–" if r["entropy_change_pct_by_benchmark"].get(b) is None
                  else f"{r['entropy_change_pct_by_benchmark'][b]:+.1f}") for b in benches]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_rich(table: dict):
    from rich.table import Table

    t = Table(title="Baseline vs. final (pass@k, %)")
    t.add_column("Model")
    t.add_column("Config")
    for c in table["columns"]:
        t.add_column(c.replace("@", " @"), justify="right")
    t.add_column("ΔH_rel %", justify="right")
    for r in table["rows"]:
        cells = []
        for c in table["columns"]:
            v = r["values"][c]
            s = "–" if v is None else f"{v:.1f}"
            cells.append(f"[bold green]{s}[/]" if r["improved"][c] else s)
        dh = "" if r["entropy_change_pct"] is None else f"{r['entropy_change_pct']:+.1f}"
        t.add_row(r["label"], r["config"], *cells, dh)
    return t


def compare(paths: list[str | Path], output: str | Path | None = None) -> dict:
    """Load eval.json files (first = baseline), build the table, and write comparison.{md,json} if asked."""
    table = comparison([load_eval(p) for p in paths])
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(json.dumps(table, indent=2))
        (out / "comparison.md").write_text(to_markdown(table) + "\n")
    return table
