"""``budgetreason.evaluate``: pass@k, length and entropy on the papers' benchmarks, one protocol for every model.

Writes into the output folder:
- ``completions.jsonl``: every sample (benchmark, problem id, sample index, text, extracted
  answer, correct, token count, entropy), appended as it is scored, so an interrupted
  evaluation resumes where it stopped and scores can be recomputed without generating again;
- ``eval.json``: per benchmark n problems, samples, pass@k (k in 1, 8, 16 up to n), mean
  accuracy, mean length, truncation rate, entropy; plus the protocol used.

``--protocol tina|micro-budget`` sets every sampling setting, the benchmarks and the reported
k of one paper (``PROTOCOLS``, each value with its source); eval.json records the protocol. Without
a protocol the defaults are the micro-budget protocol's. A protocol's ``max_tokens`` (3584, Tina's
32768) is capped by what the model's context leaves for the completion after 512 tokens of prompt
(tiny-arith: 1024 − 512 = 512; Qwen2.5-Math: 3584, Tina's 4096 rule); eval.json's
``completion_length`` records the cap. An explicit ``max_tokens`` that cannot fit is refused.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.evaluate.generation import SamplingSettings

EVAL_FILE, COMPLETIONS_FILE, SETTINGS_FILE = "eval.json", "completions.jsonl", "eval_settings.json"
#: What an evaluation folder resumes on; any difference starts afresh.
RESUME_KEY = ("model", "adapter", "adapter_hash", "sampling", "limit", "protocol", "data", "problems")
KS = (1, 8, 16)

#: The papers' evaluation protocols. "source" names where each value comes from; "chosen" marks a
#: value the paper does not give. docs/reproduce.md's protocol table is generated from this.
PROTOCOLS: dict[str, dict] = {
    "tina": {
        "benchmarks": ["aime24", "aime25", "amc23", "math500", "gpqa-diamond", "minerva"],
        "samples": 1, "ks": [1], "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768,
        "source": {
            "benchmarks": "Tina paper, Section 4.1 (six benchmarks) and Appendix C.2",
            "samples": "Tina scripts/eval/run_eval_custom_tasks.py: one generation per problem, extractive match",
            "ks": "Tina paper, Section 4.1: zero-shot pass@1",
            "temperature": "Tina scripts/eval/eval_post_train.sh (lighteval + vLLM generation_parameters)",
            "top_p": "Tina scripts/eval/eval_post_train.sh (lighteval + vLLM generation_parameters)",
            "max_tokens": "Tina scripts/eval/eval_post_train.sh: max_new_tokens 32768 (4096 for Qwen2.5-Math, its "
                          "whole context); capped to what the model's context leaves after 512 tokens of prompt",
        },
    },
    "micro-budget": {
        "benchmarks": ["aime24", "aime25", "amc23"],
        "samples": 16, "ks": [1, 8, 16], "temperature": 0.6, "top_p": 0.95, "max_tokens": 3584,
        "source": {
            "benchmarks": "micro-budget paper, Table 1",
            "samples": "chosen: the fewest samples that give pass@16 (Table 1 reports @1/@8/@16)",
            "ks": "micro-budget paper, Table 1",
            "temperature": "chosen: the paper does not say; Tina's 0.6",
            "top_p": "chosen: the paper does not say; Tina's 0.95",
            "max_tokens": "chosen: the paper does not say; its training completion length 3584 (capped to what the "
                          "model's context leaves after 512 tokens of prompt)",
        },
    },
}


def parse_data_option(values: list[str] | None, benchmarks: str | list[str]) -> dict[str, str]:
    """``--data PATH`` (one benchmark) or ``--data NAME=PATH`` (repeatable) → {benchmark: path}."""
    names = [b.strip() for b in benchmarks.split(",")] if isinstance(benchmarks, str) else list(benchmarks)
    out: dict[str, str] = {}
    for v in values or []:
        if "=" in v and v.split("=", 1)[0] in names:
            name, path = v.split("=", 1)
            out[name] = path
        elif len(names) == 1:
            out[names[0]] = v
        else:
            raise BudgetError(f"--data {v}: with several benchmarks use NAME=PATH, e.g. --data aime24=aime.jsonl.")
    return out


def adapter_dir(adapter: str | None) -> tuple[str | None, dict]:
    """Accept a run folder (its adapter/), a checkpoint folder, or an adapter folder; return it and the run's config."""
    if adapter is None:
        return None, {}
    p = Path(adapter)
    if not p.exists():
        raise BudgetError(f"--adapter {adapter}: no such folder.")
    cfg = {}
    if (p / "config.yaml").is_file():
        import yaml

        cfg = yaml.safe_load((p / "config.yaml").read_text()) or {}
        p = p / "adapter"
    elif (p.parent / "config.yaml").is_file():
        import yaml

        cfg = yaml.safe_load((p.parent / "config.yaml").read_text()) or {}
    if not (p / "adapter_config.json").is_file():
        raise BudgetError(f"--adapter {adapter}: no LoRA adapter there (adapter_config.json missing); "
                          "pass a run folder, a checkpoint folder or an adapter folder.")
    return str(p), cfg


def adapter_hash(adapter: str | None) -> str | None:
    """A content hash of an adapter folder's weights and config: a retrained adapter in the same folder differs."""
    if adapter is None:
        return None
    import hashlib

    from budgetreason.runs.folder import fast_hash

    h = hashlib.blake2b(digest_size=16)
    for p in sorted(Path(adapter).iterdir()):
        if p.is_file() and (p.name.startswith("adapter_model") or p.name == "adapter_config.json"):
            h.update(p.name.encode() + fast_hash(p).encode())
    return h.hexdigest()


def problems_fingerprint(problems) -> str:
    """A hash of a benchmark's loaded problems (id, prompt, gold): another file, or a changed hub copy, differs."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for p in problems:
        h.update(json.dumps([p.id, p.prompt, p.gold], sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def load_hf_policy(model_id: str, adapter: str | None, dtype: str | None = None):
    """Base model (+ the LoRA adapter) with transformers, for CPU evaluation and tests."""
    import torch
    from peft import PeftModel

    from budgetreason.models.backends import hf

    tok = hf.load_tokenizer(model_id)
    from transformers import AutoModelForCausalLM

    from budgetreason.models.backends import model_path

    use_cuda = torch.cuda.is_available()
    if not use_cuda:
        hf.set_cpu_threads()
    dt = hf.torch_dtype(dtype or ("bfloat16" if use_cuda else "float32"))
    model = AutoModelForCausalLM.from_pretrained(model_path(model_id), dtype=dt)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    if use_cuda:
        model = model.to("cuda")
    model.eval()
    return model, tok


def _make_generator(model_id: str, adapter: str | None, backend: str, settings: SamplingSettings, run_cfg: dict):
    import torch

    if backend == "auto":
        from budgetreason.models.backends import installed

        backend = "vllm" if torch.cuda.is_available() and installed("vllm") else "hf"
    if backend in ("vllm", "unsloth"):
        from budgetreason.evaluate.generation import UnslothGenerator, VLLMGenerator
        from budgetreason.models.backends import model_path

        if not torch.cuda.is_available():
            raise BudgetError(f"--backend {backend} needs a CUDA GPU; use --backend hf on the CPU.")
        from budgetreason.plan.architectures import resolve_model

        cls = VLLMGenerator if backend == "vllm" else UnslothGenerator
        length = engine_length(resolve_model(model_id).max_context, settings.max_tokens, run_cfg.get("max_prompt_length"))
        return cls(model_path(model_id), adapter, length, lora_rank=run_cfg.get("lora_rank", 256), seed=settings.seed), backend
    if backend != "hf":
        raise BudgetError(f"--backend must be auto, vllm, unsloth or hf, got '{backend}'.")
    from budgetreason.evaluate.generation import HFGenerator

    model, tok = load_hf_policy(model_id, adapter)
    return HFGenerator(model, tok), "hf"


def _read_completions(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # cut by a kill mid-write; that sample is generated again
    return rows


def set_aside(folder: Path, names) -> str | None:
    """Rename the `names` that exist in `folder` to ``<name>.old-<time>``; returns the suffix used.

    One suffix for all of them, never one already taken: a second set-aside within the same second
    gets ``.old-<time>-1`` (POSIX rename would otherwise replace the first one's files).
    """
    present = [n for n in names if (folder / n).exists()]
    if not present:
        return None
    stamp, n = str(int(time.time())), 0
    suffix = f".old-{stamp}"
    while any((folder / f"{name}{suffix}").exists() for name in names):
        n += 1
        suffix = f".old-{stamp}-{n}"
    for name in present:
        (folder / name).rename(folder / f"{name}{suffix}")
    return suffix


def score(problems, samples_per_problem, benchmark: str, prompt_opens_think: bool = False) -> list[dict]:
    """Completion records with the extracted answer and correctness (math-verify; letters for GPQA).

    `prompt_opens_think`: the chat template ends the prompt with ``<think>``
    (:func:`budgetreason.evaluate.generation.template_opens_think`), so a completion without
    ``</think>`` is unfinished reasoning: wrong, with no extracted answer, as the training reward judges it.
    """
    from budgetreason.rewards.verify import extract_answer, extract_choice, score_batch

    golds, texts, meta = [], [], []
    for prob, samples in zip(problems, samples_per_problem):
        for j, s in enumerate(samples):
            golds.append(prob.gold)
            texts.append(s.text)
            meta.append((prob, j, s))
    correct = score_batch(golds, texts, prompt_opens_think=prompt_opens_think)
    out = []
    for (prob, j, s), ok in zip(meta, correct):
        if prompt_opens_think and "</think>" not in s.text:
            extracted = None
        else:
            extracted = extract_choice(s.text) if prob.kind == "letter" else extract_answer(s.text)
        out.append({"benchmark": benchmark, "problem_id": prob.id, "sample": j, "text": s.text,
                    "extracted": extracted, "correct": bool(ok), "tokens": s.tokens, "entropy": s.entropy,
                    "finish_reason": s.finish_reason})
    return out


def summarize(records: list[dict], ks=KS) -> dict:
    """Per-benchmark scores from completion records (no generation needed)."""
    from budgetreason.evaluate.metrics import pass_at_k_table

    by_bench: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        by_bench.setdefault(r["benchmark"], {}).setdefault(r["problem_id"], []).append(r)
    out = {}
    for bench, problems in by_bench.items():
        counts = [(len(rs), sum(r["correct"] for r in rs)) for rs in problems.values()]
        flat = [r for rs in problems.values() for r in rs]
        ents = [r["entropy"] for r in flat if r.get("entropy") is not None]
        out[bench] = {
            "n_problems": len(problems),
            "samples": min(n for n, _ in counts),
            **{k: round(v, 4) for k, v in pass_at_k_table(counts, ks).items()},
            "mean_accuracy": round(sum(r["correct"] for r in flat) / len(flat), 4),
            "mean_length": round(sum(r["tokens"] for r in flat) / len(flat), 1),
            "truncated": round(sum(r["finish_reason"] == "length" for r in flat) / len(flat), 4),
            "entropy": round(sum(ents) / len(ents), 5) if ents else None,
        }
    return out


#: The micro-budget paper's completion length; capped by the model's context (see default_max_tokens).
PROTOCOL_MAX_TOKENS = 3584
#: Room left for the prompt when the completion length is derived from the model's context.
PROMPT_ROOM = 512
BACKENDS = ("auto", "vllm", "unsloth", "hf")


def prompt_room(context: int) -> int:
    """Tokens kept for the prompt: PROMPT_ROOM, or half of a shorter context."""
    return min(PROMPT_ROOM, context // 2)


def default_max_tokens(context: int, protocol: int = PROTOCOL_MAX_TOKENS) -> int:
    """The protocol's completion length, or what the model's context leaves after PROMPT_ROOM tokens of prompt.

    Tina's rule (32768 new tokens, 4096 for Qwen2.5-Math, whose context is 4096) is this cap:

    >>> default_max_tokens(131072, 32768), default_max_tokens(4096, 32768), default_max_tokens(1024)
    (32768, 3584, 512)
    """
    return max(1, min(protocol, context - prompt_room(context)))


def engine_length(context: int, max_tokens: int, prompt_length: int | None = None) -> int:
    """The engine's max_model_len: room for the prompt (the run's max_prompt_length, else :func:`prompt_room`)
    plus the completion, never more than the model's context (vLLM refuses a longer one).

    >>> engine_length(4096, 3584), engine_length(4096, 3584, prompt_length=1024), engine_length(32768, 3584, 512)
    (4096, 4096, 4096)
    """
    return min(context, (prompt_length or prompt_room(context)) + max_tokens)


def check_arguments(model: str, benchmarks: list[str], samples: int, max_tokens: int | None, temperature: float,
                    top_p: float, limit: int | None, backend: str, output: str | Path | None,
                    protocol_max_tokens: int = PROTOCOL_MAX_TOKENS) -> tuple[int, str | None]:
    """Every argument of `evaluate`, before any model or data loads; returns the completion length and a warning.

    `max_tokens` None takes `protocol_max_tokens` capped to what the model's context leaves (a warning
    says so); an explicit `max_tokens` that leaves no room for the prompt is refused.
    """
    from budgetreason.checks import at_least, output_folder
    from budgetreason.evaluate.benchmarks import get
    from budgetreason.plan.architectures import resolve_model

    at_least(samples, 1, "--samples")
    at_least(max_tokens, 1, "--max-tokens")
    at_least(limit, 1, "--limit")
    if temperature < 0:
        raise BudgetError(f"--temperature cannot be negative, got {temperature:g}.")
    if temperature == 0 and samples > 1:
        raise BudgetError(f"--temperature 0 is greedy decoding: all {samples} samples would be the same text; "
                          "use --samples 1, or a temperature above 0 (the protocol uses 0.6).")
    if not 0 < top_p <= 1:
        raise BudgetError(f"--top-p must be in (0, 1], got {top_p:g}.")
    if backend not in BACKENDS:
        raise BudgetError(f"--backend must be {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}, got '{backend}'.")
    if not benchmarks:
        raise BudgetError("--benchmarks is empty; see `budgetreason benchmarks` for the names.")
    for name in benchmarks:
        get(name)
    if output is not None:
        output_folder(output)
    context = resolve_model(model).max_context
    if max_tokens is None:
        fit = default_max_tokens(context, protocol_max_tokens)
        note = None if fit == protocol_max_tokens else (
            f"--max-tokens {fit}, not the protocol's {protocol_max_tokens}: {model}'s context is {context} tokens.")
        return fit, note
    room = context - prompt_room(context)
    if max_tokens > room:
        raise BudgetError(f"--max-tokens {max_tokens} does not fit {model}'s context of {context} tokens with "
                          f"{prompt_room(context)} left for the prompt; use --max-tokens {room} or less, or leave it out.")
    return max_tokens, None


def evaluate(model: str, *, adapter: str | None = None, benchmarks: list[str] | str = ("aime24", "aime25", "amc23"),
             samples: int = 16, max_tokens: int | None = None, temperature: float = 0.6, top_p: float = 0.95,
             seed: int = 0, output: str | Path | None = None, data: dict[str, str] | str | None = None,
             limit: int | None = None, backend: str = "auto", overwrite: bool = False, label: str | None = None,
             protocol: str | None = None, ks=KS, console=None) -> dict:
    """Evaluate `model` (+ `adapter`) on `benchmarks`; returns the eval.json content.

    `adapter` takes a run folder, a checkpoint or an adapter folder. `data` maps benchmark
    names to local copies (a single path applies to a single benchmark). `max_tokens` None
    means the protocol's 3584, or less when the model's context is shorter (with a warning); an
    explicit one that leaves the prompt less than 512 tokens of the context is refused.
    Re-running with the same settings and output resumes; other settings (or a retrained adapter)
    start afresh there, the old files renamed ``.old-<time>`` beside them.
    """
    from budgetreason.evaluate.benchmarks import load_problems
    from budgetreason.plan.architectures import canonical_model_id

    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise BudgetError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'.")
        p = PROTOCOLS[protocol]
        benchmarks, samples, ks = list(p["benchmarks"]), p["samples"], tuple(p["ks"])
        temperature, top_p, max_tokens = p["temperature"], p["top_p"], None  # p["max_tokens"], capped below
    if isinstance(benchmarks, str):
        benchmarks = [b.strip() for b in benchmarks.split(",") if b.strip()]
    model = canonical_model_id(model)
    asked = max_tokens or (PROTOCOLS[protocol]["max_tokens"] if protocol else PROTOCOL_MAX_TOKENS)
    max_tokens, note = check_arguments(model, list(benchmarks), samples, max_tokens, temperature, top_p, limit, backend,
                                       output, protocol_max_tokens=asked)
    adapter_path, run_cfg = adapter_dir(adapter)
    if isinstance(data, str):
        if len(benchmarks) != 1:
            raise BudgetError("--data with several benchmarks: use name=path pairs, e.g. --data aime24=aime.jsonl.")
        data = {benchmarks[0]: data}
    data = data or {}
    settings = SamplingSettings(n=samples, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    out_dir = Path(output or Path("evals") / f"{model.split('/')[-1]}{'-' + Path(adapter).name if adapter else ''}")
    problems = {bench: load_problems(bench, data=data.get(bench), seed=seed, limit=limit) for bench in benchmarks}
    if note and console is not None:  # after the last check that can fail, so an error stays one line
        console.print(f"[yellow]warning: {note}[/]", highlight=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"model": model, "adapter": adapter_path, "adapter_hash": adapter_hash(adapter_path),
              "sampling": asdict(settings), "limit": limit, "protocol": protocol,
              "data": {b: str(Path(data[b]).expanduser().resolve()) for b in benchmarks if data.get(b)} or None,
              "problems": {b: problems_fingerprint(probs) for b, probs in problems.items()},
              "label": label or (f"{model} + {Path(adapter).name}" if adapter else model)}
    settings_file = out_dir / SETTINGS_FILE
    if settings_file.is_file() and not overwrite:
        # The resume key: model, adapter (path and content), sampling, limit, protocol, the --data paths and
        # a fingerprint of each benchmark's problems (so another file or hub copy is not answered with old texts). Completions made
        # under another key are another evaluation's: they are set aside, never mixed in nor deleted.
        have = json.loads(settings_file.read_text())
        changed = [k for k in RESUME_KEY if have.get(k) != wanted[k]]
        if changed:
            overwrite = True
            if console is not None:
                names = {"adapter_hash": "adapter weights", "problems": "problems"}
                what = ", ".join(names.get(k, k) for k in changed)
                console.print(f"{out_dir} was evaluated with other {what}; starting afresh "
                              "(the old files are kept beside, renamed .old-<time>)", highlight=False)
    if overwrite:
        set_aside(out_dir, (COMPLETIONS_FILE, EVAL_FILE, SETTINGS_FILE))
    settings_file.write_text(json.dumps(wanted, indent=2))

    comp_file = out_dir / COMPLETIONS_FILE
    # A problem counts as done once all its samples are written; a partial one is generated again.
    counts = Counter((r["benchmark"], r["problem_id"]) for r in _read_completions(comp_file))
    done = {key for key, n in counts.items() if n >= samples}
    todo = {bench: [p for p in probs if (bench, p.id) not in done] for bench, probs in problems.items()}
    generator, used_backend, opens_think = None, None, None
    with _progress(console, sum(map(len, todo.values()))) as advance:
        for bench, left in todo.items():
            if not left:
                continue
            if generator is None:
                generator, used_backend = _make_generator(model, adapter_path, backend, settings, run_cfg)
                from budgetreason.evaluate.generation import template_opens_think

                opens_think = template_opens_think(generator.tok, left[0].prompt)
            kept = [r for r in _read_completions(comp_file) if (r["benchmark"], r["problem_id"]) in done]
            comp_file.write_text("".join(json.dumps(r) + "\n" for r in kept))  # drop partial problems
            chunk = 8
            for i in range(0, len(left), chunk):
                part = left[i:i + chunk]
                recs = score(part, generator.generate([p.prompt for p in part], settings), bench, opens_think)
                with comp_file.open("a") as f:
                    for r in recs:
                        f.write(json.dumps(r) + "\n")
                done.update((bench, p.id) for p in part)
                advance(bench, len(part))
    records = [r for r in _read_completions(comp_file) if r["benchmark"] in benchmarks]
    if opens_think is None and (out_dir / EVAL_FILE).is_file():  # all resumed: the template was read before
        opens_think = json.loads((out_dir / EVAL_FILE).read_text()).get("prompt_opens_think")
    result = {"label": wanted["label"], "model": model, "adapter": adapter_path,
              "adapter_hash": wanted["adapter_hash"], "run_config": {
        k: run_cfg.get(k) for k in ("lora_rank", "dataset", "rewards", "loss") if k in run_cfg},
        "backend": used_backend, "entropy_method": "exact" if used_backend in (None, "hf") else "top-20 log-probs (lower bound)",
        "protocol": {"name": protocol, **asdict(settings), "benchmarks": list(benchmarks), "ks": list(ks),
                     "prompt": "chat template with budgetreason.data.datasets.SYSTEM_PROMPT, zero-shot",
                     "source": PROTOCOLS[protocol]["source"] if protocol else None},
        "completion_length": completion_length(model, asked, max_tokens, run_cfg),
        "prompt_opens_think": opens_think,
        "benchmarks": summarize(records, ks=ks)}
    (out_dir / EVAL_FILE).write_text(json.dumps(result, indent=2))
    return result


def completion_length(model: str, asked: int, max_tokens: int, run_cfg: dict) -> dict:
    """How the completion length was set, for eval.json: asked (the protocol's or --max-tokens), the model's
    context, the prompt room, the length used, whether the context capped it, and the engine's length."""
    from budgetreason.plan.architectures import resolve_model

    context = resolve_model(model).max_context
    return {"asked": asked, "model_context": context, "prompt_room": prompt_room(context), "max_tokens": max_tokens,
            "capped": max_tokens < asked,
            "engine_max_model_len": engine_length(context, max_tokens, run_cfg.get("max_prompt_length"))}


@contextmanager
def _progress(console, total: int):
    """A rich progress bar on `console` (problems done of `total`, elapsed, ETA); yields advance(benchmark, n)."""
    if console is None or total == 0:
        yield lambda bench, n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("problems"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("evaluating", total=total)

        def advance(bench: str, n: int) -> None:
            bar.update(task, advance=n, description=bench)
            if not console.is_terminal:  # logs and notebooks: one line per chunk instead of a redrawn bar
                t = bar.tasks[0]
                eta = "" if t.time_remaining is None else f", ETA {t.time_remaining / 60:.1f} min"
                console.print(f"{bench}: {int(t.completed)}/{total} problems{eta}")

        yield advance
