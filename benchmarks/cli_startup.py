"""CLI cold start: wall time of `budgetreason --help` and each command's start, in fresh interpreters.

    python benchmarks/cli_startup.py [--repeat 5]

Prints a Markdown table (median and max of the repeats) and the heavy modules imported, for
docs/benchmarks.md. The target is under one second with no torch/transformers import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = [
    ["--help"],
    ["plan", "--gpu", "a40", "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--hours", "24"],
    ["plan", "--gpu", "t4", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--json"],
    ["gpus"], ["models"], ["recipes"], ["benchmarks"],
    ["train", "--help"], ["eval", "--help"], ["report", "--help"], ["sweep", "--help"], ["demo", "--help"],
]
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "vllm", "unsloth")


def run(args: list[str]) -> tuple[float, set[str]]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli.main", *args], capture_output=True, text=True,
                       env=dict(os.environ, COLUMNS="120"))
    dt = time.perf_counter() - t0
    mods = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")}
    if r.returncode not in (0, 1):
        raise SystemExit(f"{args}: exit {r.returncode}: {r.stderr[-500:]}")
    return dt, mods & set(HEAVY)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    n = ap.parse_args().repeat
    print(f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}, "
          f"{n} runs each (with -X importtime, which adds a little)\n")
    print("| command | median s | max s | heavy modules imported |")
    print("|---|---|---|---|")
    for args in CASES:
        times, heavy = [], set()
        for _ in range(n):
            dt, h = run(args)
            times.append(dt)
            heavy |= h
        print(f"| `budgetreason {' '.join(args)}` | {statistics.median(times):.2f} | {max(times):.2f} | "
              f"{', '.join(sorted(heavy)) or 'none'} |")


if __name__ == "__main__":
    main()
