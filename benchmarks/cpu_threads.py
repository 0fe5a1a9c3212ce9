"""torch's CPU threads under contention: one GRPO-shaped generation batch of the demo, by thread count.

Each configuration runs in a fresh interpreter with BUDGETREASON_THREADS fixed (or unset, for
budgetreason's own choice, budgetreason.models.backends.hf.cpu_threads) while ``--load N`` busy
processes hold cores, as other jobs on a shared machine do. The batch is the demo's: 8 prompts
× 8 samples of up to 64 tokens from tiny-arith with transformers. Prints a Markdown table.

    python benchmarks/cpu_threads.py --load 0 --load 2 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = r"""
import json, time
from budgetreason.data.arith import make_problems
from budgetreason.evaluate.evaluation import load_hf_policy
from budgetreason.evaluate.generation import HFGenerator, SamplingSettings
import torch
model, tok = load_hf_policy("tiny-arith", None)
gen = HFGenerator(model, tok)
prompts = [[{"role": "user", "content": p.problem}] for p in make_problems(8, seed=0, heldout=True)]
settings = SamplingSettings(n=8, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)
gen.generate(prompts[:1], SamplingSettings(n=1, temperature=1.0, top_p=1.0, max_tokens=8, seed=0))  # warm-up
t0 = time.perf_counter()
gen.generate(prompts, settings)
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""

BUSY = "while True: pass"


def run(threads: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BUDGETREASON_THREADS", "OMP_NUM_THREADS")}
    if threads:
        env["BUDGETREASON_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", WORKLOAD], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", type=int, action="append", help="busy processes beside the run (repeatable)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1,2,auto", help="comma list; auto = budgetreason's choice")
    args = ap.parse_args()
    from budgetreason.models.backends.hf import cgroup_cpus, cpu_threads

    print(f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} in this process's affinity, cgroup quota "
          f"{cgroup_cpus() or 'none'}), load average before: {os.getloadavg()[0]:.1f}, "
          f"budgetreason's choice now: {cpu_threads()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("\n| busy processes beside | threads | torch threads used | median s | min s |\n|---|---|---|---|---|")
    for load in args.load or [0]:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
        try:
            time.sleep(2 if load else 0)
            for threads in args.threads.split(","):
                res = [run(None if threads == "auto" else threads) for _ in range(args.reps)]
                secs = [r["seconds"] for r in res]
                used = sorted({r["threads"] for r in res})
                print(f"| {load} | {threads} | {', '.join(map(str, used))} | {statistics.median(secs):.2f} | "
                      f"{min(secs):.2f} |", flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
