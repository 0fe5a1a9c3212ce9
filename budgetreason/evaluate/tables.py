"""The evaluation table, shared by the CLI and the notebooks."""

from __future__ import annotations

from rich.table import Table


def eval_table(result: dict) -> Table:
    """One row per benchmark: pass@k, mean accuracy, length, truncation, entropy."""
    ks = sorted({k for b in result["benchmarks"].values() for k in b if k.startswith("pass@")},
                key=lambda s: int(s.split("@")[1]))
    t = Table(title=f"{result['label']} — {result['protocol']['n']} samples, T={result['protocol']['temperature']}, "
                    f"max {result['protocol']['max_tokens']} tokens")
    t.add_column("benchmark")
    t.add_column("problems", justify="right")
    for k in ks:
        t.add_column(k, justify="right")
    for col in ("accuracy", "mean length", "truncated", "entropy"):
        t.add_column(col, justify="right")
    for name, b in result["benchmarks"].items():
        ent = "" if b["entropy"] is None else f"{b['entropy']:.3f}"
        t.add_row(name, str(b["n_problems"]), *[f"{100 * b[k]:.1f}" for k in ks], f"{100 * b['mean_accuracy']:.1f}",
                  f"{b['mean_length']:.0f}", f"{100 * b['truncated']:.0f}%", ent)
    return t
