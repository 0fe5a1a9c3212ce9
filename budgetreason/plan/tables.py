"""The plan and the GPU and model catalogs as Rich tables, shared by the CLI and the notebooks."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from budgetreason.plan.architectures import ModelArch
from budgetreason.plan.hardware import GPU

TERM_LABELS = {
    "cuda_context": "CUDA context", "base_weights": "base weights", "lora_params": "LoRA parameters",
    "lora_grads": "LoRA gradients", "optimizer_states": "optimizer states", "activations": "activations",
    "logits": "log-prob working set", "vllm_weights": "vLLM weight copy", "kv_cache": "KV cache",
    "vllm_activations": "vLLM profile peak", "cuda_graphs": "CUDA graphs", "fragmentation": "fragmentation",
    "calibration": "calibration correction",
}

#: How the plan view names the generation engine it assumed (the time model differs per engine).
ENGINE_LABELS = {"vllm": "vLLM (colocated)", "unsloth": "transformers' generate under Unsloth's patches (no vLLM)",
                 "transformers": "transformers' generate"}


def plan_view(plan) -> Group:
    """The plan as a person reads it: configuration, memory terms with bars, time and cost, why."""
    d = plan.to_dict()
    title = (f"{plan.model.id} on {plan.gpu.name} ({plan.gpu.vram_gib:.1f} GiB), {plan.hours:g} h"
             f" — {'fits' if plan.fits else 'does NOT fit'}")
    cfg = Table(show_header=False, box=None, pad_edge=False)
    cfg.add_column(style="bold")
    cfg.add_column()
    c = d["config"]
    rows = [
        ("backend", c["backend"]), ("generation", ENGINE_LABELS[d["generation_engine"]]),
        ("LoRA", f"rank {c['lora_rank']}, alpha {c['lora_alpha']} (α/r {d['lora_scale']:g}), "
                                          f"{len(c['lora_target_modules'])} projections"),
        ("group size k", str(c["num_generations"])),
        ("prompts / step", f"{d['prompts_per_step']} ({d['generation_batch_size']} completions)"),
        ("micro-batch", f"{c['per_device_train_batch_size']} × {c['gradient_accumulation_steps']} accumulation"),
        ("prompt / completion", f"{c['max_prompt_length']} / {c['max_completion_length']} tokens"),
        ("weights", "4-bit NF4" if c["load_in_4bit"] else c["dtype"]),
    ]
    if c["generation"] == "vllm":
        rows.append(("vLLM share", f"{c['vllm_gpu_memory_utilization']:.2f}"
                     + (" + standby" if c["vllm_standby"] else "")
                     + (f", waves of {d['generation_concurrency']}" if d["generation_concurrency"] < d["generation_batch_size"] else "")))
    rows.append(("trainable params", f"{d['lora_trainable_params']:,} of {d['base_params']:,}"))
    for k, v in rows:
        cfg.add_row(k, v)

    mem = Table(title="Memory (GiB)", show_lines=False)
    mem.add_column("term")
    mem.add_column("GiB", justify="right")
    mem.add_column("")
    total = d["memory_gib"]["total"] or 1.0
    for key, label in TERM_LABELS.items():
        v = d["memory_gib"].get(key, 0.0)
        if v == 0 or (v < 0 and key != "calibration"):
            continue
        mem.add_row(label, f"{v:.2f}", "█" * max(1, round(30 * abs(v) / total)))
    mem.add_row(Text("total (peak, " + d["peak_phase"] + ")", style="bold"),
                Text(f"{d['memory_gib']['total']:.2f}", style="bold"), "")
    mem.add_row("usable", f"{d['memory_gib']['usable']:.2f}",
                f"{d['memory_gib']['available']:.1f} GiB less {plan.headroom:.0%} headroom")

    t = d["est_step_breakdown"]
    cost = "" if not d["est_cost_usd"] else f", about ${d['est_cost_usd']:.2f}"
    time_line = Text(f"≈ {t['total_s']:.0f} s per step (generate {t['generate_s']:.0f}, train {t['train_s']:.0f}, "
                     f"other {t['overhead_s']:.0f}) → about {d['est_steps']} steps in {plan.hours:g} h{cost}")
    parts = [cfg, mem, time_line]
    v = d.get("validation")
    if v:
        parts.append(Text(f"validation: {v['problems']} problems × {v['samples']} sample(s) ≈ {v['seconds_each'] / 60:.1f} min "
                          f"each; every {v['every']} steps keeps it near {v['share']:.0%} of the time (about "
                          f"{v['count']} validations); standard error ≤ {100 * v['stderr_max']:.1f} points"))
    for label, items, style in (("reduced", d["reductions"], "yellow"), ("warning", d["warnings"], "red"),
                                ("would fit", d["suggestions"], "green")):
        for item in items:
            parts.append(Text(f"{label}: {item}", style=style))
    return Group(Panel(Group(*parts), title=title, title_align="left"))


def fitted_table(title: str, columns: list[tuple[str, str]], rows: list[list[str]], width: int | None,
                 priority: list[int] | None = None) -> Table:
    """A table whose cells are never cut or wrapped: columns that do not fit `width` are left out.

    Columns are kept in `priority` order (default: left to right) while they fit; a caption
    names the ones left out. `width` None keeps every column.
    """
    sizes = [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _) in enumerate(columns)]
    keep: list[int] = []
    for i in priority or range(len(columns)):
        # Rich's default box: one border character per column plus one, one space of padding each side.
        if width is None or sum(sizes[j] + 3 for j in keep + [i]) + 1 <= width:
            keep.append(i)
    keep.sort()
    t = Table(title=title)
    for i in keep:
        header, justify = columns[i]
        t.add_column(header, justify=justify, no_wrap=True, min_width=sizes[i])
    for r in rows:
        t.add_row(*[r[i] for i in keep])
    left_out = [columns[i][0] for i in range(len(columns)) if i not in keep]
    if left_out:
        t.caption = f"left out to fit {width} columns: {', '.join(left_out)} (--json, or a wider COLUMNS, shows them)"
    return t


def gpus_table(gpus: list[GPU], width: int | None = None) -> Table:
    """The GPU catalog; at a narrow `width` the least needed columns are left out, never cut."""
    columns = [("key", "left"), ("name", "left"), ("GiB", "right"), ("bf16", "center"), ("TFLOP/s", "right"),
               ("GB/s", "right"), ("$/h", "right")]
    rows = [[g.key, g.name, f"{g.vram_gib:.1f}", "yes" if g.bf16 else "fp16", f"{g.tflops_16bit:g}",
             f"{g.mem_bw_gbs:g}", "" if g.price_usd_hr is None else f"{g.price_usd_hr:.2f}"] for g in gpus]
    return fitted_table("GPUs budgetreason knows (GiB: memory; TFLOP/s: 16-bit dense; GB/s: memory bandwidth)",
                        columns, rows, width, priority=[0, 2, 6, 3, 1, 4, 5])


def models_table(models: list[ModelArch], width: int | None = None) -> Table:
    """The model catalog; at a narrow `width` the least needed columns are left out, never the id."""
    columns = [(c, "left" if c == "id" else "right") for c in
               ("id", "params", "layers", "hidden", "inter.", "heads/kv", "head dim", "vocab", "tied", "context")]
    rows = [[m.id, f"{m.param_count() / 1e9:.2f}B", str(m.num_layers), str(m.hidden_size), str(m.intermediate_size),
             f"{m.num_heads}/{m.num_kv_heads}", str(m.head_dim), f"{m.vocab_size:,}",
             "yes" if m.tie_word_embeddings else "no", f"{m.max_context:,}"] for m in models]
    return fitted_table("Models budgetreason knows (any other hub id or folder is read from its config.json)",
                        columns, rows, width, priority=[0, 1, 9, 2, 3, 5, 8, 6, 4, 7])
