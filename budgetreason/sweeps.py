"""``budgetreason sweep``: the micro-budget paper's experiment — models × LoRA ranks, one run after another.

Each run gets its own folder (``<output>/<model>-r<rank>``) and is planned for the GPU with its
rank fixed. Everything the paper held fixed stays fixed across ranks: LoRA alpha (the recipe's, the
user's, or SWEEP_ALPHA, never the planner's 4·r), learning rate, schedule and prompts per step (the
recipe's, or the fewest the planner picks for any rank, pinned for all); only the micro-batch split
may differ. ``sweep.json`` lists the queue and each run's state. A killed sweep, started again
with the same command, skips finished runs and resumes the first unfinished one from its last
checkpoint; the sweep ends with the combined report of all runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.train.config import slug

#: LoRA alpha held fixed across ranks when neither the recipe nor --alpha gives one (the micro-budget
#: recipe's value: see budgetreason/train/recipes/micro-budget.yaml for why 32).
SWEEP_ALPHA = 32


def sweep_configs(models: list[str], ranks: list[int], *, recipe: str | None = None, dataset: str | None = None,
                  hours_each: float | None = None, max_steps_each: int | None = None, **settings) -> dict:
    """The pinned settings of each (model, rank) run: {(model, rank): train() overrides}, checked equal across ranks."""
    from budgetreason.train.training import _user_config, resolve

    out: dict[tuple[str, int], dict] = {}
    for m in models:
        base = dict(settings, model=m, dataset=dataset, budget_hours=hours_each, max_steps=max_steps_each)
        cfg0 = _user_config(recipe, base)
        alpha = cfg0.lora_alpha or SWEEP_ALPHA
        runs = {r: resolve(_user_config(recipe, dict(base, lora_rank=r, lora_alpha=alpha))) for r in ranks}
        pps = cfg0.prompts_per_step or min(run.config.prompts_per_step for run in runs.values())
        for r in ranks:
            out[(m, r)] = dict(base, lora_rank=r, lora_alpha=alpha, prompts_per_step=pps)
    return out


def sweep(models: list[str], ranks: list[int], *, output: str | Path, dataset: str | None = None,
          hours_each: float | None = None, max_steps_each: int | None = None, recipe: str | None = None,
          console=None, wait: bool = False, **settings) -> dict:
    """Train every (model, rank) in turn, resumably; returns sweep.json's content with the report.

    The sweep folder is locked like a run folder (and each run's own folder by `train`): a second
    sweep on the same output is refused, or with `wait` waits for the first to end."""
    from budgetreason.runs.folder import RunFolder

    if not models or not ranks:
        raise BudgetError("sweep needs at least one model (--models) and one rank (--ranks).")
    if hours_each is None and max_steps_each is None and not _recipe_budget(recipe):
        raise BudgetError("Give each run a budget: --hours-each H and/or --max-steps-each N.")
    from budgetreason.checks import at_least, output_folder
    from budgetreason.plan.architectures import resolve_model

    if hours_each is not None and hours_each <= 0:
        raise BudgetError(f"--hours-each must be more than 0, got {hours_each:g}.")
    at_least(max_steps_each, 1, "--max-steps-each")
    at_least(min(ranks), 1, "--ranks")
    for m in models:
        resolve_model(m)  # an unknown model fails now, not after the first runs
    output_folder(output)
    with RunFolder(output).locked(wait=wait, console=console):
        return _sweep(models, ranks, Path(output), dataset, hours_each, max_steps_each, recipe, console, settings)


def run_folder(output: str | Path, model: str, rank: int) -> str:
    """Where a sweep into `output` writes `model`'s rank-`rank` run (also listed in sweep.json's queue).

    >>> run_folder("sweeps/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", 256)
    'sweeps/Qwen2.5-1.5B-Instruct/qwen2.5-1.5b-instruct-r256'
    """
    return str(Path(output) / f"{slug(model)}-r{rank}")


def _sweep(models, ranks, out: Path, dataset, hours_each, max_steps_each, recipe, console, settings) -> dict:
    from budgetreason.report.reporting import report
    from budgetreason.train.training import train

    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "sweep.json"
    queue = [{"model": m, "rank": r, "output": run_folder(out, m, r)} for m in models for r in ranks]
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    if state and [(q["model"], q["rank"]) for q in state["queue"]] != [(q["model"], q["rank"]) for q in queue]:
        raise BudgetError(f"{out} holds another sweep ({len(state['queue'])} runs); use another --output.")
    pinned = sweep_configs(models, ranks, recipe=recipe, dataset=dataset, hours_each=hours_each,
                           max_steps_each=max_steps_each, **settings)
    state = state or {"queue": queue, "dataset": dataset, "hours_each": hours_each, "recipe": recipe,
                      "max_steps_each": max_steps_each, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def save() -> None:
        tmp = state_file.with_name("sweep.json.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(state_file)

    save()
    for item in state["queue"]:
        if item.get("status") == "done" and (Path(item["output"]) / "summary.json").is_file():
            continue
        item["status"] = "running"
        save()
        if console is not None:
            console.rule(f"sweep: {item['model']} rank {item['rank']}")
        result = train(recipe, output=item["output"], console=console, **pinned[(item["model"], item["rank"])])
        item.update(status="done", steps=result.steps, stop_reason=result.stop_reason)
        save()
    data = report([q["output"] for q in state["queue"]], output=out / "report")
    state["report"] = str(out / "report" / "report.md")
    state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    save()
    return state | {"report_data": data}


def _recipe_budget(recipe: str | None) -> bool:
    if recipe is None:
        return False
    from budgetreason.train.recipes import load_recipe

    data = load_recipe(recipe)
    return bool(data.get("budget_hours") or data.get("max_steps"))
