"""``budgetreason calibrate`` and ``bench``: measure the GPU path on this machine."""

from __future__ import annotations

from typing import Annotated

import typer


def calibrate_cmd(
    models: Annotated[str, typer.Option("--models", help="Comma list of catalog architectures (random weights).")] = "Qwen/Qwen2.5-1.5B-Instruct",
    quick: Annotated[bool, typer.Option("--quick", help="Three shapes of the first architecture that separate the memory "
                                        "terms (two ranks, two lengths), 2 steps each: minutes, not hours.")] = False,
    ranks: Annotated[str, typer.Option("--ranks")] = "8,64,256",
    ks: Annotated[str, typer.Option("--ks", help="Group sizes k.")] = "8",
    completions: Annotated[str, typer.Option("--completions", help="Completion lengths in tokens.")] = "512,3584",
    steps: Annotated[int, typer.Option("--steps", help="GRPO steps per configuration.")] = 3,
    backend: Annotated[str, typer.Option("--backend")] = "auto",
    generation: Annotated[str, typer.Option("--generation", help="auto, vllm or hf (transformers' generate).")] = "auto",
    gpu: Annotated[str, typer.Option("--gpu")] = "auto",
    cache: Annotated[str | None, typer.Option("--cache", help="Folder for the random-weight models (built once).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="JSON lines, one per step, appended as steps end.")] = "calibration.jsonl",
) -> None:
    """Measure memory and step time, one line per step as it ends; then predicted vs measured per configuration."""
    from rich.console import Console

    from budgetreason.checks import int_list
    from budgetreason.measure.calibrate import calibrate, grid
    from budgetreason.measure.calibrate import quick as quick_specs
    from budgetreason.measure.tables import calibration_table

    names = [m.strip() for m in models.split(",") if m.strip()]
    if quick:
        import torch

        specs = quick_specs(names[0], cuda=torch.cuda.is_available() and gpu != "cpu", backend=backend,
                            generation=generation, gpu=gpu)
    else:
        specs = grid(names, int_list(ranks, "--ranks"), int_list(ks, "--ks", 2), int_list(completions, "--completions"),
                     steps=steps, backend=backend, generation=generation, gpu=gpu)
    data = calibrate(specs, output, console=Console(stderr=True), cache=cache)
    Console().print(calibration_table(data))
    if data["failures"]:
        raise typer.Exit(1)


def bench_cmd(
    model: Annotated[str, typer.Option("--model", "-m")] = "Qwen/Qwen2.5-1.5B-Instruct",
    k: Annotated[int, typer.Option("--k")] = 8,
    completion: Annotated[int, typer.Option("--completion", help="Forced completion length in tokens.")] = 1024,
    rank: Annotated[int, typer.Option("--rank")] = 64,
    steps: Annotated[int, typer.Option("--steps")] = 3,
    prompts: Annotated[int | None, typer.Option("--prompts", help="Prompts per optimizer step (default: the planner's).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="budgetreason's back-end (auto, unsloth, trl, hf).")] = "auto",
    generation: Annotated[str, typer.Option("--generation", help="auto, vllm or hf; the plain run uses the same.")] = "auto",
    gpu: Annotated[str, typer.Option("--gpu")] = "auto",
    cache: Annotated[str | None, typer.Option("--cache", help="Folder for the random-weight models (built once).")] = None,
    output: Annotated[str, typer.Option("--output", "-o")] = "bench.json",
) -> None:
    """budgetreason's path vs plain TRL + PEFT with the same generation engine: s/step, tokens/s, peak memory, ratios."""
    from rich.console import Console

    from budgetreason.measure.bench import bench
    from budgetreason.measure.calibrate import Spec
    from budgetreason.measure.tables import bench_table

    data = bench(Spec(model=model, rank=rank, k=k, completion=completion, steps=steps, gpu=gpu, backend=backend,
                      generation=generation, prompts_per_step=prompts), output, console=Console(stderr=True),
                 cache=cache)
    Console().print(bench_table(data))
    if any("error" in r for r in data["results"].values()):
        raise typer.Exit(1)
