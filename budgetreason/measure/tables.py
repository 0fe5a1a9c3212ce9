"""Tables of calibration and bench results, shared by the CLI and the notebooks."""

from __future__ import annotations

from rich.table import Table


def calibration_table(data: dict) -> Table:
    t = Table(title=f"Calibration ({data['date']}): predicted vs measured")
    for col in ("model", "rank", "k", "completion", "backend", "pred. GiB", "meas. GiB", "error", "pred. s/step",
                "meas. s/step", "error"):
        t.add_column(col, justify="left" if col in ("model", "backend") else "right")
    def num(v, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in data["records"]:
        s = r["spec"]
        backend = r["backend"] + (f" ({r['engine']})" if r.get("engine") else "")
        t.add_row(s["model"], str(s["rank"]), str(s["k"]), str(s["completion"]), backend,
                  num(r["predicted"]["total_gib"], ".2f"), num(r["measured"]["peak_gib"], ".2f"),
                  num(r["memory_error_pct"], "+.1f") + "%", num(r["predicted"]["step_seconds"], ".1f"),
                  num(r["measured"]["step_seconds"], ".1f"), num(r["time_error_pct"], "+.1f") + "%")
    for f in data.get("failures", []):
        s = f["spec"]
        t.add_row(s["model"], str(s["rank"]), str(s["k"]), str(s["completion"]), "failed", "", "", "", "", "", f["error"][:40])
    return t


def bench_table(data: dict) -> Table:
    t = Table(title=f"bench: {data['spec']['model']}, k={data['spec']['k']}, completion {data['spec']['completion']}")
    for col in ("variant", "generation", "s/step", "generated tok/s", "trained tok/s", "peak GiB"):
        t.add_column(col, justify="left" if col in ("variant", "generation") else "right")
    for r in data["results"].values():
        if "error" in r:
            t.add_row(r["variant"], "failed: " + r["error"][:60], "", "", "", "")
            continue
        t.add_row(r["variant"], r["generation"], f"{r['step_seconds']:.2f}", f"{r['generated_tokens_per_s']:.0f}",
                  f"{r['trained_tokens_per_s']:.0f}", "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}")
    if data["ratios"]:
        t.caption = ", ".join(f"{k}: {v}×" for k, v in data["ratios"].items())
    return t
