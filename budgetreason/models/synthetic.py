"""Random-weight models at real sizes, with a tokenizer and data to match, for measuring without downloads.

``budgetreason calibrate`` and ``bench`` build a catalog architecture from its config with
random weights, a byte-level tokenizer with exactly its vocabulary size, and prompts of
random digits of the right length, so generation and training run at the real shapes on a GPU
that cannot reach the hub.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from budgetreason.plan.architectures import ModelArch

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
    """Byte-level BPE whose vocabulary is exactly `vocab_size` tokens, digits one token each.

    transformers 5 rebuilds the tokenizer of some model types (qwen2 among them) from the
    vocabulary and merges in tokenizer.json with its own pre-tokenizer, so the tokenizer must
    survive that: byte-level symbols, merges learnt on the chat template and the system prompt
    (so they cost few tokens), single digits (every pre-tokenizer splits digits into one token
    each: a prompt of N digits is N tokens), and unreachable filler entries up to the size.
    """
    import json as _json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from budgetreason.data.datasets import SYSTEM_PROMPT

    base = len(SPECIAL) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < base:
        raise ValueError(f"a synthetic byte-level tokenizer needs at least {base} tokens, got {vocab_size}")
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    learn = Tokenizer(models.BPE())
    learn.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, base + 256), special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    learn.train_from_iterator([SYSTEM_PROMPT, "system user assistant", CHAT_TEMPLATE] * 8, trainer)
    model = _json.loads(learn.to_str())["model"]
    vocab = dict(model["vocab"])
    for i in range(vocab_size - len(vocab)):
        vocab[f"<|filler_{i}|>"] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tk = Tokenizer(models.BPE(vocab, merges))
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tk.add_special_tokens([AddedToken(x, special=True) for x in SPECIAL])
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


def write_prompts(path: str | Path, n: int, prompt_tokens: int, vocab_size: int | None = None, seed: int = 0) -> Path:
    """A jsonl dataset of `n` problems of `prompt_tokens` random digits each (one token per digit), with answers.

    The chat template and system prompt add their own tokens (``prompt_overhead``).
    `vocab_size` is unused (kept for callers of the word-level version).
    """
    rng = random.Random(seed)
    rows = [{"problem": "".join(str(rng.randrange(10)) for _ in range(prompt_tokens)),
             "answer": str(rng.randint(0, 999))} for _ in range(n)]
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prompt_overhead(tokenizer) -> int:
    """Tokens the chat template and budgetreason's system prompt add around a problem."""
    from budgetreason.data.datasets import SYSTEM_PROMPT, _prompt_tokens

    return _prompt_tokens(tokenizer, [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ""}])


def random_reward(completions, **kwargs) -> list[float]:
    """A reward with spread, so GRPO's advantages are not all zero while measuring."""
    return [random.random() for _ in completions]
