"""``budgetreason calibrate``: measure peak memory and step time on this GPU and correct the planner.

For each configuration of a grid (catalog architectures with random weights, LoRA ranks,
group sizes k, completion lengths) a few real GRPO steps run through ``budgetreason.train`` —
the same code users run — in a fresh subprocess, with completions forced to full length.
Peak memory is read two ways: ``torch.cuda.max_memory_reserved`` (PyTorch's allocator) and
the largest ``nvidia-smi`` reading of the process (everything, vLLM's pools included);
seconds per step is the median after the first step. ``calibration.json`` keeps predicted and
measured values; ``budgetreason plan --calibration calibration.json`` fits

    measured_total ≈ a · predicted_total + b        (least squares over the GPU's records)
    measured_step  ≈ r · predicted_step              (median ratio)

and plans with the corrected numbers. On a CPU the same code measures the process's peak
resident memory, which tests use.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from budgetreason.errors import BudgetError

GIB = 1024**3
DEFAULT_RANKS = (8, 64, 256)
DEFAULT_KS = (8,)
DEFAULT_COMPLETIONS = (512, 3584)
PROMPT_TOKENS = 256


@dataclass(frozen=True)
class Spec:
    model: str
    rank: int
    k: int
    completion: int
    steps: int = 3
    backend: str = "auto"
    gpu: str = "auto"
    prompt: int = PROMPT_TOKENS


def grid(models: list[str], ranks=DEFAULT_RANKS, ks=DEFAULT_KS, completions=DEFAULT_COMPLETIONS, **kw) -> list[Spec]:
    return [Spec(m, r, k, c, **kw) for m in models for r in ranks for k in ks for c in completions]


class _PeakSampler:
    """Largest GPU memory nvidia-smi reports for this process (or peak RSS on a CPU), sampled in a thread."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_mib, self._stop = interval, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pid = str(os.getpid())
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
                for line in out.splitlines():
                    p, mib = (x.strip() for x in line.split(","))
                    if p == pid:
                        self.peak_mib = max(self.peak_mib, float(mib))
            except (OSError, subprocess.SubprocessError, ValueError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        return False


def _rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux reports KiB


def measure(spec: Spec, workdir: Path) -> dict:
    """Run `spec.steps` GRPO steps of one configuration here and return predicted and measured numbers."""
    import torch

    from budgetreason.models import resolve_model
    from budgetreason.synthetic import save_random_model, write_prompts
    from budgetreason.training import train

    cuda = torch.cuda.is_available()
    arch = resolve_model(spec.model)
    model_dir = save_random_model(arch, workdir / "model", dtype="bfloat16" if cuda else "float32")
    data = write_prompts(workdir / "data.jsonl", 64, spec.prompt, arch.vocab_size)
    gen_kwargs = {"min_tokens": spec.completion} if cuda else {"min_new_tokens": spec.completion}
    rss0 = _rss_gib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with _PeakSampler() as sampler:
        result = train(model=str(model_dir), dataset=str(data), lora_rank=spec.rank, num_generations=spec.k,
                       max_completion_length=spec.completion, max_prompt_length=spec.prompt + 64,
                       max_steps=spec.steps, gpu=spec.gpu, backend=spec.backend, output=str(workdir / "run"),
                       progress=False, save_minutes=10_000, learning_rate=1e-6,
                       extra={"generation_kwargs": gen_kwargs})
    plan = json.loads((workdir / "run" / "plan.json").read_text())
    rows = [json.loads(x) for x in (workdir / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps = [r["step_seconds"] for r in rows[1:]] or [r["step_seconds"] for r in rows]
    measured = {
        "torch_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3) if cuda else None,
        "nvidia_smi_gib": round(sampler.peak_mib / 1024, 3) if sampler.peak_mib else None,
        "rss_gib": None if cuda else round(_rss_gib() - rss0, 3),
        "step_seconds": round(statistics.median(steps), 3),
        "completion_length": round(statistics.mean(r.get("completion_length", 0) for r in rows), 1),
    }
    peak = measured["nvidia_smi_gib"] or measured["torch_reserved_gib"] or measured["rss_gib"]
    predicted_total = plan["memory_gib"]["total"]
    return {
        "spec": spec.__dict__, "gpu": plan["gpu"]["key"], "gpu_name": plan["gpu"]["name"], "backend": plan["config"]["backend"],
        "config": plan["config"], "predicted": {"total_gib": predicted_total, "terms_gib": plan["memory_gib"],
                                                "step_seconds": plan["est_step_seconds"]},
        "measured": measured | {"peak_gib": peak},
        "memory_error_pct": round(100 * (predicted_total - peak) / peak, 1) if peak else None,
        "time_error_pct": round(100 * (plan["est_step_seconds"] - measured["step_seconds"]) / measured["step_seconds"], 1),
        "steps": result.steps,
    }


def calibrate(specs: list[Spec], output: str | Path = "calibration.json", console=None, timeout_s: int = 1800) -> dict:
    """Measure every spec in its own subprocess (a clean GPU each time) and write `output`."""
    from budgetreason import versions

    records, failures = [], []
    for spec in specs:
        with tempfile.TemporaryDirectory() as tmp:
            spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
            spec_file.write_text(json.dumps(spec.__dict__))
            proc = subprocess.run([sys.executable, "-m", "budgetreason.calibrate", str(spec_file), str(out_file), tmp],
                                  capture_output=True, text=True, timeout=timeout_s)
            if proc.returncode == 0 and out_file.is_file():
                rec = json.loads(out_file.read_text())
                records.append(rec)
                if console is not None:
                    console.print(f"{spec.model} r{spec.rank} k{spec.k} C{spec.completion}: predicted "
                                  f"{rec['predicted']['total_gib']:.2f} GiB, measured {rec['measured']['peak_gib']:.2f} GiB "
                                  f"({rec['memory_error_pct']:+.1f}%); {rec['measured']['step_seconds']:.1f} s/step "
                                  f"(predicted {rec['predicted']['step_seconds']:.1f})")
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                failures.append({"spec": spec.__dict__, "error": tail[0][:300]})
                if console is not None:
                    console.print(f"[red]{spec.model} r{spec.rank} k{spec.k} C{spec.completion}: failed: {tail[0][:200]}[/]")
    data = {"date": time.strftime("%Y-%m-%d"), "versions": {n: versions.installed(n) for n in
            ("torch", "transformers", "trl", "peft", "unsloth", "vllm")}, "records": records, "failures": failures}
    Path(output).write_text(json.dumps(data, indent=2))
    return data


@dataclass
class Correction:
    """The planner's correction for one GPU, fitted from calibration records."""

    gpu: str
    a: float = 1.0
    b_gib: float = 0.0
    time_ratio: float = 1.0
    points: int = 0

    def memory(self, predicted_bytes: int) -> int:
        return int(self.a * predicted_bytes + self.b_gib * GIB)


def load_correction(path: str | Path, gpu_key: str) -> Correction:
    """Fit measured ≈ a·predicted + b (memory) and the median time ratio from `path`'s records for this GPU."""
    p = Path(path)
    if not p.is_file():
        raise BudgetError(f"--calibration {path}: no such file; create one with `budgetreason calibrate`.")
    try:
        records = [r for r in json.loads(p.read_text())["records"] if r["gpu"] == gpu_key and r["measured"]["peak_gib"]]
    except (KeyError, json.JSONDecodeError, TypeError):
        raise BudgetError(f"--calibration {path}: not a calibration file written by `budgetreason calibrate`.") from None
    if not records:
        raise BudgetError(f"--calibration {path} has no measurements for {gpu_key}; calibrate on this GPU first.")
    xs = [r["predicted"]["total_gib"] for r in records]
    ys = [r["measured"]["peak_gib"] for r in records]
    if len(set(xs)) >= 2:
        mx, my = statistics.mean(xs), statistics.mean(ys)
        a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        b = my - a * mx
    else:
        a, b = ys[0] / xs[0], 0.0
    ratio = statistics.median(r["measured"]["step_seconds"] / r["predicted"]["step_seconds"] for r in records)
    return Correction(gpu=gpu_key, a=a, b_gib=b, time_ratio=ratio, points=len(records))


def _main() -> None:
    spec_file, out_file, workdir = sys.argv[1:4]
    spec = Spec(**json.loads(Path(spec_file).read_text()))
    Path(out_file).write_text(json.dumps(measure(spec, Path(workdir))))


if __name__ == "__main__":
    _main()
