"""``budgetreason eval``, ``compare`` and ``benchmarks``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.options import JsonOpt


def eval_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Base model (catalog name, hub id, folder, tiny-arith).")],
    adapter: Annotated[str | None, typer.Option("--adapter", help="Run folder, checkpoint or adapter folder.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help="tina or micro-budget: a paper's benchmarks, samples, k and sampling.")] = None,
    benchmarks: Annotated[str | None, typer.Option("--benchmarks", "-b", help="Comma list; default aime24,aime25,amc23.")] = None,
    samples: Annotated[int | None, typer.Option("--samples", "-n", help="Samples per problem (16).")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="New tokens per sample (3584, less for a short context).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="0.6")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="0.95")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: Annotated[list[str] | None, typer.Option("--data", help="Local copy: PATH for one benchmark, or NAME=PATH (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N problems of each benchmark.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto (vLLM on a GPU), vllm, unsloth (its fast generation), hf.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    label: Annotated[str | None, typer.Option("--label", help="Row name in comparison tables.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample completions and score pass@k, length and entropy; resumes an interrupted evaluation."""
    from rich.console import Console

    from budgetreason.errors import BudgetError
    from budgetreason.evaluate.evaluation import PROTOCOLS, evaluate, parse_data_option

    given = {"--benchmarks": benchmarks, "--samples": samples, "--max-tokens": max_tokens,
             "--temperature": temperature, "--top-p": top_p}
    if protocol is not None and any(v is not None for v in given.values()):
        flags = ", ".join(k for k, v in given.items() if v is not None)
        raise BudgetError(f"--protocol {protocol} sets {flags} itself; drop {flags} or drop --protocol.")
    p = PROTOCOLS["micro-budget"]
    benchmarks = benchmarks or ",".join(p["benchmarks"])
    console = Console(stderr=True)
    result = evaluate(model, adapter=adapter, benchmarks=benchmarks, samples=p["samples"] if samples is None else samples,
                      max_tokens=max_tokens,  # None: 3584, or what the model's context leaves (with a warning)
                      temperature=p["temperature"] if temperature is None else temperature,
                      top_p=p["top_p"] if top_p is None else top_p, seed=seed, output=output,
                      data=parse_data_option(data, PROTOCOLS[protocol]["benchmarks"] if protocol in PROTOCOLS else benchmarks),
                      limit=limit, backend=backend, overwrite=overwrite, label=label, protocol=protocol,
                      console=console)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from budgetreason.evaluate.tables import eval_table

    Console().print(eval_table(result))


def compare_cmd(
    evals: Annotated[list[str], typer.Argument(help="eval.json files or folders; the first is the baseline.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write comparison.md and comparison.json here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Baseline vs. final in the micro-budget paper's Table 1 layout, with ΔH_rel."""
    from budgetreason.evaluate.comparison import compare, to_rich

    table = compare(evals, output=output)
    if as_json:
        typer.echo(json.dumps(table, indent=2))
        return
    from rich.console import Console

    Console().print(to_rich(table))


def benchmarks_cmd(as_json: JsonOpt = False) -> None:
    """List the evaluation benchmarks: hub id, split, columns, answer format."""
    from budgetreason.evaluate.benchmarks import registry

    items = [b.to_dict() for b in registry().values()]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Benchmarks")
    for col in ("name", "hub id / split", "problem / answer", "size", "answer"):
        t.add_column(col)
    for b in items:
        t.add_row(b["name"], f"{b['hf_id'] or 'generated'} / {b['split'] or '-'}",
                  f"{b['problem_column']} / {b['answer_column']}", str(b["size"]), b["answer_kind"])
    Console().print(t)
