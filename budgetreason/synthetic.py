"""Random-weight models at real sizes, with a tokenizer and data to match, for measuring without downloads.

``budgetreason calibrate`` and ``bench`` build a catalog architecture from its config with
random weights, a word-level tokenizer of synthetic tokens with exactly its vocabulary size,
and prompts of the right length, so generation and training run at the real shapes on a GPU
that cannot reach the hub.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from budgetreason.models import ModelArch

CHAT_TEMPLATE = ("{%- for m in messages %}{{ '<|im_start|>' + m['role'] + ' ' + m['content'] + ' <|im_end|> ' }}"
                 "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant ' }}{%- endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]


def hf_config(arch: ModelArch, dtype: str = "bfloat16") -> dict:
    """A config.json dict for the architecture (transformers model_type by family)."""
    model_type = {"qwen2": "qwen2", "qwen3": "qwen3", "llama": "llama", "gemma3": "gemma3_text"}[arch.family]
    arch_name = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM",
                 "gemma3": "Gemma3ForCausalLM"}[arch.family]
    cfg = {"model_type": model_type, "architectures": [arch_name], "vocab_size": arch.vocab_size,
           "hidden_size": arch.hidden_size, "intermediate_size": arch.intermediate_size,
           "num_hidden_layers": arch.num_layers, "num_attention_heads": arch.num_heads,
           "num_key_value_heads": arch.num_kv_heads, "head_dim": arch.head_dim,
           "max_position_embeddings": arch.max_context, "tie_word_embeddings": arch.tie_word_embeddings,
           "torch_dtype": dtype, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "rms_norm_eps": 1e-6}
    if arch.family == "qwen2":
        cfg["use_sliding_window"] = False
    return cfg


def build_tokenizer(vocab_size: int):
    """Word-level tokenizer whose vocabulary is exactly `vocab_size` tokens: specials, then t0, t1, …"""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = SPECIAL + [f"t{i}" for i in range(vocab_size - len(SPECIAL))]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens([AddedToken(s, special=True) for s in SPECIAL])
    from tokenizers import decoders

    tk.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   unk_token="<unk>", chat_template=CHAT_TEMPLATE)


def save_random_model(arch: ModelArch, folder: str | Path, dtype: str = "bfloat16", seed: int = 0) -> Path:
    """Write config, random weights and the synthetic tokenizer to `folder` (a model folder any loader reads)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_config(arch, dtype)
    (folder / "config.json").write_text(json.dumps(cfg))
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(arch.vocab_size).save_pretrained(folder)
    return folder


def write_prompts(path: str | Path, n: int, prompt_tokens: int, vocab_size: int, seed: int = 0) -> Path:
    """A jsonl dataset of `n` prompts of about `prompt_tokens` synthetic tokens each, with answers."""
    rng = random.Random(seed)
    rows = [{"problem": " ".join(f"t{rng.randrange(vocab_size - len(SPECIAL))}" for _ in range(prompt_tokens)),
             "answer": str(rng.randint(0, 999))} for _ in range(n)]
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def random_reward(completions, **kwargs) -> list[float]:
    """A reward with spread, so GRPO's advantages are not all zero while measuring."""
    return [random.random() for _ in completions]
