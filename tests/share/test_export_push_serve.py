"""After a run: export (merged or adapter), push to the Hub (the hub itself is replaced here), and serve with vLLM.

One real tiny-model run (checkpoints, validation) and one real evaluation are shared by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from budgetreason.errors import BudgetError
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from budgetreason.evaluate.evaluation import evaluate
    from budgetreason.train.training import train

    out = tmp_path_factory.mktemp("after") / "run"
    train(model="tiny-arith", max_steps=3, save_steps=1, val_every=1, val_benchmark="arith", val_size_benchmark=8,
          output=str(out), progress=False)
    evaluate("tiny-arith", adapter=str(out), benchmarks="arith", samples=2, max_tokens=64, limit=4,
             output=out / "eval", backend="hf")
    return out


def held_out_texts() -> list[str]:
    """Prompts the run never trained on (another seed), rendered as in training, plus a completion."""
    from transformers import AutoTokenizer

    from budgetreason.data.arith import make_problems
    from budgetreason.data.datasets import SYSTEM_PROMPT
    from budgetreason.plan.architectures import tiny_model_dir

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    texts = []
    for p in make_problems(6, seed=12345):
        prompt = tok.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": p.problem}], add_generation_prompt=True,
                                         tokenize=False)
        texts.append(prompt + f"<think>\n{p.problem}\n</think>\n\\boxed{{{p.answer}}}")
    return texts


def logprobs(model, tokenizer, texts) -> torch.Tensor:
    model.eval()
    out = []
    with torch.no_grad():
        for t in texts:
            ids = tokenizer(t, return_tensors="pt")
            logits = model(**ids).logits[0, :-1].float()
            out.append(torch.log_softmax(logits, -1).gather(-1, ids["input_ids"][0, 1:, None]).squeeze(-1))
    return torch.cat(out)


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# ---- export ------------------------------------------------------------------------------------------
def test_merged_model_gives_base_plus_adapter_log_probs(run, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from budgetreason.plan.architectures import tiny_model_dir
    from budgetreason.share.export import export_merged

    exact = export_merged(run, tmp_path / "m32", dtype="float32")
    r = run_cli("export", "merged", str(run), "--output", str(tmp_path / "m16"))  # the default: 16-bit
    assert r.returncode == 0, r.stderr[-2000:]
    m16 = tmp_path / "m16"
    names = {p.name for p in m16.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}  # a plain model, no PEFT needed
    assert exact.step == 3 and exact.kind == "merged"

    tok = AutoTokenizer.from_pretrained(m16)
    texts = held_out_texts()
    reference = logprobs(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir()),
                                                   run / "adapter"), tok, texts)
    base = logprobs(AutoModelForCausalLM.from_pretrained(tiny_model_dir()), tok, texts)
    merged32 = AutoModelForCausalLM.from_pretrained(tmp_path / "m32")
    assert type(merged32).__name__ == "Qwen2ForCausalLM"
    assert torch.allclose(logprobs(merged32, tok, texts), reference, atol=1e-4)  # merged = base + adapter
    assert (base - reference).abs().max() > 1e-2  # and the adapter did change the model

    merged16 = AutoModelForCausalLM.from_pretrained(m16)
    assert merged16.dtype == torch.bfloat16 and json.loads((m16 / "config.json").read_text())["dtype"] == "bfloat16"
    w16, w32 = load_file(m16 / "model.safetensors"), load_file(tmp_path / "m32" / "model.safetensors")
    assert w16.keys() == w32.keys()
    assert all(w16[k].dtype == torch.bfloat16 and torch.equal(w16[k], w32[k].to(torch.bfloat16)) for k in w16)
    lp16 = logprobs(merged16, tok, texts)
    assert (lp16 - reference).abs().max() < (base - reference).abs().max() / 4  # bf16 rounding only


def test_export_refuses_an_existing_non_empty_output(run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli("export", "merged", str(run), "--output", str(out))
    assert r.returncode == 2
    assert "exists and is not empty" in one_line(r.stderr)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    r = run_cli("export", "merged", str(tmp_path / "no-run"), "--output", str(tmp_path / "x"))
    assert r.returncode == 2 and "no budgetreason run there" in one_line(r.stderr)


def test_adapter_only_names_the_base_by_its_id(run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from budgetreason.plan.architectures import tiny_model_dir

    r = run_cli("export", "merged", str(run), "--adapter-only", "--output", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr[-2000:]
    conf = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    saved = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(tiny_model_dir())  # what PEFT wrote: a local path
    assert conf["base_model_name_or_path"] == "tiny-arith" and conf["r"] == saved["r"] == 16
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == (run / "adapter" / "adapter_model.safetensors").read_bytes()
    assert not (tmp_path / "a" / "optimizer.pt").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir()), tmp_path / "a")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


def test_checkpoint_best_final_and_step(run, tmp_path):
    from budgetreason.runs.folder import RunFolder
    from budgetreason.share.export import choose_adapter

    folder = RunFolder(run)
    rows = folder.read_metrics()
    val = {r["step"]: r["val/accuracy"] for r in rows if "val/accuracy" in r}
    assert sorted(val) == [1, 2, 3]
    best = max(sorted(val), key=lambda s: (val[s], -s))
    path, step, how = choose_adapter(folder, "best")
    assert step == best and f"at step {best}" in how
    assert path.name in (f"checkpoint-{best}", "adapter")
    assert choose_adapter(folder, "final")[0] == run / "adapter"
    assert choose_adapter(folder, "2")[0] == run / "checkpoint-2"
    r = run_cli("export", "adapter", str(run), "--checkpoint", "99", "--output", str(tmp_path / "x"))
    assert r.returncode == 2 and "no complete checkpoint-99" in one_line(r.stderr)
    assert not (tmp_path / "x").exists()
    with pytest.raises(BudgetError, match="best, final or a step"):
        choose_adapter(folder, "latest")


# ---- push --------------------------------------------------------------------------------------------
def test_push_dry_run_lists_the_files_and_writes_the_card(run):
    r = run_cli("push", str(run), "--repo", "someone/tiny-arith-grpo", "--dry-run")
    assert r.returncode == 0, r.stderr[-2000:]
    hub = run / "hub"
    listed = [line.split()[-1] for line in r.stdout.splitlines() if line.strip() and not line.startswith("dry run")]
    on_disk = sorted(str(p.relative_to(hub)) for p in hub.rglob("*") if p.is_file())
    assert sorted(listed) == on_disk
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json", "config.yaml", "plan.json",
            "eval_results.json", "tokenizer.json"} <= set(listed)
    figures = [p for p in listed if p.startswith("figures/")]
    assert {"figures/reward.png", "figures/accuracy.png", "figures/validation.png"} <= set(figures)
    card = (hub / "README.md").read_text()
    assert card.startswith("---\nbase_model: tiny-arith\nlibrary_name: peft\n")
    assert "| base model | `tiny-arith` |" in card
    assert "| dataset | `arith` (generated by budgetreason)" in card
    assert "0.2·format + 1·accuracy (`micro_budget`" in card
    assert "## Plan" in card and "| GPU | CPU" in card and "| hours |" in card and "| cost (USD) |" in card
    for f in figures:  # every figure is embedded and travels with the card
        assert f"]({f})" in card and (hub / f).stat().st_size > 1000
    assert "| arith |" in card and "pass@1 (%)" in card  # the evaluation table from RUN/eval/eval.json
    assert "2 samples per problem at temperature 0.6, top-p 0.95, at most 64 new tokens" in card  # its protocol
    assert "Math-Verify" in card


def test_push_dry_run_merged_lists_the_plain_model(run):
    from budgetreason.share.hub import push

    result = push(run, "someone/tiny-merged", merged=True, dry_run=True, evals=[run / "eval"])  # --eval: one more
    files = {p for p, _ in result.files}
    assert len(json.loads((run / "hub" / "eval_results.json").read_text())) == 2
    assert {"model.safetensors", "config.json", "generation_config.json", "README.md"} <= files
    assert "adapter_config.json" not in files and not result.uploaded
    assert "library_name: transformers" in (run / "hub" / "README.md").read_text()


def test_push_offline_or_logged_out_is_one_line(run, tmp_path):
    r = run_cli("push", str(run), "--repo", "someone/x", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "Offline" in one_line(r.stderr)
    r = run_cli("push", str(run), "--repo", "someone/x",
                env={"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""})
    assert r.returncode == 2 and "Not logged in" in one_line(r.stderr)
    r = run_cli("push", str(run), "--repo", "no-slash", "--dry-run")
    assert r.returncode == 2 and "--repo must be USER/NAME" in one_line(r.stderr)


def test_push_uploads_the_staged_folder_with_huggingface_hub(run, monkeypatch):
    """The hub cannot be reached here; HfApi's two calls are replaced and what they receive is checked."""
    import huggingface_hub

    import budgetreason.share.hub as hub_mod

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kw):
            calls["upload"] = kw
            calls["uploaded_files"] = sorted(p.name for p in Path(kw["folder_path"]).iterdir())

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(hub_mod, "_ready_to_upload", lambda token: None)
    result = hub_mod.push(run, "someone/tiny", private=True, token="hf_x")
    assert calls["create"] == ("someone/tiny", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["upload"]["repo_id"] == "someone/tiny" and calls["upload"]["folder_path"] == str(run / "hub")
    assert "README.md" in calls["uploaded_files"] and "adapter_model.safetensors" in calls["uploaded_files"]
    assert result.uploaded and result.url == "https://huggingface.co/someone/tiny"


# ---- serve -------------------------------------------------------------------------------------------
def test_serve_prints_the_vllm_command_with_lora_and_a_request(run):
    r = run_cli("serve", str(run), "--name", "tiny-grpo", "--port", "8123")
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stdout.splitlines()[0]
    assert first.startswith("vllm serve ") and "budgetreason/assets/tiny-arith" in first
    assert f"--enable-lora --lora-modules tiny-grpo={(run / 'adapter').resolve()} --max-lora-rank 16" in first
    assert "--max-model-len 192" in first and first.endswith("--port 8123")
    curl = [x for x in r.stdout.splitlines() if x.startswith("curl ")][0]
    assert "http://localhost:8123/v1/chat/completions" in curl and '"model": "tiny-grpo"' in curl
    r = run_cli("serve", str(run), "--checkpoint", "2", "--run", env={"PATH": "/nonexistent"})
    assert r.returncode == 2 and "vLLM is not installed here" in one_line(r.stderr)
    assert f"{(run / 'checkpoint-2').resolve()}" in r.stdout


def test_max_lora_rank_rounds_up_to_vllms_allowed_ranks():
    from budgetreason.share.serving import max_lora_rank

    assert [max_lora_rank(r) for r in (1, 2, 8, 9, 64, 100, 256, 257, 512)] == [1, 8, 8, 16, 64, 128, 256, 320, 512]
    with pytest.raises(BudgetError, match="merged export"):
        max_lora_rank(1024)


def test_card_names_custom_rewards_and_hub_datasets():
    from budgetreason.share.hub_card import dataset_ids, reward_recipe

    assert reward_recipe({"reward_funcs": ["my_rewards:brevity", "accuracy"], "reward_weights": [0.5, 1.0]}) == \
        "0.5·`my_rewards:brevity` + 1·`accuracy` (your reward functions)"
    assert reward_recipe({"rewards": "tina"}).startswith("2·accuracy + 1·format (`tina`: Wang et al.")
    assert dataset_ids("open-rs") == ("knoveleng/open-rs (budgetreason recipe `open-rs`)", ["knoveleng/open-rs"])
    assert dataset_ids("openai/gsm8k") == ("openai/gsm8k", ["openai/gsm8k"])
    assert dataset_ids("data/problems.jsonl") == ("a local file (problems.jsonl)", [])


@pytest.mark.gpu
def test_vllm_loads_the_merged_export_and_the_adapter(run, tmp_path):
    """On a GPU with vLLM: the merged folder is a plain model to vLLM, and the adapter loads as a LoRA request."""
    pytest.importorskip("vllm")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from budgetreason.plan.architectures import tiny_model_dir
    from budgetreason.share.export import export_merged
    from budgetreason.share.serving import max_lora_rank

    export_merged(run, tmp_path / "merged")
    greedy = SamplingParams(temperature=0.0, max_tokens=16)
    prompt = held_out_texts()[0].split("<think>")[0]
    merged = LLM(model=str(tmp_path / "merged"), gpu_memory_utilization=0.2, enforce_eager=True)
    text_merged = merged.generate([prompt], greedy)[0].outputs[0].text
    del merged
    lora = LLM(model=str(tiny_model_dir()), enable_lora=True, max_lora_rank=max_lora_rank(16),
               gpu_memory_utilization=0.2, enforce_eager=True)
    text_lora = lora.generate([prompt], greedy, lora_request=LoRARequest("run", 1, str(run / "adapter")))[0].outputs[0].text
    assert text_merged == text_lora  # bf16 merge vs base + adapter: the same greedy answer on this short prompt
