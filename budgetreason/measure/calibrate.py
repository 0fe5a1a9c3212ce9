"""``budgetreason calibrate``: measure peak memory and step time on this GPU, one line per step.

A GPU window can end any minute (a Colab runtime, a spot instance), so nothing here waits for
the end to report: every optimizer step appends one JSON line to ``calibration.jsonl`` the
moment it ends (shape, seconds split into generation / rewards / training, tokens per second,
peak memory per phase from ``torch.cuda.max_memory_reserved`` reset at each phase, and the
step's largest ``nvidia-smi`` reading of this process; both null on a CPU, where the process's
peak resident memory stands in) and prints it. A killed calibration keeps every finished line.

What it skips: the random-weight model is built once per architecture into a cache folder and
reused by every configuration; no checkpoints, no optimizer-state or adapter saves. Completions
are forced to full length with the generation engine's own argument (vLLM's ``min_tokens``,
transformers' ``min_new_tokens``). Each configuration runs the training code users run
(``training.resolve``, the back-end loaders, ``trainer_args.grpo_config``, TRL's GRPOTrainer);
configurations that start a vLLM engine run in a subprocess each (one engine per process).

``budgetreason plan --calibration calibration.jsonl`` corrects the planner from these lines
(``budgetreason.plan.correction``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.plan.correction import GIB, Correction, load_correction, read_points  # noqa: F401 (re-exported)

DEFAULT_RANKS = (8, 64, 256)
DEFAULT_KS = (8,)
DEFAULT_COMPLETIONS = (512, 3584)
PROMPT_TOKENS = 256
#: Bumped when the random model's folder changes (2: byte-level tokenizer that survives transformers' rebuild).
RANDOM_MODEL_VERSION = 2


@dataclass(frozen=True)
class Spec:
    """One configuration to measure."""

    model: str
    rank: int
    k: int
    completion: int
    steps: int = 3
    backend: str = "auto"
    gpu: str = "auto"
    prompt: int = PROMPT_TOKENS
    generation: str = "auto"
    """auto, vllm or hf (see backends.choose_engine)."""
    prompts_per_step: int | None = None
    """Prompts per optimizer step (None: the planner's choice)."""
    batch: int | None = None
    """Completions per micro-batch (None: the planner's choice)."""

    @property
    def label(self) -> str:
        return f"{self.model} r{self.rank} k{self.k} C{self.completion}"


def grid(models: list[str], ranks=DEFAULT_RANKS, ks=DEFAULT_KS, completions=DEFAULT_COMPLETIONS, **kw) -> list[Spec]:
    return [Spec(m, r, k, c, **kw) for m in models for r in ranks for k in ks for c in completions]


def quick(model: str, *, cuda: bool, **kw) -> list[Spec]:
    """Three shapes of one architecture that separate the memory terms, finished in minutes.

    (low rank, short), (high rank, short), (low rank, long): the rank pair moves only the
    adapter, gradient and optimizer terms; the length pair moves activations, log-probs and the
    KV cache. Two steps each (the first carries warm-up). On a GPU: 4 prompts × k=8 with 128-token
    prompts (chat template and system prompt included), ranks 16/128, completions 256/512 (about 3 minutes for a 1.5B model on an H100 with
    transformers' generate); on a CPU: the tiny shapes the tests use.
    """
    if cuda:
        base = dict(k=8, steps=2, prompt=128, prompts_per_step=4, batch=8)
        lo, hi, short, long = 16, 128, 256, 512
    else:
        base = dict(k=2, steps=2, prompt=56, prompts_per_step=2, batch=2)
        lo, hi, short, long = 2, 8, 16, 32
    base.update(kw)
    return [Spec(model, lo, completion=short, **base), Spec(model, hi, completion=short, **base),
            Spec(model, lo, completion=long, **base)]


# ---- random models, built once ---------------------------------------------------------------------
def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "budgetreason" / "random-models"


def cached_random_model(model: str, cache: str | Path, dtype: str) -> tuple[Path, bool]:
    """The architecture with random weights in `cache` (built there first if missing); returns (folder, built)."""
    from budgetreason.models.synthetic import save_random_model
    from budgetreason.plan.architectures import resolve_model
    from budgetreason.train.config import slug

    arch = resolve_model(model)
    folder = Path(cache) / f"{slug(arch.id)}-{dtype}-v{RANDOM_MODEL_VERSION}"
    if (folder / ".complete").is_file():
        return folder, False
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_random_model(arch, tmp, dtype=dtype)
    (tmp / ".complete").write_text(arch.id)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder, True


# ---- measuring one configuration ------------------------------------------------------------------
class _SmiPeak:
    """Largest GPU memory nvidia-smi reports for this process since the last reset, sampled in a thread."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_mib, self._stop = interval, 0.0, threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
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
                self.available = False
                return
            self._stop.wait(self.interval)

    def take(self) -> float | None:
        """The peak since the last take, in GiB (None without nvidia-smi), and reset."""
        peak, self.peak_mib = self.peak_mib, 0.0
        return round(peak / 1024, 3) if self.available and peak else None

    def __enter__(self):
        if self.available:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        return False


def _rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux reports KiB


def force_full_length(generation: str, completion: int) -> dict:
    """generation_kwargs that make every completion `completion` tokens long, in the engine's own words."""
    return {"min_tokens": completion} if generation == "vllm" else {"min_new_tokens": completion}


def prompt_digits(model_dir: Path, prompt: int) -> tuple[int, int]:
    """(digits per problem, max_prompt_length) so a templated prompt is about `prompt` tokens (at least 8 digits)."""
    from budgetreason.models.backends.hf import load_tokenizer
    from budgetreason.models.synthetic import prompt_overhead

    overhead = prompt_overhead(load_tokenizer(str(model_dir)))
    digits = max(8, prompt - overhead)
    return digits, overhead + digits + 8


def _resolve(spec: Spec, model_dir: Path, workdir: Path):
    from budgetreason.models.synthetic import write_prompts
    from budgetreason.train.training import _user_config, resolve

    prompts = spec.prompts_per_step or 4
    digits, max_prompt = prompt_digits(model_dir, spec.prompt)
    data = write_prompts(workdir / "data.jsonl", max(64, 2 * prompts * spec.steps), digits)
    g = prompts * spec.k if spec.prompts_per_step else None
    batch = spec.batch if spec.batch and (g is None or g % spec.batch == 0) else None
    overrides = dict(model=str(model_dir), dataset=str(data), lora_rank=spec.rank, num_generations=spec.k,
                     max_completion_length=spec.completion, max_prompt_length=max_prompt, max_steps=spec.steps,
                     gpu=spec.gpu, backend=spec.backend, generation=spec.generation, output=str(workdir / "run"),
                     progress=False, learning_rate=1e-6, per_device_train_batch_size=batch,
                     gradient_accumulation_steps=g // batch if g and batch else None)
    run = resolve(_user_config(None, overrides))
    extra = {"generation_kwargs": force_full_length(run.generation, spec.completion), "save_strategy": "no"}
    run.config = replace(run.config, extra=extra)
    return run


def measure(spec: Spec, model_dir: Path, workdir: Path, out: Path, run_id: str, console=None) -> list[dict]:
    """Run `spec.steps` GRPO steps of one configuration here, appending one line per step to `out`."""
    import torch

    from budgetreason.models.synthetic import random_reward
    from budgetreason.train.training import _load_data, _load_model

    run = _resolve(spec, model_dir, workdir)
    loaded = _load_model(run)  # Unsloth (if used) is imported here, before TRL
    from budgetreason.train.compat import ensure_logprob_head

    ensure_logprob_head()
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from budgetreason.train.trainer_args import grpo_config

    class _Rewards:  # grpo_config reads .weights; one reward with spread so advantages are not all zero
        funcs, weights = [random_reward], [1.0]

    prepared = _load_data(run.config, loaded.tokenizer)
    cuda = torch.cuda.is_available()
    plan = run.plan.to_dict()
    head = {"kind": "step", "run_id": run_id, "date": time.strftime("%Y-%m-%d"), "gpu": plan["gpu"]["key"],
            "gpu_name": plan["gpu"]["name"], "backend": run.backend, "generation": run.generation,
            "engine": plan["generation_engine"], "model": spec.model,
            "shape": {"rank": spec.rank, "k": spec.k, "completion": spec.completion, "prompt": spec.prompt,
                      "max_prompt_length": run.config.max_prompt_length,
                      "batch": run.config.per_device_train_batch_size,
                      "accumulation": run.config.gradient_accumulation_steps,
                      "completions_per_step": plan["generation_batch_size"], "alpha": run.config.lora_alpha,
                      "targets": list(run.config.lora_target_modules),
                      "vllm_gpu_memory_utilization": run.config.vllm_gpu_memory_utilization},
            "predicted": {"total_gib": plan["memory_gib"]["total"], "terms_gib": plan["memory_gib"],
                          "step_breakdown": plan["est_step_breakdown"]}}
    lines: list[dict] = []
    phase = {"generation": 0.0, "reward": 0.0, "prompt_tokens": 0, "completion_tokens": 0}
    peaks: dict[str, float] = {}

    def reserved_since_reset() -> float | None:
        if not cuda:
            return None
        value = round(torch.cuda.max_memory_reserved() / GIB, 3)
        torch.cuda.reset_peak_memory_stats()
        return value

    def timed(name: str, fn, count_tokens: bool = False):
        def wrapper(*a, **k):
            before = reserved_since_reset()
            if before is not None:
                peaks["training"] = max(peaks.get("training", 0.0), before)
            t0 = time.perf_counter()
            result = fn(*a, **k)
            phase[name] += time.perf_counter() - t0
            after = reserved_since_reset()
            if after is not None:
                peaks[name] = max(peaks.get(name, 0.0), after)
            if count_tokens:  # TRL's _generate returns (prompt_ids, completion_ids, ...)
                phase["prompt_tokens"] += sum(len(x) for x in result[0])
                phase["completion_tokens"] += sum(len(x) for x in result[1])
            return result
        return wrapper

    class StepLines(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            reserved_since_reset()
            smi.take()
            phase.update(generation=0.0, reward=0.0, prompt_tokens=0, completion_tokens=0)
            peaks.clear()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            total = time.perf_counter() - self.t0
            last = reserved_since_reset()
            if last is not None:
                peaks["training"] = max(peaks.get("training", 0.0), last)
            gen = phase["generation"] if has_generate else None
            rew = phase["reward"] if has_rewards else None
            training = total - (gen or 0.0) - (rew or 0.0)
            toks = phase["prompt_tokens"] + phase["completion_tokens"]
            torch_mem = {k: peaks.get(k) for k in ("generation", "reward", "training")} if cuda else None
            smi_gib = smi.take()
            rss = None if cuda else round(_rss_gib(), 3)
            peak = smi_gib or (max(v for v in torch_mem.values() if v is not None) if torch_mem and any(
                torch_mem.values()) else None) or rss
            line = head | {
                "step": state.global_step, "steps": spec.steps,
                "seconds": {"generation": _r(gen), "reward": _r(rew), "training": _r(training), "total": _r(total)},
                "tokens": {"prompt": phase["prompt_tokens"], "completion": phase["completion_tokens"]},
                "tokens_per_s": {"generated": _r(phase["completion_tokens"] / gen) if gen else None,
                                 "trained": _r(toks / training) if training > 0 else None},
                "completion_length": _r(phase["completion_tokens"] / max(1, plan["generation_batch_size"])),
                "memory_gib": {"torch_reserved": torch_mem, "nvidia_smi": smi_gib, "rss": rss, "peak": peak},
            }
            with open(out, "a") as f:  # one write per line: a kill leaves whole lines behind
                f.write(json.dumps(line) + "\n")
                f.flush()
            lines.append(line)
            if console is not None:
                console.print(step_summary(line))

    trainer = GRPOTrainer(model=loaded.model, reward_funcs=list(_Rewards.funcs), args=grpo_config(run, _Rewards),
                          train_dataset=prepared.train, processing_class=loaded.tokenizer,
                          peft_config=loaded.peft_config, callbacks=[StepLines()])
    trainer.remove_callback(PrinterCallback)
    has_generate, has_rewards = hasattr(trainer, "_generate"), hasattr(trainer, "_calculate_rewards")
    if has_generate:
        trainer._generate = timed("generation", trainer._generate, count_tokens=True)
    if has_rewards:
        trainer._calculate_rewards = timed("reward", trainer._calculate_rewards)
    with _SmiPeak() as smi:
        trainer.train()
    del trainer, loaded
    _free_memory()
    return lines


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def step_summary(line: dict) -> str:
    """The one line printed per step: shape, seconds by phase, tokens per second, peak memory."""
    s, sec, mem = line["shape"], line["seconds"], line["memory_gib"]
    where = "nvidia-smi" if mem["nvidia_smi"] else ("torch" if mem["torch_reserved"] else "rss")
    gen = "-" if sec["generation"] is None else f"{sec['generation']:.1f}"
    rew = "-" if sec["reward"] is None else f"{sec['reward']:.1f}"
    tps = line["tokens_per_s"]["generated"]
    return (f"{line['model']} r{s['rank']} k{s['k']} C{s['completion']} [{line['engine']}] step {line['step']}/"
            f"{line['steps']}: {sec['total']:.1f} s (generation {gen}, reward {rew}, training {sec['training']:.1f}; "
            f"predicted {line['predicted']['step_breakdown']['total_s']:.1f}), "
            f"{'-' if tps is None else f'{tps:.0f}'} gen tok/s, peak {mem['peak'] or 0:.2f} GiB ({where}; "
            f"predicted {line['predicted']['total_gib']:.2f})")


# ---- a calibration ----------------------------------------------------------------------------------
def _isolate(spec: Spec) -> bool:
    """Configurations that start a vLLM engine run in their own process (one engine per process)."""
    import torch

    from budgetreason.models.backends import choose_engine
    from budgetreason.plan.hardware import resolve_gpu

    if not torch.cuda.is_available():
        return False
    return choose_engine(spec.backend, spec.generation, resolve_gpu(spec.gpu))[1] == "vllm"


def measurement(spec: Spec, output: str | Path) -> None:
    """A calibrate/bench configuration and its output file, checked before minutes of set-up."""
    from budgetreason.checks import at_least, output_file
    from budgetreason.models.backends import choose_backend
    from budgetreason.plan.architectures import resolve_model
    from budgetreason.plan.hardware import resolve_gpu

    for value, minimum, flag in ((spec.steps, 1, "--steps"), (spec.rank, 1, "--rank"), (spec.k, 2, "--k"),
                                 (spec.completion, 1, "--completion")):
        at_least(value, minimum, flag)
    choose_backend(spec.backend, resolve_gpu(spec.gpu))
    resolve_model(spec.model)
    output_file(output)


def calibrate(specs: list[Spec], output: str | Path = "calibration.jsonl", console=None, cache: str | Path | None = None,
              timeout_s: int = 1800) -> dict:
    """Measure every spec, appending step lines to `output` as they come; return a per-configuration summary.

    The random model of each architecture is built once into `cache` and reused. A configuration
    that fails is recorded (a ``kind: "failure"`` line) and the next one runs.
    """
    import torch

    from budgetreason.measure import versions

    for spec in specs:
        measurement(spec, output)  # before the first subprocess starts

    out = Path(output)
    if out.suffix != ".jsonl":
        raise BudgetError(f"--output {output}: calibrate writes JSON lines; give a .jsonl file.")
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else default_cache()
    dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    session = {"kind": "session", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "versions": {n: versions.installed(n) for n in
                            ("torch", "transformers", "trl", "peft", "unsloth", "vllm", "bitsandbytes")},
               "cuda": torch.version.cuda, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    _append(out, session)
    built: list[str] = []
    failures: list[dict] = []
    t_start = time.strftime("%Y%m%d-%H%M%S")
    for i, spec in enumerate(specs):
        run_id = f"{t_start}-{i}"
        try:
            model_dir, was_built = cached_random_model(spec.model, cache, dtype)
            if was_built:
                built.append(spec.model)
                if console is not None:
                    console.print(f"built the random {spec.model} once into {model_dir}")
            with tempfile.TemporaryDirectory() as tmp:
                if _isolate(spec):
                    _measure_in_subprocess(spec, model_dir, Path(tmp), out, run_id, console, timeout_s)
                else:
                    measure(spec, model_dir, Path(tmp), out, run_id, console)
        except (Exception, subprocess.TimeoutExpired) as e:  # one failed configuration must not lose the others
            error = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
            failures.append({"spec": asdict(spec), "error": error})
            _append(out, {"kind": "failure", "run_id": run_id, "spec": asdict(spec), "error": error})
            if console is not None:
                console.print(f"[red]{spec.label}: failed: {error[:200]}[/]")
            _free_memory()
    return {"date": session["date"], "versions": session["versions"], "output": str(out),
            "records": summarize(out), "failures": failures, "models_built": built}


def _append(out: Path, row: dict) -> None:
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def _measure_in_subprocess(spec: Spec, model_dir: Path, tmp: Path, out: Path, run_id: str, console,
                           timeout_s: int) -> None:
    """`measure` in a fresh process; its lines are printed here as the child appends them.

    The child's stderr goes to `tmp/stderr.log`, not a pipe: a pipe nobody reads fills at 64 KiB of
    warnings and the child then blocks on `write()` until the timeout. On failure its tail is shown.
    """
    spec_file = tmp / "spec.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    log = tmp / "stderr.log"
    seen = out.stat().st_size if out.exists() else 0
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "budgetreason.measure.calibrate", str(spec_file), str(model_dir),
                                 str(tmp), str(out), run_id], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout_s
    while True:
        done = proc.poll() is not None
        seen = _echo_new_lines(out, seen, console)
        if done:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            _show_tail(log, console)
            raise subprocess.TimeoutExpired(proc.args, timeout_s)
        time.sleep(0.5)
    if proc.returncode != 0:
        tail = _show_tail(log, console)
        raise RuntimeError((tail or [f"exit code {proc.returncode}"])[-1])


def _show_tail(log: Path, console, lines: int = 20) -> list[str]:
    """The last non-empty lines of a child's stderr log, printed to `console` (read from the end: logs get big)."""
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))
        tail = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()][-lines:]
    if console is not None and tail:
        console.print(f"[dim]last lines of the child's stderr ({log.name}):[/]")
        console.print("\n".join(tail), markup=False, highlight=False)  # untrusted text: no rich markup
    return tail


def _echo_new_lines(out: Path, seen: int, console) -> int:
    if not out.exists():
        return seen
    with open(out) as f:
        f.seek(seen)
        chunk = f.read()
    complete = chunk[: chunk.rfind("\n") + 1]
    for line in complete.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "step" and console is not None:
            console.print(step_summary(row))
    return seen + len(complete.encode())


def summarize(path: str | Path) -> list[dict]:
    """One record per measured configuration of a calibration.jsonl: predicted vs measured, with errors."""
    groups: dict[str, list[dict]] = {}
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "step":
            groups.setdefault(row["run_id"], []).append(row)
    records = []
    for rows in groups.values():
        rows.sort(key=lambda r: r["step"])
        timed = rows[1:] or rows
        first = rows[0]
        peaks = [r["memory_gib"]["peak"] for r in rows if r["memory_gib"]["peak"]]
        step_s = sorted(r["seconds"]["total"] for r in timed)[len(timed) // 2]
        peak = max(peaks) if peaks else None
        pred_total, pred_s = first["predicted"]["total_gib"], first["predicted"]["step_breakdown"]["total_s"]
        records.append({
            "spec": {"model": first["model"], **first["shape"]}, "gpu": first["gpu"], "backend": first["backend"],
            "engine": first["engine"], "steps": len(rows),
            "predicted": {"total_gib": pred_total, "step_seconds": pred_s},
            "measured": {"peak_gib": peak, "step_seconds": step_s},
            "memory_error_pct": round(100 * (pred_total - peak) / peak, 1) if peak else None,
            "time_error_pct": round(100 * (pred_s - step_s) / step_s, 1) if step_s else None})
    return records


def _main() -> None:
    spec_file, model_dir, workdir, out, run_id = sys.argv[1:6]
    spec = Spec(**json.loads(Path(spec_file).read_text()))
    measure(spec, Path(model_dir), Path(workdir), Path(out), run_id)


if __name__ == "__main__":
    _main()
