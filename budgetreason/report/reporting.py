"""Reports a researcher would rather look at: the papers' curves and tables for your runs.

``report(run_dirs)`` reads only run folders (config.yaml, plan.json, metrics.jsonl,
summary.json, checkpoints) and writes PNG figures, ``report.md`` (figures embedded) and
``report.json``. It works on a run that is still going or was interrupted.

Per run it reports time and dollars, steps, final and best metrics, the relative change of
the training-time entropy (TRL's token-weighted entropy of the sampled completions at the sampling
temperature, first vs last tenth of training; not the paper's ΔH_rel, which compares evaluation
entropies of base model and adapter: ``budgetreason compare``), the change
in response length (its Figure 4), the best checkpoint by validation accuracy, the turning
point, and a verdict:

Curves are smoothed by a centred moving mean (``smooth``): an EMA started at the first point
lags the raw curve by about 1/α steps, so its last point understates where a run ended.

- **turning point** (Tina's Figure 4: the best checkpoint sits just before it): the step where
  the smoothed format reward peaks and then falls by at least TURN_DROP, or where the smoothed
  completion length reaches its minimum and then grows by at least TURN_GROWTH (relative),
  whichever comes first;
- **verdict**: *too short* with fewer than MIN_VERDICT_STEPS logged steps; *collapsing* when
  reward or validation accuracy falls (smoothed end below its best by COLLAPSE_DROP) while
  training entropy drops (below −COLLAPSE_ENTROPY_PCT), as the paper's rigid models did;
  *learning* when the mean reward (or validation accuracy) of the last window beats the first
  by LEARNING_GAIN and by two standard errors; *flat* otherwise. A window is a tenth of the run
  but at least MIN_WINDOW steps; ``verdict_note`` states the change with its standard error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.evaluate.metrics import relative_change
from budgetreason.runs.folder import RunFolder

EMA_ALPHA = 0.1
TURN_DROP = 0.05
TURN_GROWTH = 0.10
LEARNING_GAIN = 0.05
COLLAPSE_DROP = 0.05
COLLAPSE_ENTROPY_PCT = 20.0
#: Steps averaged at each end of the run for the verdict (at least), and the fewest steps that get one.
MIN_WINDOW = 5
MIN_VERDICT_STEPS = 2 * MIN_WINDOW
#: Settings that name a run in legends when they differ between runs, in this order.
LEGEND_KEYS = ("model", "lora_rank", "dataset", "rewards", "loss", "learning_rate", "num_generations", "seed")

FIGURES = {
    "accuracy": ("rewards/accuracy", "Accuracy reward", "accuracy reward (fraction correct)"),
    "format": ("rewards/format", "Format reward", "format reward (fraction well-formed)"),
    "reward": ("reward", "Total reward", "total reward (weighted sum)"),
    "length": ("completion_length", "Response length", "mean completion length (tokens)"),
    "train_entropy": ("entropy", "Training entropy (TRL, token-weighted, at the sampling temperature)",
                      "training-time token entropy (nats)"),
    "validation": ("val/accuracy", "Validation accuracy", "validation pass@1 (fraction)"),
}


@dataclass
class Run:
    """One run folder as the report sees it."""

    path: Path
    config: dict
    plan: dict
    rows: list[dict]
    summary: dict | None
    checkpoints: list[int] = field(default_factory=list)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], r[key]) for r in self.rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return [p[0] for p in pts], [float(p[1]) for p in pts]


def load_run(path: str | Path) -> Run:
    import yaml

    folder = RunFolder(path)
    if not folder.config.is_file():
        raise BudgetError(f"{path}: not a budgetreason run folder (config.yaml missing).")
    config = yaml.safe_load(folder.config.read_text()) or {}
    plan = json.loads(folder.plan.read_text()) if folder.plan.is_file() else {}
    summary = json.loads(folder.summary.read_text()) if folder.summary.is_file() else None
    ckpts = [int(p.name.split("-")[-1]) for p in folder.checkpoints() if (p / "COMPLETE").is_file()]
    return Run(path=Path(path), config=config, plan=plan, rows=folder.read_metrics(), summary=summary, checkpoints=ckpts)


def smooth_window(n: int, alpha: float = EMA_ALPHA) -> int:
    """Odd window of the centred mean: the EMA's span 2/α − 1, at most a quarter of the `n` points."""
    w = min(round(2 / alpha - 1), max(1, n // 4))
    return max(1, w if w % 2 else w - 1)


def smooth(values: list[float], alpha: float = EMA_ALPHA) -> list[float]:
    """Centred moving mean over smooth_window points, the window cut at both ends (no lag, no start bias).

    >>> smooth([0, 0, 0, 0, 1, 1, 1, 1], 0.1)  # window 1 of 8 points: the values themselves
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    >>> [round(x, 2) for x in smooth([0] * 10 + [1] * 10, 0.1)][-4:]  # window 5: the last three points' mean
    [1.0, 1.0, 1.0, 1.0]
    """
    h = smooth_window(len(values), alpha) // 2
    out = []
    for i in range(len(values)):
        part = values[max(0, i - h): i + h + 1]
        out.append(sum(part) / len(part))
    return out


def _end_windows(values: list[float]) -> tuple[float, float, float, int] | None:
    """First and last window means, the standard error of their difference, and the window size."""
    if len(values) < MIN_VERDICT_STEPS:
        return None
    n = min(max(len(values) // 10, MIN_WINDOW), len(values) // 2)
    a, b = values[:n], values[-n:]

    def var(xs):
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)

    se = math.sqrt(var(a) / n + var(b) / n)
    return sum(a) / n, sum(b) / n, se, n


def _tenth_means(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    n = max(1, len(values) // 10)
    return sum(values[:n]) / n, sum(values[-n:]) / n


def turning_point(run: Run, alpha: float = EMA_ALPHA) -> dict | None:
    """Earliest of: the format reward's EMA peak followed by a fall ≥ TURN_DROP, or the length EMA's
    minimum followed by a relative rise ≥ TURN_GROWTH."""
    found = []
    steps, fmt = run.series("rewards/format")
    if fmt:
        s = smooth(fmt, alpha)
        i = max(range(len(s)), key=s.__getitem__)
        if i < len(s) - 1 and s[i] - min(s[i:]) >= TURN_DROP:
            found.append({"step": steps[i], "rule": "format reward peaks, then falls"})
    steps, length = run.series("completion_length")
    if length:
        s = smooth(length, alpha)
        i = min(range(len(s)), key=s.__getitem__)
        if 0 < i < len(s) - 1 and s[i] > 0 and (max(s[i:]) - s[i]) / s[i] >= TURN_GROWTH:
            found.append({"step": steps[i], "rule": "completion length reaches its minimum, then grows"})
    return min(found, key=lambda d: d["step"]) if found else None


def analyse(run: Run, alpha: float = EMA_ALPHA) -> dict:
    """Numbers and the verdict for one run (see the module docstring for the rules)."""
    cfg, rows = run.config, run.rows
    steps = rows[-1]["step"] if rows else 0
    elapsed = rows[-1].get("elapsed_s", 0.0) if rows else 0.0
    price = (run.plan.get("gpu") or {}).get("price_usd_hr")
    is_gpu = (run.plan.get("gpu") or {}).get("is_cuda", False)
    _, reward = run.series("reward")
    _, acc = run.series("rewards/accuracy")
    _, ent = run.series("entropy")
    _, length = run.series("completion_length")
    vsteps, val = run.series("val/accuracy")
    main = acc or reward
    first, last = _tenth_means(main)
    e0, e1 = _tenth_means(ent)
    l0, l1 = _tenth_means(length)
    d_entropy = relative_change(e0, e1)
    d_length = relative_change(l0, l1)
    best_val = None
    if val:
        i = max(range(len(val)), key=val.__getitem__)
        saved = [c for c in run.checkpoints if c <= vsteps[i]]
        best_val = {"step": vsteps[i], "accuracy": val[i], "nearest_checkpoint": max(saved) if saved else None}
    curve = smooth(main, alpha) if main else []
    v0, v1 = _tenth_means(val)
    falling = bool(curve) and (curve[-1] < max(curve) - COLLAPSE_DROP) or (
        bool(val) and v1 is not None and v1 < max(val) - COLLAPSE_DROP)
    ends = _end_windows(main)
    note = None
    if ends:
        w0, w1, se, n = ends
        note = f"last {n} vs first {n} steps: {w1 - w0:+.3f} ± {se:.3f} (standard error)"
    rises = ends is not None and ends[1] - ends[0] >= max(LEARNING_GAIN, 2 * ends[2])
    if ends is None and len(val) < 2:
        verdict = "too short"
        note = f"{len(main)} steps logged; a verdict needs at least {MIN_VERDICT_STEPS}"
    elif falling and d_entropy is not None and d_entropy < -COLLAPSE_ENTROPY_PCT:
        verdict = "collapsing"
    elif rises or (v0 is not None and len(val) >= 2 and v1 - v0 >= LEARNING_GAIN):
        verdict = "learning"
    else:
        verdict = "flat"
    return {
        "run": str(run.path), "model": cfg.get("model"), "dataset": cfg.get("dataset"), "lora_rank": cfg.get("lora_rank"),
        "backend": cfg.get("backend"), "gpu": (run.plan.get("gpu") or {}).get("name"),
        "plan": {k: run.plan.get("config", {}).get(k) for k in ("num_generations", "per_device_train_batch_size",
                                                                  "gradient_accumulation_steps", "max_completion_length")},
        "steps": steps, "hours": round(elapsed / 3600, 3),
        "cost_usd": round(price * elapsed / 3600, 2) if price and is_gpu else 0.0,
        "status": (run.summary or {}).get("stop_reason", "running or interrupted"),
        "final": {"reward": _last(reward), "accuracy": _last(acc), "completion_length": _last(length),
                  "entropy": _last(ent), "val_accuracy": _last(val)},
        "best": {"reward_smoothed": round(max(smooth(reward, alpha)), 4) if reward else None,
                 "accuracy_smoothed": round(max(smooth(acc, alpha)), 4) if acc else None,
                 "val_accuracy": round(max(val), 4) if val else None},
        "reward_first_tenth": _r(first), "reward_last_tenth": _r(last),
        "train_entropy_change_pct": _r(d_entropy, 1), "length_change_pct": _r(d_length, 1),
        "best_checkpoint": best_val, "turning_point": turning_point(run, alpha), "verdict": verdict,
        "verdict_note": note, "checkpoints": run.checkpoints,
    }


def _last(xs: list[float]) -> float | None:
    return round(xs[-1], 4) if xs else None


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def legend_labels(runs: list[Run]) -> list[str]:
    """Name runs by the settings that differ between them (e.g. rank 8 / 64 / 256)."""
    if len(runs) == 1:
        return [str(runs[0].config.get("model", runs[0].path.name))]
    keys = [k for k in LEGEND_KEYS if len({json.dumps(r.config.get(k), default=str) for r in runs}) > 1]
    if not keys:
        return [r.path.name for r in runs]
    names = {"lora_rank": "rank", "num_generations": "k", "learning_rate": "lr"}

    def fmt(k, v):
        v = str(v).split("/")[-1] if k == "model" else v
        return f"{names.get(k, k)} {v}" if k != "model" else str(v)

    return [", ".join(fmt(k, r.config.get(k)) for k in keys) for r in runs]


def _step_axis(ax) -> None:
    """Optimizer steps are whole numbers: integer ticks only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3)


def _mark_events(ax, runs: list[Run], alpha: float) -> None:
    """Checkpoints as dotted lines, the turning point as a dashed one (labelled once each)."""
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        for j, step in enumerate(run.checkpoints):
            ax.axvline(step, color=color, linestyle=":", linewidth=0.9, alpha=0.6,
                       label="checkpoint" if i == 0 and j == 0 else None)
        tp = turning_point(run, alpha)
        if tp is not None:
            ax.axvline(tp["step"], color=color, linestyle="--", linewidth=1.4,
                       label=f"turning point (step {tp['step']})")


def figure(runs: list[Run], key: str, title: str, ylabel: str, labels: list[str], alpha: float = EMA_ALPHA):
    """Raw (thin) and smoothed (thick, centred mean) curves of `key` for every run, on shared axes,
    with checkpoints and turning points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110, constrained_layout=True)
    for i, (run, label) in enumerate(zip(runs, labels)):
        xs, ys = run.series(key)
        if not xs:
            continue
        color = f"C{i % 10}"
        se_xs, se = run.series(f"{key}_se")  # validation: the standard error beside each point
        if se and se_xs == xs:
            ax.errorbar(xs, ys, yerr=se, fmt="o", markersize=3, color=color, alpha=0.6, capsize=2,
                        label=f"{label} (± standard error)")
        ax.plot(xs, ys, color=color, alpha=0.3, linewidth=1, label=f"{label} (raw)")
        ax.plot(xs, smooth(ys, alpha), color=color, linewidth=2.2,
                label=f"{label} (centred mean of {smooth_window(len(ys), alpha)} steps)")
    _mark_events(ax, runs, alpha)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    _step_axis(ax)
    if ax.get_lines():
        ax.legend(fontsize=8, loc="best", frameon=False)
    return fig


def _budget_panel(runs: list[Run]) -> bool:
    """A budget-used panel says something only for time budgets; with --max-steps alone it is a straight line."""
    return any(run.config.get("budget_hours") for run in runs)


def lr_budget_figure(runs: list[Run], labels: list[str]):
    """The learning rate each step trained with; beside it the budget used, for runs with a time budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_budget = _budget_panel(runs)
    fig, axes = plt.subplots(1, 2 if with_budget else 1, figsize=(10 if with_budget else 6, 3.8), dpi=110,
                             constrained_layout=True, squeeze=False)
    a1 = axes[0][0]
    for i, (run, label) in enumerate(zip(runs, labels)):
        xs, lr = run.series("learning_rate")
        a1.plot(xs, lr, color=f"C{i % 10}", linewidth=2, marker="." if len(xs) <= 50 else None, label=label)
    a1.set_title("Learning rate")
    a1.set_ylabel("learning rate")
    a1.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    panels = [a1]
    if with_budget:
        a2 = axes[0][1]
        for i, (run, label) in enumerate(zip(runs, labels)):
            xs, frac = run.series("budget_fraction")
            a2.plot(xs, [100 * f for f in frac], color=f"C{i % 10}", linewidth=2, label=label)
        a2.set_title("Budget used")
        a2.set_ylabel("budget used (%)")
        panels.append(a2)
    for a in panels:
        _step_axis(a)
        if a.get_lines():
            a.legend(fontsize=8, frameon=False)
    return fig


def report(run_dirs: list[str | Path], output: str | Path | None = None, alpha: float = EMA_ALPHA) -> dict:
    """Figures, report.md and report.json for one or more runs (several overlay on the same axes)."""
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise BudgetError("report needs at least one run folder.")
    from budgetreason.checks import output_folder

    runs = [load_run(p) for p in run_dirs]
    out = output_folder(output or Path(run_dirs[0]) / "report")
    out.mkdir(parents=True, exist_ok=True)
    labels = legend_labels(runs)
    figures = {}
    for name, (key, title, ylabel) in FIGURES.items():
        if not any(run.series(key)[0] for run in runs):
            continue
        fig = figure(runs, key, title, ylabel, labels, alpha)
        fig.savefig(out / f"{name}.png")
        plt.close(fig)
        figures[name] = f"{name}.png"
    fig = lr_budget_figure(runs, labels)
    fig.savefig(out / "lr_budget.png")
    plt.close(fig)
    figures["lr_budget"] = "lr_budget.png"
    analyses = [analyse(r, alpha) | {"label": lab} for r, lab in zip(runs, labels)]
    data = {"runs": analyses, "figures": figures, "smoothing_alpha": alpha}
    (out / "report.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(to_markdown(data))
    return data


def to_markdown(data: dict) -> str:
    lines = ["# budgetreason report", ""]
    lines.append("| run | model | rank | steps | hours | $ | reward (first → last tenth) | train entropy Δ % | length % | "
                 "best val (step) | turning point | verdict |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for a in data["runs"]:
        bv = a["best_checkpoint"]
        tp = a["turning_point"]
        best = "" if not bv else f"{bv['accuracy']:.3f} ({bv['step']})"
        lines.append(
            f"| {a['label']} | {a['model']} | {a['lora_rank']} | {a['steps']} | {a['hours']:.2f} | {a['cost_usd']:.2f} | "
            f"{_fmt(a['reward_first_tenth'])} → {_fmt(a['reward_last_tenth'])} | {_pct(a['train_entropy_change_pct'])} | "
            f"{_pct(a['length_change_pct'])} | {best} | "
            f"{'' if not tp else tp['step']} | **{a['verdict']}** |")
    lines += ["", "Reward: the accuracy reward where logged, else the total. Train entropy (TRL's token-weighted entropy "
              "at the sampling temperature) and length: last tenth of training against the first, in percent; the "
              "paper's ΔH_rel (evaluation entropy, adapter vs base model) is in `budgetreason compare`. "
              "Verdict and turning-point rules: budgetreason/report/reporting.py.", ""]
    lines += [f"- {a['label']}: {a['verdict']} ({a['verdict_note']})" for a in data["runs"] if a.get("verdict_note")]
    lines.append("")
    for name, path in data["figures"].items():
        lines += [f"![{name}]({path})", ""]
    return "\n".join(lines)


def _fmt(x) -> str:
    """Rewards and accuracies (fractions): three decimals."""
    return "–" if x is None else f"{x:.3f}"


def _pct(x) -> str:
    """Relative changes in percent: a sign and one decimal, the same in every row."""
    return "–" if x is None else f"{x:+.1f}"
