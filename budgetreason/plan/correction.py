"""The planner's correction from measurements: read a calibration file, fit, and nothing else.

``budgetreason calibrate`` streams one JSON line per optimizer step to ``calibration.jsonl``
(earlier versions wrote one ``calibration.json`` with a record per configuration); both are
read here. Per configuration the measured peak is the largest of its steps and the measured
time the median step after the first (the first carries warm-up). The fit:

    measured_peak ≈ a · predicted_total + b        (least squares over this GPU's configurations)
    generation_s  ≈ g · predicted generate_s        (median ratio)
    rest_s        ≈ t · predicted train_s + overhead_s  (median ratio; rewards and training)

This module imports no training code (the planner imports it).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from budgetreason.errors import BudgetError

GIB = 1024**3


@dataclass
class Correction:
    """The planner's correction for one GPU (and generation engine), fitted from calibration records."""

    gpu: str
    a: float = 1.0
    b_gib: float = 0.0
    time_ratio: float = 1.0
    points: int = 0
    generate_ratio: float | None = None
    """Measured / predicted generation seconds; None: use time_ratio."""
    train_ratio: float | None = None
    """Measured / predicted seconds of rewards and training; None: use time_ratio."""
    engine: str | None = None
    """The generation engine the time ratios were measured with (None: not recorded, old files)."""
    time_note: str | None = None
    """Why time is not corrected (the file has no measurement with the plan's engine); None when it is."""

    def memory(self, predicted_bytes: int) -> int:
        return int(self.a * predicted_bytes + self.b_gib * GIB)

    def times(self, generate_s: float, train_s: float, overhead_s: float) -> tuple[float, float, float]:
        g = self.generate_ratio if self.generate_ratio is not None else self.time_ratio
        t = self.train_ratio if self.train_ratio is not None else self.time_ratio
        return generate_s * g, train_s * t, overhead_s * t


@dataclass
class Point:
    """One measured configuration: predicted and measured totals, and the split where known."""

    gpu: str
    engine: str | None
    predicted_gib: float
    measured_gib: float | None
    predicted_s: float
    measured_s: float
    predicted_generate_s: float | None = None
    measured_generate_s: float | None = None
    predicted_rest_s: float | None = None
    measured_rest_s: float | None = None


def read_points(path: str | Path) -> list[Point]:
    """Measured configurations in a calibration file (.jsonl step lines, or the older .json records)."""
    p = Path(path)
    if not p.is_file():
        raise BudgetError(f"--calibration {path}: no such file; create one with `budgetreason calibrate`.")
    text = p.read_text()
    try:
        if p.suffix == ".jsonl":
            points, kinds = _points_from_lines(text)
        else:
            points, kinds = [_point_from_record(r) for r in json.loads(text)["records"]], {"records"}
    except (KeyError, json.JSONDecodeError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        kinds = set()
    if not kinds & {"step", "session", "failure", "records"}:
        raise BudgetError(f"--calibration {path}: not a calibration file written by `budgetreason calibrate`.")
    if not points and "records" not in kinds:
        raise BudgetError(f"--calibration {path}: no measured step in it (every configuration failed or stopped "
                          "before its first step); run `budgetreason calibrate` again.")
    return points


def _point_from_record(r: dict) -> Point:
    return Point(gpu=r["gpu"], engine=r.get("engine"), predicted_gib=r["predicted"]["total_gib"],
                 measured_gib=r["measured"]["peak_gib"], predicted_s=r["predicted"]["step_seconds"],
                 measured_s=r["measured"]["step_seconds"])


def _points_from_lines(text: str) -> tuple[list[Point], set[str]]:
    """The measured configurations, and the kinds of line seen (none: not a calibration file)."""
    groups: dict[tuple, list[dict]] = {}
    kinds: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: every finished line still counts
        if not isinstance(row, dict):
            continue
        kinds.add(str(row.get("kind")))
        if row.get("kind") != "step":
            continue
        groups.setdefault((row["gpu"], row["engine"], row["run_id"]), []).append(row)
    points = []
    for (gpu, engine, _), rows in groups.items():
        rows.sort(key=lambda r: r["step"])
        timed = rows[1:] or rows  # the first step carries warm-up (compilation, allocator growth)
        peaks = [r["memory_gib"]["peak"] for r in rows if r["memory_gib"].get("peak")]
        pred = rows[0]["predicted"]
        br = pred["step_breakdown"]
        points.append(Point(
            gpu=gpu, engine=engine, predicted_gib=pred["total_gib"], measured_gib=max(peaks) if peaks else None,
            predicted_s=br["total_s"], measured_s=statistics.median(r["seconds"]["total"] for r in timed),
            predicted_generate_s=br["generate_s"],
            measured_generate_s=statistics.median(r["seconds"]["generation"] for r in timed),
            predicted_rest_s=br["train_s"] + br["overhead_s"],
            measured_rest_s=statistics.median(r["seconds"]["reward"] + r["seconds"]["training"] for r in timed)))
    return points, kinds


def load_correction(path: str | Path, gpu_key: str, engine: str | None = None) -> Correction:
    """Fit measured ≈ a·predicted + b (memory) and the median time ratios from `path`'s records for this GPU.

    Memory uses every configuration of the GPU. Time ratios come only from configurations measured
    with `engine` (an engine's speed says nothing about another's), or from old records that name no
    engine; with none of those, time keeps the model's own numbers and `time_note` says why.
    """
    points = [pt for pt in read_points(path) if pt.gpu == gpu_key and pt.measured_gib]
    if not points:
        raise BudgetError(f"--calibration {path} has no measurements for {gpu_key}; calibrate on this GPU first.")
    xs = [pt.predicted_gib for pt in points]
    ys = [pt.measured_gib for pt in points]
    if len(set(xs)) >= 2:
        mx, my = statistics.mean(xs), statistics.mean(ys)
        a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        b = my - a * mx
    else:
        a, b = ys[0] / xs[0], 0.0
    if engine is None:
        timed = points
    else:
        timed = [pt for pt in points if pt.engine == engine] or [pt for pt in points if pt.engine is None]
    if not timed:
        measured = ", ".join(sorted({pt.engine for pt in points if pt.engine}))
        return Correction(gpu=gpu_key, a=a, b_gib=b, points=len(points), time_note=(
            f"time not corrected: {Path(path).name} was measured with {measured} only, not {engine} (an engine's speed says "
            f"nothing about another's); calibrate with this engine to correct it"))
    ratio = statistics.median(pt.measured_s / pt.predicted_s for pt in timed)
    split = [pt for pt in timed if pt.predicted_generate_s and pt.predicted_rest_s]
    gen = statistics.median(pt.measured_generate_s / pt.predicted_generate_s for pt in split) if split else None
    rest = statistics.median(pt.measured_rest_s / pt.predicted_rest_s for pt in split) if split else None
    return Correction(gpu=gpu_key, a=a, b_gib=b, time_ratio=ratio, points=len(points), generate_ratio=gen,
                      train_ratio=rest, engine=timed[0].engine)
