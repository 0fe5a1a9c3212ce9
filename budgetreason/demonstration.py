"""``budgetreason demo``: the whole pipeline on the built-in tiny model, on a CPU, in minutes.

plan → GRPO with LoRA on ``tiny-arith`` → held-out accuracy before and after → a short report.
The tiny model was warmed up to solve most two-digit sums but to slip now and then and to skip
its reasoning sometimes (budgetreason.models.tiny); GRPO's accuracy and format rewards teach it out
of both, which the printed table shows.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_STEPS = 30
EVAL_SAMPLES = 8
EVAL_PROBLEMS = 100


def demo(output: str | Path = "runs/demo", seed: int = 0, steps: int = DEMO_STEPS, console=None) -> dict:
    """Run the demo into `output`; returns before/after scores and the reward's first and last fifth."""
    from rich.console import Console

    from budgetreason.checks import at_least, output_folder
    from budgetreason.evaluate.comparison import compare, to_rich
    from budgetreason.evaluate.evaluation import evaluate
    from budgetreason.plan.planner import plan
    from budgetreason.plan.tables import plan_view
    from budgetreason.train.training import train

    at_least(steps, 1, "--steps")  # before the minutes of planning and the baseline evaluation
    out = output_folder(output)
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    console.rule("1. plan")
    p = plan("cpu", "tiny-arith", hours=0.1, lora_rank=16, num_generations=8, max_prompt_length=128,
             max_completion_length=64, per_device_train_batch_size=64, gradient_accumulation_steps=1)
    console.print(plan_view(p))
    common = dict(benchmarks=["arith"], samples=EVAL_SAMPLES, max_tokens=64, temperature=1.0, top_p=1.0,
                  seed=seed, limit=EVAL_PROBLEMS, backend="hf")
    console.rule("2. before: tiny-arith on held-out problems")
    before = evaluate("tiny-arith", output=out / "eval-before", label="tiny-arith", **common)
    console.rule(f"3. GRPO with LoRA, {steps} steps")
    run_dir = out / "run"
    result = train(model="tiny-arith", dataset="arith", max_steps=steps, seed=seed, output=str(run_dir),
                   backend="hf", gpu="cpu", save_minutes=5, console=console)
    console.rule("4. after: the trained adapter on the same problems")
    after = evaluate("tiny-arith", adapter=str(run_dir), output=out / "eval-after",
                     label="tiny-arith + GRPO LoRA", **common)
    table = compare([out / "eval-before", out / "eval-after"], output=out)
    console.print(to_rich(table))
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    fifth = max(1, len(rows) // 5)
    acc = [r.get("rewards/accuracy", 0.0) for r in rows]
    summary = {
        "steps": result.steps, "seconds": result.elapsed_s,
        "accuracy_reward_first_fifth": round(sum(acc[:fifth]) / fifth, 4),
        "accuracy_reward_last_fifth": round(sum(acc[-fifth:]) / fifth, 4),
        "heldout_before": before["benchmarks"]["arith"], "heldout_after": after["benchmarks"]["arith"],
        "run": str(run_dir),
    }
    from budgetreason.report.reporting import report

    report([run_dir], output=out / "report")
    summary["report"] = str(out / "report" / "report.md")
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    b, a = summary["heldout_before"], summary["heldout_after"]
    console.print(f"accuracy reward: {summary['accuracy_reward_first_fifth']:.2f} in the first fifth of training → "
                  f"{summary['accuracy_reward_last_fifth']:.2f} in the last; held-out pass@1 "
                  f"{b['pass@1']:.2f} → {a['pass@1']:.2f}; everything is in {out}")
    return summary
