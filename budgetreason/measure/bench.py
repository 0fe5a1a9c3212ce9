"""``budgetreason bench``: budgetreason's GPU path against plain TRL + PEFT on the same model, data and settings.

Variant ``budgetreason`` is the training code users run (``calibrate.measure``: Unsloth on a
GPU where installed). Variant ``plain`` is TRL's GRPOTrainer with a PEFT LoRA config — the
set-up most GRPO-on-LoRA scripts use — generating with the same engine as the budgetreason
variant did (TRL's colocated vLLM where that was vLLM, else transformers' generate), so the
ratio measures training kernels and memory, not the generation engine. Both get the same
random-weight architecture (built once, cached), synthetic prompts, completion length (forced),
k, LoRA rank, micro-batch and accumulation (the plain run copies budgetreason's plan). Each
variant runs in its own subprocess, one after the other, within one command. Reported:
seconds per step (median after the first), generated and trained tokens per second, peak
memory, and the ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from budgetreason.measure.calibrate import (
    GIB,
    Spec,
    _rss_gib,
    _SmiPeak,
    cached_random_model,
    default_cache,
    force_full_length,
    prompt_digits,
)

VARIANTS = ("budgetreason", "plain")


def _plain(spec: Spec, shape: dict, workdir: Path) -> dict:
    """Plain TRL + PEFT with the same shape; no budgetreason code on the training path."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from budgetreason.data.datasets import SYSTEM_PROMPT
    from budgetreason.models.synthetic import random_reward, write_prompts
    from budgetreason.train.compat import ensure_logprob_head

    ensure_logprob_head()  # only installs a fallback where Triton is missing (CPU)
    from trl import GRPOConfig, GRPOTrainer

    cuda = torch.cuda.is_available()
    folder, _ = cached_random_model(spec.model, shape["cache"], "bfloat16" if cuda else "float32")
    digits, _ = prompt_digits(folder, spec.prompt)  # the same prompts as the budgetreason variant's
    rows = [json.loads(x) for x in write_prompts(workdir / "d.jsonl", 64, digits).read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": [{"role": "system", "content": SYSTEM_PROMPT},
                                        {"role": "user", "content": r["problem"]}]} for r in rows])
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if cuda else torch.float32)
    use_vllm = shape["generation"] == "vllm"  # the engine the budgetreason variant used
    args = GRPOConfig(
        output_dir=str(workdir / "plain"), per_device_train_batch_size=shape["per_device_train_batch_size"],
        gradient_accumulation_steps=shape["gradient_accumulation_steps"], num_generations=spec.k,
        max_completion_length=spec.completion, max_steps=spec.steps, learning_rate=1e-6, logging_steps=1,
        save_strategy="no", report_to=[], bf16=cuda, use_cpu=not cuda, gradient_checkpointing=cuda,
        use_vllm=use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=shape.get("vllm_gpu_memory_utilization") or 0.3,
        generation_kwargs=force_full_length("vllm" if use_vllm else "hf", spec.completion),
        loss_type="grpo", beta=0.0, disable_tqdm=True)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.monotonic()

        def on_step_end(self, *a, **k):
            times.append(time.monotonic() - self.t0)

    logged: list[dict] = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **k):
            if logs and "reward" in logs:
                logged.append(dict(logs))
    trainer = GRPOTrainer(model=model, reward_funcs=[random_reward], args=args, train_dataset=ds, processing_class=tok,
                          peft_config=LoraConfig(r=spec.rank, lora_alpha=shape["lora_alpha"],
                                                 target_modules=shape["lora_target_modules"], task_type="CAUSAL_LM"),
                          callbacks=[Timer(), Logs()])
    rss0 = _rss_gib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with _SmiPeak() as sampler:
        trainer.train()
    steps = times[1:] or times
    return {"step_seconds": statistics.median(steps),
            "completion_length": statistics.mean(x.get("completions/mean_length", 0) for x in logged) if logged else None,
            "peak_gib": sampler.take() or (torch.cuda.max_memory_reserved() / GIB if cuda else _rss_gib() - rss0),
            "generation": "vllm colocate" if use_vllm else "transformers"}


def _summarize(variant: str, spec: Spec, shape: dict, raw: dict) -> dict:
    g = shape["per_device_train_batch_size"] * shape["gradient_accumulation_steps"]
    comp = raw.get("completion_length") or spec.completion
    step = raw["step_seconds"]
    return {"variant": variant, "step_seconds": round(step, 3), "generated_tokens_per_s": round(g * comp / step, 1),
            "trained_tokens_per_s": round(g * (spec.prompt + comp) / step, 1),
            "peak_gib": None if raw.get("peak_gib") is None else round(raw["peak_gib"], 3),
            "generation": raw.get("generation", ""), "completions_per_step": g}


def bench(spec: Spec, output: str | Path = "bench.json", console=None, timeout_s: int = 1800,
          cache: str | Path | None = None) -> dict:
    """Run both variants (each in a fresh subprocess, same generation engine) and write `output` with the ratios."""
    from budgetreason.measure.calibrate import measurement

    measurement(spec, output)  # an unknown GPU or model fails here, not after a minute in the subprocess

    results: dict[str, dict] = {}
    shape = None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            spec_file, out_file = Path(tmp) / f"{variant}.json", Path(tmp) / f"{variant}-out.json"
            spec_file.write_text(json.dumps({"spec": spec.__dict__, "shape": shape,
                                             "cache": str(cache or default_cache())}))
            work = Path(tmp) / variant
            work.mkdir()
            proc = subprocess.run([sys.executable, "-m", "budgetreason.measure.bench", variant, str(spec_file), str(out_file),
                                   str(work)], capture_output=True, text=True, timeout=timeout_s)
            if proc.returncode != 0 or not out_file.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                results[variant] = {"variant": variant, "error": tail[0][:300]}
                if console is not None:
                    console.print(f"[red]{variant}: failed: {tail[0][:200]}[/]")
                continue
            out = json.loads(out_file.read_text())
            shape = shape or out.get("shape")
            results[variant] = out["result"]
            _write(output, spec, shape, results)  # after each side: a window that ends early keeps the first
    return _write(output, spec, shape, results)


def _write(output: str | Path, spec: Spec, shape: dict | None, results: dict[str, dict]) -> dict:
    """bench.json with the results so far, and the ratios once both sides have a step time."""
    from budgetreason.measure import versions

    ours, plain = results.get("budgetreason", {}), results.get("plain", {})
    ratios = {}
    if "step_seconds" in ours and "step_seconds" in plain:
        ratios = {"speedup_step": round(plain["step_seconds"] / ours["step_seconds"], 2),
                  "generated_tokens_per_s": round(ours["generated_tokens_per_s"] / plain["generated_tokens_per_s"], 2),
                  "trained_tokens_per_s": round(ours["trained_tokens_per_s"] / plain["trained_tokens_per_s"], 2)}
        if ours.get("peak_gib") and plain.get("peak_gib"):
            ratios["memory"] = round(ours["peak_gib"] / plain["peak_gib"], 2)
    data = {"date": time.strftime("%Y-%m-%d"), "spec": spec.__dict__, "shape": shape, "results": results,
            "ratios": ratios, "versions": {n: versions.installed(n) for n in ("torch", "trl", "peft", "unsloth", "vllm")}}
    tmp = Path(f"{output}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, output)
    return data


def _main() -> None:
    variant, spec_file, out_file, workdir = sys.argv[1:5]
    payload = json.loads(Path(spec_file).read_text())
    spec, shape = Spec(**payload["spec"]), payload["shape"]
    if variant == "budgetreason":
        import torch

        from budgetreason.measure.calibrate import measure

        folder, _ = cached_random_model(spec.model, payload["cache"], "bfloat16" if torch.cuda.is_available() else "float32")
        lines = measure(spec, folder, Path(workdir), Path(workdir) / "steps.jsonl", "bench")
        timed = lines[1:] or lines
        peaks = [x["memory_gib"]["peak"] for x in lines if x["memory_gib"]["peak"]]
        first = lines[0]
        shape = {"per_device_train_batch_size": first["shape"]["batch"],
                 "gradient_accumulation_steps": first["shape"]["accumulation"],
                 "lora_alpha": first["shape"]["alpha"], "lora_target_modules": first["shape"]["targets"],
                 "generation": first["generation"],
                 "vllm_gpu_memory_utilization": first["shape"]["vllm_gpu_memory_utilization"],
                 "cache": payload["cache"]}
        raw = {"step_seconds": statistics.median(x["seconds"]["total"] for x in timed),
               "completion_length": statistics.mean(x["completion_length"] for x in lines),
               "peak_gib": max(peaks) if peaks else None,
               "generation": f"{first['backend']} ({first['engine']})"}
    else:
        if shape is None:
            raise SystemExit("the plain variant needs budgetreason's shape; run the budgetreason variant first")
        raw = _plain(spec, shape, Path(workdir))
    Path(out_file).write_text(json.dumps({"shape": shape, "result": _summarize(variant, spec, shape, raw)}))


if __name__ == "__main__":
    _main()
