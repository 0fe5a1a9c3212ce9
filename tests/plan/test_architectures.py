"""Model catalog: exact parameter counts against transformers and PEFT on the meta device."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config, Qwen3Config

from budgetreason.errors import BudgetError
from budgetreason.plan.architectures import ALL_LINEAR, catalog, parse_targets, resolve_model

PAPER_MODELS = ["Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-Math-1.5B",
                "Qwen/Qwen3-0.6B", "agentica-org/DeepScaleR-1.5B-Preview", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
MORE_MODELS = ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-1.7B",
               "Qwen/Qwen3-4B", "Qwen/Qwen3-8B", "meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
               "google/gemma-3-1b-it"]
CONFIG_CLASSES = {"qwen2": Qwen2Config, "qwen3": Qwen3Config, "llama": LlamaConfig, "gemma3": Gemma3TextConfig}


def meta_model(arch):
    """The architecture as a transformers model on the meta device: shapes, no memory, no download."""
    cfg = CONFIG_CLASSES[arch.family](
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads, num_key_value_heads=arch.num_kv_heads,
        head_dim=arch.head_dim, tie_word_embeddings=arch.tie_word_embeddings, max_position_embeddings=arch.max_context)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def test_catalog_has_the_papers_models_and_the_others():
    ids = set(catalog())
    assert set(PAPER_MODELS) <= ids
    assert set(MORE_MODELS) <= ids


@pytest.mark.parametrize("model_id", PAPER_MODELS + MORE_MODELS)
def test_param_count_is_exact(model_id):
    arch = catalog()[model_id]
    assert arch.param_count() == meta_model(arch).num_parameters()


@pytest.mark.parametrize("model_id,rank,targets", [
    ("Qwen/Qwen2.5-1.5B-Instruct", 8, "all"), ("Qwen/Qwen2.5-1.5B-Instruct", 256, "all"),
    ("meta-llama/Llama-3.2-1B-Instruct", 64, "attn"), ("Qwen/Qwen3-0.6B", 32, "q_proj,v_proj"),
    ("google/gemma-3-1b-it", 16, "mlp"), ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 32, "all"),
])
def test_lora_params_equal_peft(model_id, rank, targets):
    arch = catalog()[model_id]
    t = parse_targets(targets)
    peft_model = get_peft_model(meta_model(arch), LoraConfig(r=rank, lora_alpha=4 * rank, target_modules=list(t)))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert arch.lora_params(rank, t) == trainable


def test_reference_lora_counts_for_qwen_1_5b():
    """The numbers REFERENCE.md quotes from PEFT for Qwen2.5-1.5B, all seven projections."""
    arch = catalog()["Qwen/Qwen2.5-1.5B-Instruct"]
    assert [arch.lora_params(r) for r in (8, 64, 256)] == [9_232_384, 73_859_072, 295_436_288]


def test_kv_bytes_per_token_qwen_1_5b_is_28_kib():
    assert catalog()["Qwen/Qwen2.5-1.5B-Instruct"].kv_bytes_per_token() == 28 * 1024


def test_gemma_sliding_window_caps_local_layers():
    g = catalog()["google/gemma-3-1b-it"]
    full = g.kv_bytes_per_token() * 4096
    assert g.kv_bytes(4096) < full / 3  # 22 of 26 layers keep only 512 tokens
    assert g.kv_bytes(256) == g.kv_bytes_per_token() * 256


def test_short_names_resolve():
    assert resolve_model("qwen2.5-1.5b-instruct").id == "Qwen/Qwen2.5-1.5B-Instruct"


def test_local_folder_config_is_read(tmp_path):
    cfg = {"model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": True,
           "max_position_embeddings": 2048}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = resolve_model(str(tmp_path))
    assert (arch.num_layers, arch.head_dim, arch.max_context) == (2, 16, 2048)
    assert arch.param_count() == meta_model(arch).num_parameters()


def test_unknown_hub_model_offline_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BudgetError) as e:
        resolve_model("someone/not-a-cached-model")
    msg = str(e.value)
    assert "\n" not in msg and "offline" in msg and "budgetreason models" in msg


def test_bad_targets_are_refused():
    with pytest.raises(BudgetError, match="Unknown LoRA target"):
        parse_targets("q_proj,lm_head")
    assert parse_targets("attn") == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert parse_targets(None) == ALL_LINEAR


def _hub_cache(root, repo: str, files: dict[str, str]) -> None:
    """Files as huggingface_hub lays them out in its cache (refs/main -> snapshots/<commit>/)."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text("c0ffee")
    snapshot = repo_dir / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)


def test_weights_check_wants_the_weights_not_the_config_plan_fetched(monkeypatch, tmp_path):
    """`plan` with a hub id downloads config.json alone; offline, `train` must refuse that in one line."""
    from budgetreason import online
    from budgetreason.plan.architectures import require_weights_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    online.reset()
    repo = "someone/planned-only"
    _hub_cache(tmp_path, repo, {"config.json": "{}"})
    with pytest.raises(BudgetError) as e:
        require_weights_reachable(repo, cache_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "weights are not in the local cache" in msg and "HF_HUB_OFFLINE is set" in msg
    index = {"weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}
    _hub_cache(tmp_path, repo, {"model.safetensors.index.json": json.dumps(index), "model-00001-of-00002.safetensors": "x"})
    with pytest.raises(BudgetError, match="weights are not in the local cache"):
        require_weights_reachable(repo, cache_dir=tmp_path)  # one shard of two
    _hub_cache(tmp_path, repo, {"model-00002-of-00002.safetensors": "x"})
    assert require_weights_reachable(repo, cache_dir=tmp_path) is None
    _hub_cache(tmp_path, "someone/one-file", {"config.json": "{}", "model.safetensors": "x"})
    assert require_weights_reachable("someone/one-file", cache_dir=tmp_path) is None
    with pytest.raises(BudgetError, match="is not in the local cache"):
        require_weights_reachable("someone/never-seen", cache_dir=tmp_path)
    online.reset()
