"""Reports from synthetic run folders: numbers, verdicts, turning points, and the plotted data."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import yaml

from budgetreason.report.reporting import (
    FIGURES,
    analyse,
    figure,
    legend_labels,
    load_run,
    lr_budget_figure,
    report,
    smooth,
    turning_point,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(tmp_path, name, series: dict, steps=100, rank=64, model="Qwen/Qwen2.5-1.5B-Instruct", val=None,
             checkpoints=(), price=0.30):
    d = tmp_path / name
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model, "dataset": "open-rs", "lora_rank": rank,
                                                   "backend": "unsloth", "seed": 42}))
    (d / "plan.json").write_text(json.dumps({"gpu": {"name": "NVIDIA A40", "price_usd_hr": price, "is_cuda": True},
                                             "config": {"num_generations": 8}}))
    rows = []
    for i in range(steps):
        row = {"step": i + 1, "elapsed_s": 300.0 * (i + 1), "learning_rate": 1e-6, "budget_fraction": (i + 1) / steps}
        for key, fn in series.items():
            row[key] = fn(i / (steps - 1))
        if val and (i + 1) % 10 == 0:
            row["val/accuracy"] = val((i) / (steps - 1))
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for c in checkpoints:
        (d / f"checkpoint-{c}").mkdir()
        (d / f"checkpoint-{c}" / "COMPLETE").write_text("{}")
    return d


rng = random.Random(0)


def noisy(f, sd=0.02):
    return lambda t: f(t) + rng.gauss(0, sd)


def rising(tmp_path, name="rising", rank=256):
    return make_run(tmp_path, name, {
        "rewards/accuracy": noisy(lambda t: 0.2 + 0.5 * t), "rewards/format": noisy(lambda t: 0.5 + 0.5 * t),
        "reward": noisy(lambda t: 0.3 + 0.6 * t), "completion_length": noisy(lambda t: 700 + 500 * t, 10),
        "entropy": noisy(lambda t: 0.6 - 0.2 * t, 0.01)}, rank=rank, val=lambda t: 0.4 + 0.2 * t,
        checkpoints=(30, 60, 90))


def test_rising_run_is_learning_with_the_papers_numbers(tmp_path):
    a = analyse(load_run(rising(tmp_path)))
    assert a["verdict"] == "learning"
    assert a["reward_last_tenth"] - a["reward_first_tenth"] > 0.3
    assert a["train_entropy_change_pct"] == pytest.approx(-100 * 0.2 * 0.95 / 0.6, abs=6)  # ≈ -32%
    assert a["length_change_pct"] > 50
    assert a["steps"] == 100 and a["hours"] == pytest.approx(100 * 300 / 3600, rel=1e-3)
    assert a["cost_usd"] == pytest.approx(0.30 * 100 * 300 / 3600, abs=0.01)
    assert a["best_checkpoint"]["step"] == 100 and a["best_checkpoint"]["nearest_checkpoint"] == 90


def test_flat_run(tmp_path):
    d = make_run(tmp_path, "flat", {"rewards/accuracy": noisy(lambda t: 0.3), "reward": noisy(lambda t: 0.4),
                                     "entropy": noisy(lambda t: 0.5, 0.005), "completion_length": noisy(lambda t: 800, 5)})
    assert analyse(load_run(d))["verdict"] == "flat"


def test_collapsing_run(tmp_path):
    """Reward rises then falls while entropy drops: Qwen2.5-Math at rank 256 in the paper."""
    d = make_run(tmp_path, "collapse", {
        "rewards/accuracy": noisy(lambda t: 0.3 + 0.2 * math.sin(math.pi * min(t, 0.5)) - 0.35 * max(0, t - 0.5)),
        "reward": noisy(lambda t: 0.4), "entropy": noisy(lambda t: 0.6 * (1 - 0.8 * t), 0.005),
        "completion_length": noisy(lambda t: 900 - 500 * t, 5)}, val=lambda t: 0.5 - 0.3 * t)
    a = analyse(load_run(d))
    assert a["verdict"] == "collapsing" and a["train_entropy_change_pct"] < -50


def test_turning_point_where_format_peaks(tmp_path):
    d = make_run(tmp_path, "turn", {
        "rewards/format": noisy(lambda t: 0.4 + 0.5 * min(t, 0.6) / 0.6 - 0.6 * max(0, t - 0.6), 0.01),
        "rewards/accuracy": noisy(lambda t: 0.3), "completion_length": noisy(lambda t: 1000, 5)})
    tp = turning_point(load_run(d))
    assert tp is not None and "format" in tp["rule"] and 55 <= tp["step"] <= 75


def test_turning_point_where_length_bottoms_out(tmp_path):
    d = make_run(tmp_path, "len", {"rewards/format": noisy(lambda t: 0.9, 0.005),
                                   "completion_length": noisy(lambda t: 1200 - 600 * min(t, 0.4) / 0.4 + 900 * max(0, t - 0.4), 5)})
    tp = turning_point(load_run(d))
    assert tp is not None and "length" in tp["rule"] and 35 <= tp["step"] <= 50
    assert turning_point(load_run(rising(tmp_path, "r2"))) is None


def test_smoother_is_a_centred_mean():
    assert smooth([0, 10, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0], 0.1) == pytest.approx(
        [5, 20 / 3, 10, 20 / 3, 10 / 3, 0, 0, 0, 0, 0, 0, 0])  # window 3 (a quarter of 12, odd)
    assert len(smooth(list(range(100)), 0.1)) == 100 and smooth(list(range(100)), 0.1)[50] == pytest.approx(50)


def test_figures_plot_the_expected_series(tmp_path):
    runs = [load_run(rising(tmp_path, f"r{r}", rank=r)) for r in (8, 64, 256)]
    labels = legend_labels(runs)
    assert labels == ["rank 8", "rank 64", "rank 256"]
    key, title, ylabel = FIGURES["accuracy"]
    fig = figure(runs, key, title, ylabel, labels, alpha=0.1)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]  # curves, not the checkpoint markers
    assert len(lines) == 6  # raw + smoothed per run
    xs, ys = runs[0].series(key)
    raw = lines[0].get_xydata()
    assert list(raw[:, 0]) == xs and list(raw[:, 1]) == pytest.approx(ys)
    assert list(lines[1].get_xydata()[:, 1]) == pytest.approx(smooth(ys, 0.1))
    assert ax.get_xlabel() == "optimizer step" and "(fraction correct)" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["rank 8 (raw)", "rank 8 (centred mean of 19 steps)"]
    markers = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert sorted({float(ln.get_xdata()[0]) for ln in markers}) == [30, 60, 90]  # the checkpoints


def test_report_writes_pngs_markdown_and_json(tmp_path):
    dirs = [rising(tmp_path, f"r{r}", rank=r) for r in (8, 256)]
    data = report(dirs, output=tmp_path / "rep")
    out = tmp_path / "rep"
    for name in ("accuracy", "format", "reward", "length", "train_entropy", "validation", "lr_budget"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    md = (out / "report.md").read_text()
    assert "![accuracy](accuracy.png)" in md and "**learning**" in md and "rank 256" in md
    js = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in js["runs"]] == ["rank 8", "rank 256"] and js == data | {"runs": js["runs"]}


def test_report_on_a_run_that_is_still_going(tmp_path):
    d = rising(tmp_path)
    (d / "metrics.jsonl").write_text((d / "metrics.jsonl").read_text() + '{"step": 101, "rew')  # cut mid-write
    a = report([d], output=tmp_path / "rep")["runs"][0]
    assert a["steps"] == 100 and a["status"] == "running or interrupted"


# ---- a short run as a first-time user makes one: 20 steps, a time-free --max-steps budget ---------------------
def short_run(tmp_path, steps=20, lr=2e-4):
    """Accuracy is a step function (0 for ten steps, then 1); the LR follows budgetreason's schedule."""
    from budgetreason.train.budget import lr_multiplier

    warmup = 2  # ceil(0.1 × 20)
    d = make_run(tmp_path, "short", {"rewards/accuracy": lambda t: 0.0 if t < 0.5 else 1.0,
                                     "completion_length": lambda t: 40.0, "entropy": lambda t: 0.5},
                 steps=steps, checkpoints=(10, 20))
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["learning_rate"] = lr * lr_multiplier(r["step"] - 1, steps, warmup, 0.1)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = yaml.safe_load((d / "config.yaml").read_text()) | {"max_steps": steps, "budget_hours": None,
                                                              "warmup_ratio": 0.1, "min_lr_ratio": 0.1}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d


def _integer_ticks(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_short_run_figures_integer_ticks_and_an_unlagged_smoother(tmp_path):
    run = load_run(short_run(tmp_path))
    key, title, ylabel = FIGURES["accuracy"]
    fig = figure([run], key, title, ylabel, ["tiny"], alpha=0.1)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert _integer_ticks(ax)
    xs, raw = run.series(key)
    assert raw[:10] == [0.0] * 10 and raw[10:] == [1.0] * 10
    curve = [ln for ln in ax.get_lines() if "centred mean" in str(ln.get_label())][0].get_ydata()
    last5 = sum(raw[-5:]) / 5
    assert abs(curve[-1] - last5) <= 0.02 * last5  # an EMA from the first point ends at 0.65 here
    assert abs(smooth(raw, 0.1)[-1] - last5) <= 0.02 * last5


def test_lr_panel_matches_the_schedule_step_by_step_and_drops_budget_panel(tmp_path):
    from budgetreason.train.budget import lr_multiplier

    run = load_run(short_run(tmp_path))
    fig = lr_budget_figure([run], ["tiny"])
    fig.canvas.draw()
    assert len(fig.axes) == 1  # --max-steps only: "budget used" would be a straight line
    ax = fig.axes[0]
    assert _integer_ticks(ax)
    xy = ax.get_lines()[0].get_xydata()
    assert list(xy[:, 0]) == list(range(1, 21))
    assert list(xy[:, 1]) == pytest.approx([2e-4 * lr_multiplier(t - 1, 20, 2, 0.1) for t in range(1, 21)])
    timed = rising(tmp_path, "timed")
    cfg = yaml.safe_load((timed / "config.yaml").read_text()) | {"budget_hours": 8.0}
    (timed / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert len(lr_budget_figure([load_run(timed)], ["r"]).axes) == 2


def test_the_schedule_trains_step_t_at_update_t_minus_1(tmp_path):
    """Trainer's order per step: optimizer.step, read the LR it used (what metrics.jsonl logs), scheduler.step,
    global_step += 1. A real torch optimizer and LambdaLR through install_step_schedule: the LR of step t is the
    schedule's at update t − 1 (0-based, as transformers counts), so the logged curve has no one-step lag."""
    from types import SimpleNamespace

    import torch

    from budgetreason.train.budget import Horizon, install_step_schedule

    param = torch.nn.Parameter(torch.zeros(1))
    trainer = SimpleNamespace(optimizer=torch.optim.SGD([param], lr=1.0), lr_scheduler=None,
                              state=SimpleNamespace(global_step=0))
    horizon = Horizon(steps=20, warmup_ratio=0.1, min_lr_ratio=0.1)
    install_step_schedule(trainer, horizon)
    scheduler = trainer.create_scheduler(20)
    used = []
    for _ in range(20):
        trainer.optimizer.step()
        used.append(scheduler.get_last_lr()[0])
        scheduler.step()
        trainer.state.global_step += 1
    assert used == pytest.approx([horizon.multiplier(t - 1) for t in range(1, 21)])
    assert used[0] == 0.0 and used[2] == 1.0 and used[-1] < used[10]  # warm-up from 0, peak at step 3, then down


def test_short_run_verdict_states_its_uncertainty(tmp_path):
    a = analyse(load_run(short_run(tmp_path)))
    assert a["verdict"] == "learning" and "last 5 vs first 5 steps: +1.000 ± 0.000" in a["verdict_note"]
    d = make_run(tmp_path, "tiny", {"rewards/accuracy": noisy(lambda t: 0.3 + 0.5 * t)}, steps=6)
    b = analyse(load_run(d))
    assert b["verdict"] == "too short" and "at least 10" in b["verdict_note"]
    noisy_flat = make_run(tmp_path, "noisy", {"rewards/accuracy": lambda t: [0.1, 0.6][int(t * 19) % 2] + 0.06 * t},
                          steps=20)
    assert analyse(load_run(noisy_flat))["verdict"] == "flat"  # +0.06 is inside two standard errors


def test_report_table_formats_percentages_alike(tmp_path):
    md = (tmp_path / "rep" / "report.md") if report([rising(tmp_path)], output=tmp_path / "rep") else None
    row = [line for line in md.read_text().splitlines() if line.startswith("| Qwen")][0].split("|")
    entropy_pct, length_pct = row[8].strip(), row[9].strip()
    assert re.fullmatch(r"[+-]\d+\.\d", entropy_pct) and re.fullmatch(r"[+-]\d+\.\d", length_pct), row
