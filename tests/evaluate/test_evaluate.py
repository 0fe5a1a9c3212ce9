"""Evaluation on local files shaped like each benchmark, exact entropy, resume, and the Table-1 comparison."""

from __future__ import annotations

import json

import pytest
import torch

from budgetreason.errors import BudgetError
from budgetreason.evaluate.benchmarks import load_problems, registry
from budgetreason.evaluate.evaluation import evaluate, score, summarize
from budgetreason.evaluate.generation import Sample
from tests.conftest import run_cli

#: One row per benchmark in the hub dataset's own columns (REFERENCE.md), with a correct and a wrong completion.
SHAPES = {
    "aime24": ({"id": 60, "problem": "Find n.", "solution": "... \\boxed{204}", "answer": "204", "url": "u", "year": "2024"},
               "<think>...</think> \\boxed{204}", "<think>...</think> \\boxed{240}"),
    "aime25": ({"id": "I-1", "problem": "Find the sum.", "answer": "70"}, "\\boxed{070}", "\\boxed{71}"),
    "amc23": ({"id": 3, "problem": "What is x?", "answer": "\\frac{9}{4}", "url": "u"}, "\\boxed{2.25}", "\\boxed{9/5}"),
    "math500": ({"problem": "Simplify.", "solution": "So \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
                 "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
                 "unique_id": "test/precalculus/807.json"}, "\\boxed{(3, \\pi/2)}", "\\boxed{(3, \\pi)}"),
    "minerva": ({"problem": "Compute the speed.", "solution": "The speed is $\\boxed{4.5}$ m/s.", "idx": 0},
                "The answer is \\boxed{4.5 \\text{ m/s}}", "\\boxed{45}"),
    "gpqa-diamond": ({"Question": "Which particle?", "Correct Answer": "Muon", "Incorrect Answer 1": "Pion",
                      "Incorrect Answer 2": "Kaon", "Incorrect Answer 3": "Tau"}, None, None),
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_registry_lists_the_papers_benchmarks():
    reg = registry()
    assert {"arith", "aime24", "aime25", "amc23", "math500", "minerva", "gpqa-diamond"} <= set(reg)
    assert reg["math500"].hf_id == "HuggingFaceH4/MATH-500" and reg["math500"].split == "test"
    assert reg["gpqa-diamond"].config == "gpqa_diamond"


@pytest.mark.parametrize("name", [n for n in SHAPES if n != "gpqa-diamond"])
def test_each_benchmarks_answer_format_is_scored(tmp_path, name):
    row, right, wrong = SHAPES[name]
    problems = load_problems(name, data=write_jsonl(tmp_path / "b.jsonl", [row]))
    assert len(problems) == 1 and problems[0].prompt[-1]["content"] == row["problem"]
    recs = score(problems, [[Sample(right, 10, None, "stop"), Sample(wrong, 10, None, "stop")]], name)
    assert [r["correct"] for r in recs] == [True, False]


def test_gpqa_choices_are_shuffled_with_the_seed_and_the_letter_is_scored(tmp_path):
    row = SHAPES["gpqa-diamond"][0]
    path = write_jsonl(tmp_path / "g.jsonl", [row] * 1)
    p0 = load_problems("gpqa-diamond", data=path, seed=0)[0]
    again = load_problems("gpqa-diamond", data=path, seed=0)[0]
    assert p0.prompt == again.prompt
    text = p0.prompt[-1]["content"]
    assert "(A)" in text and "(D)" in text and "Muon" in text
    letter = p0.gold
    assert f"({letter}) Muon" in text
    wrong = next(c for c in "ABCD" if c != letter)
    recs = score([p0], [[Sample(f"\\boxed{{{letter}}}", 3, None, "stop"), Sample(f"The answer is ({wrong})", 3, None, "stop")]],
                 "gpqa-diamond")
    assert [r["correct"] for r in recs] == [True, False]
    golds = {load_problems("gpqa-diamond", data=path, seed=s)[0].gold for s in range(12)}
    assert len(golds) > 1  # the correct choice moves with the seed


def test_missing_columns_and_offline_hub_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(BudgetError, match="lacks column"):
        load_problems("aime24", data=write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "final": "1"}]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BudgetError, match="--data"):
        load_problems("aime24")


def test_summary_computes_pass_at_k_from_records():
    recs = [{"benchmark": "b", "problem_id": str(p), "sample": s, "correct": (p == 0 and s < 2), "tokens": 10,
             "entropy": 0.5, "finish_reason": "length" if s == 0 else "stop"} for p in range(2) for s in range(8)]
    s = summarize(recs)["b"]
    assert s["n_problems"] == 2 and s["samples"] == 8
    assert s["pass@1"] == pytest.approx((2 / 8) / 2)
    assert s["pass@8"] == pytest.approx(0.5)
    assert s["truncated"] == pytest.approx(2 / 16)


def test_entropy_equals_a_direct_computation_from_the_logits():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from budgetreason.evaluate.generation import response_entropy
    from budgetreason.plan.architectures import tiny_model_dir

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir()).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], add_generation_prompt=True,
                                     tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tok("<think>\n12 + 30\nunits: 2 + 0 = 2\ntens: 1 + 3 = 4\n</think>\n\\boxed{42}",
                add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([p_ids + c_ids])).logits[0]
    dist = torch.softmax(logits[len(p_ids) - 1: len(p_ids) - 1 + len(c_ids)].double(), -1)
    direct = float((-(dist * dist.log()).sum(-1)).mean())
    assert response_entropy(model, p_ids, c_ids) == pytest.approx(direct, rel=1e-5)


def test_evaluate_resumes_and_starts_afresh_on_other_settings(tmp_path):
    out = tmp_path / "ev"
    common = dict(benchmarks="arith", samples=2, max_tokens=48, temperature=1.0, top_p=1.0, limit=6, backend="hf")
    first = evaluate("tiny-arith", output=out, **common)
    lines = (out / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and first["benchmarks"]["arith"]["n_problems"] == 6
    rec = json.loads(lines[0])
    assert {"benchmark", "problem_id", "sample", "text", "extracted", "correct", "tokens", "entropy"} <= set(rec)
    # an interruption: the last problem's samples are lost; the rerun generates only those
    (out / "completions.jsonl").write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:20])
    again = evaluate("tiny-arith", output=out, **common)
    assert len((out / "completions.jsonl").read_text().splitlines()) == 12
    assert again["benchmarks"]["arith"]["n_problems"] == 6
    kept = (out / "completions.jsonl").read_text()
    third = evaluate("tiny-arith", output=out, **{**common, "samples": 3})  # other sampling: afresh, old kept
    assert len((out / "completions.jsonl").read_text().splitlines()) == 18
    assert third["benchmarks"]["arith"]["samples"] == 3
    aside = [p for p in out.iterdir() if p.name.startswith("completions.jsonl.old-")]
    assert len(aside) == 1 and aside[0].read_text() == kept
    assert json.loads((out / "eval_settings.json").read_text())["sampling"]["n"] == 3


def test_before_and_after_training_in_one_table(tmp_path):
    """End to end on the CPU: evaluate tiny-arith, train briefly, evaluate the adapter, compare."""
    from budgetreason.train.training import train

    common = ["--benchmarks", "arith", "--samples", "4", "--max-tokens", "64", "--temperature", "1.0", "--top-p", "1.0",
              "--limit", "24", "--backend", "hf"]
    r = run_cli("eval", "--model", "tiny-arith", "--output", str(tmp_path / "base"), *common)
    assert r.returncode == 0, r.stderr[-2000:]
    train(model="tiny-arith", max_steps=8, output=str(tmp_path / "run"), progress=False)
    r = run_cli("eval", "--model", "tiny-arith", "--adapter", str(tmp_path / "run"), "--output", str(tmp_path / "final"),
                *common)
    assert r.returncode == 0, r.stderr[-2000:]
    final = json.loads((tmp_path / "final" / "eval.json").read_text())
    assert final["adapter"].endswith("adapter") and final["run_config"]["lora_rank"] == 16
    r = run_cli("compare", str(tmp_path / "base"), str(tmp_path / "final"), "--output", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| tiny-arith | Baseline |" in md and "| Final |" in md and "arith @1" in md and "ΔH_rel" in md
    table = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(table["rows"]) == 2 and table["rows"][1]["entropy_change_pct"] is not None
    assert "arith @1" in r.stdout


def test_eval_cli_bad_input(tmp_path):
    r = run_cli("eval", "--model", "tiny-arith", "--benchmarks", "nope", "--output", str(tmp_path / "e"))
    assert r.returncode == 2 and "Unknown benchmark 'nope'" in r.stderr
    r = run_cli("eval", "--model", "tiny-arith", "--adapter", str(tmp_path), "--benchmarks", "arith")
    assert r.returncode == 2 and "no LoRA adapter there" in r.stderr


def test_gpu_backends_need_a_gpu_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for backend in ("vllm", "unsloth"):
        with pytest.raises(BudgetError, match=f"--backend {backend} needs a CUDA GPU"):
            evaluate("tiny-arith", benchmarks="arith", samples=1, limit=1, backend=backend, output=tmp_path / backend)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["vllm", "unsloth"])
def test_gpu_evaluation_backends_write_the_same_records(tmp_path, backend):
    from budgetreason.models.synthetic import save_random_model
    from budgetreason.plan.architectures import resolve_model

    folder = save_random_model(resolve_model("Qwen/Qwen2.5-0.5B-Instruct"), tmp_path / "m")
    result = evaluate(str(folder), benchmarks="arith", samples=2, max_tokens=32, limit=4, backend=backend,
                      output=tmp_path / "ev")
    assert result["backend"] == backend and result["benchmarks"]["arith"]["n_problems"] == 4
    assert result["entropy_method"].startswith("top-20")


def _write_adapter(path, seed: int) -> None:
    """A random (non-zero) LoRA adapter on the tiny model, as a retrained run would leave in adapter/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from budgetreason.plan.architectures import tiny_model_dir

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir()),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(str(path))


def test_an_interrupted_evaluation_of_a_retrained_adapter_starts_afresh(tmp_path):
    from budgetreason.evaluate.evaluation import adapter_hash

    adapter, out = tmp_path / "adapter", tmp_path / "ev"
    common = dict(benchmarks="arith", samples=2, max_tokens=24, temperature=1.0, top_p=1.0, limit=4, backend="hf")
    _write_adapter(adapter, seed=1)
    first_hash = adapter_hash(str(adapter))
    evaluate("tiny-arith", adapter=str(adapter), output=out, **common)
    lines = (out / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 8
    (out / "completions.jsonl").write_text("\n".join(lines[:4]) + "\n")  # interrupted after 2 of 4 problems
    _write_adapter(adapter, seed=2)  # the run trained on: same folder, other weights
    assert adapter_hash(str(adapter)) != first_hash
    again = evaluate("tiny-arith", adapter=str(adapter), output=out, **common)
    assert again["adapter_hash"] == adapter_hash(str(adapter))
    assert len((out / "completions.jsonl").read_text().splitlines()) == 8
    aside = [p for p in out.iterdir() if p.name.startswith("completions.jsonl.old-")]
    assert len(aside) == 1 and aside[0].read_text().splitlines() == lines[:4]  # moved aside, not reused
    assert json.loads((out / "eval_settings.json").read_text())["adapter_hash"] == again["adapter_hash"]


def test_default_completion_length_follows_the_context_with_a_warning_and_progress(tmp_path):
    """tiny-arith's context is 1024 tokens: the default is 512, not the protocol's 3584, and it says so."""
    import io

    from rich.console import Console

    from budgetreason.evaluate.evaluation import default_max_tokens

    assert default_max_tokens(1024) == 512 and default_max_tokens(32768) == 3584 and default_max_tokens(4096) == 3584
    buf = io.StringIO()
    result = evaluate("tiny-arith", benchmarks="arith", samples=1, temperature=0.0, limit=3, backend="hf",
                      output=tmp_path / "ev", console=Console(file=buf, width=120))
    assert result["protocol"]["max_tokens"] == 512
    text = buf.getvalue()
    assert "--max-tokens 512, not the protocol's 3584" in text and "context is 1024 tokens" in text
    assert "arith: 3/3 problems" in text  # outside a terminal: a line per chunk with the count (and the ETA)


def test_another_data_file_with_the_same_ids_starts_afresh(tmp_path):
    """Review #1: the resume key holds the --data path and a fingerprint of each benchmark's problems."""
    import io

    from rich.console import Console

    from budgetreason.evaluate.evaluation import problems_fingerprint

    a = write_jsonl(tmp_path / "a.jsonl", [{"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                           for i in range(3)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": f"p{i}", "problem": f"What is {i} + 5?", "answer": str(i + 5)}
                                           for i in range(3)])
    out = tmp_path / "ev"
    common = dict(benchmarks="amc23", samples=1, temperature=0.0, max_tokens=8, backend="hf", output=out)
    evaluate("tiny-arith", data=a, **common)
    first = (out / "completions.jsonl").read_text()
    settings = json.loads((out / "eval_settings.json").read_text())
    assert settings["data"] == {"amc23": str((tmp_path / "a.jsonl").resolve())}
    assert settings["problems"] == {"amc23": problems_fingerprint(load_problems("amc23", data=a))}
    buf = io.StringIO()
    evaluate("tiny-arith", data=b, console=Console(file=buf, width=200), **common)
    assert "was evaluated with other data, problems; starting afresh" in buf.getvalue()
    aside = [p for p in out.iterdir() if p.name.startswith("completions.jsonl.old-")]
    assert len(aside) == 1 and aside[0].read_text() == first
    # the same path with other contents (a hub copy that changed) differs too: only the fingerprint tells
    write_jsonl(tmp_path / "b.jsonl", [{"id": f"p{i}", "problem": f"What is {i} + 6?", "answer": str(i + 6)}
                                       for i in range(3)])
    buf = io.StringIO()
    evaluate("tiny-arith", data=b, console=Console(file=buf, width=200), **common)
    assert "was evaluated with other problems; starting afresh" in buf.getvalue()
    prompts = {json.loads(line)["problem_id"] for line in (out / "completions.jsonl").read_text().splitlines()}
    assert prompts == {"p0", "p1", "p2"}
    assert json.loads((out / "eval_settings.json").read_text())["problems"]["amc23"] == \
        problems_fingerprint(load_problems("amc23", data=b))


def test_set_aside_twice_in_one_second_keeps_both(tmp_path, monkeypatch):
    """Review #13: a second set-aside in the same second must not replace the first one's files."""
    import time

    from budgetreason.evaluate.evaluation import set_aside

    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    for text in ("first", "second", "third"):
        (tmp_path / "completions.jsonl").write_text(text)
        (tmp_path / "eval.json").write_text(text)
        set_aside(tmp_path, ("completions.jsonl", "eval.json", "eval_settings.json"))
    kept = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert kept == {"completions.jsonl.old-1700000000": "first", "eval.json.old-1700000000": "first",
                    "completions.jsonl.old-1700000000-1": "second", "eval.json.old-1700000000-1": "second",
                    "completions.jsonl.old-1700000000-2": "third", "eval.json.old-1700000000-2": "third"}


def test_evaluate_twice_in_one_second_keeps_the_first_set_aside(tmp_path, monkeypatch):
    """Review #13 through evaluate(): two changes of settings in one second lose no completions."""
    import time

    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    out = tmp_path / "ev"
    common = dict(benchmarks="arith", temperature=1.0, top_p=1.0, max_tokens=8, limit=2, backend="hf", output=out)
    texts = []
    for n in (1, 2, 3):
        evaluate("tiny-arith", samples=n, **common)
        texts.append((out / "completions.jsonl").read_text())
    aside = sorted(p.name for p in out.iterdir() if p.name.startswith("completions.jsonl.old-"))
    assert aside == ["completions.jsonl.old-1700000000", "completions.jsonl.old-1700000000-1"]
    assert [(out / n).read_text() for n in aside] == texts[:2]


class _EngineStub:
    """Stands in for vLLM's engine (no GPU here): records the max_model_len it is built with."""

    built: list = []

    def __init__(self, model_path, adapter, max_model_len, **kwargs):
        _EngineStub.built.append((model_path, max_model_len))


@pytest.mark.parametrize(("model", "protocol", "max_tokens", "engine_len"), [
    ("Qwen/Qwen2.5-Math-1.5B", "micro-budget", 3584, 4096),  # 512 of prompt + 3584, not 1024 + 3584
    ("Qwen/Qwen2.5-Math-1.5B", "tina", 3584, 4096),  # Tina's 4096 rule: 32768 capped by the 4096 context
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "tina", 32768, 33280),
    ("Qwen/Qwen2.5-1.5B-Instruct", "micro-budget", 3584, 4096),
])
def test_vllm_engine_length_follows_the_prompt_room_rule_capped_at_the_context(monkeypatch, model, protocol,
                                                                              max_tokens, engine_len):
    """Review #2: a baseline eval (no run config) sizes vLLM's max_model_len as check_arguments sized the completion."""
    from budgetreason.evaluate import generation
    from budgetreason.evaluate.evaluation import PROTOCOLS, _make_generator, check_arguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the GPU cannot exist here; vLLM neither
    monkeypatch.setattr(generation, "VLLMGenerator", _EngineStub)
    p = PROTOCOLS[protocol]
    fit, _ = check_arguments(model, p["benchmarks"], p["samples"], None, p["temperature"], p["top_p"], None, "vllm",
                             None, protocol_max_tokens=p["max_tokens"])
    assert fit == max_tokens
    _EngineStub.built.clear()
    monkeypatch.setattr("budgetreason.online.offline_reason", lambda: None)  # no hub probe
    _make_generator(model, None, "vllm", generation.SamplingSettings(max_tokens=fit), {})
    assert _EngineStub.built == [(model, engine_len)]
    from budgetreason.plan.architectures import resolve_model

    assert engine_len <= resolve_model(model).max_context


def test_a_completion_that_cannot_fit_the_context_is_one_line_exit_2(tmp_path):
    """Review #2: --max-tokens beyond what the context leaves is refused before a model loads, not warned about."""
    r = run_cli("eval", "--model", "tiny-arith", "--benchmarks", "arith", "--max-tokens", "1000", "--output",
                str(tmp_path / "e"))
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip() == ("error: --max-tokens 1000 does not fit tiny-arith's context of 1024 tokens with 512 "
                                "left for the prompt; use --max-tokens 512 or less, or leave it out.")
    assert not (tmp_path / "e").exists()


UNFINISHED = "Let me try x=7, so \\boxed{7}? Wait, let me re-check the case where"


def test_score_judges_unfinished_reasoning_wrong_when_the_template_opens_think():
    """Review #3: the same verdict as the training reward (preset with prompt_opens_think=True)."""
    from budgetreason.evaluate.benchmarks import Problem
    from budgetreason.rewards.functions import preset

    prob = Problem(id="0", prompt=[{"role": "user", "content": "x?"}], gold="7", kind="integer")
    samples = [[Sample(UNFINISHED, 20, None, "length"), Sample("so 7\n</think>\n\\boxed{7}", 9, None, "stop")]]
    opened = score([prob], samples, "amc23", prompt_opens_think=True)
    assert [(r["correct"], r["extracted"]) for r in opened] == [(False, None), (True, "7")]
    reward = preset("micro_budget", prompt_opens_think=True).funcs[1]
    assert reward([UNFINISHED, "so 7\n</think>\n\\boxed{7}"], solution=["7", "7"]) == [0.0, 1.0]
    plain = score([prob], samples, "amc23")  # a template that does not open <think>: the text is all answer
    assert [r["correct"] for r in plain] == [True, True]


def test_evaluate_reads_whether_the_template_opens_think(tmp_path):
    """Review #3: evaluate() renders a prompt with the model's own template and scores accordingly."""
    from budgetreason.rewards.verify import score_batch
    from tests.conftest import think_opening_model

    folder = think_opening_model(tmp_path / "r1-like")
    common = dict(benchmarks="arith", samples=1, temperature=0.0, max_tokens=48, limit=4, backend="hf")
    result = evaluate(str(folder), output=tmp_path / "ev", **common)
    assert result["prompt_opens_think"] is True
    recs = [json.loads(line) for line in (tmp_path / "ev" / "completions.jsonl").read_text().splitlines()]
    golds = {p.id: p.gold for p in load_problems("arith", limit=4)}
    assert [r["correct"] for r in recs] == \
        [bool(v) for v in score_batch([golds[r["problem_id"]] for r in recs], [r["text"] for r in recs],
                                      prompt_opens_think=True)]
    # fully resumed: nothing generated, the template's answer is kept
    assert evaluate(str(folder), output=tmp_path / "ev", **common)["prompt_opens_think"] is True
    assert evaluate("tiny-arith", output=tmp_path / "plain", **common)["prompt_opens_think"] is False
