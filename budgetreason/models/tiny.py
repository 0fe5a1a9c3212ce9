"""The built-in ``tiny-arith`` model: a few-MB Qwen2 that knows the papers' answer format.

RL needs a warm start (both papers: GRPO sharpens what a model can already sometimes do).
This module builds one from nothing, reproducibly, on a CPU in a few minutes:

1. a byte-level BPE tokenizer trained on the task's text (digits split one by one) with a
   Qwen-style chat template and ``<think>``/``</think>`` as plain added tokens;
2. a 4-layer Qwen2 model (hidden 128) with random weights;
3. a supervised warm-up on seeded ``arith`` problems whose worked solutions use the
   ``<think> … </think> \\boxed{}`` format, where a share of the chains contain a careless
   slip and a share skip the reasoning. The model therefore solves most problems but not
   all, and reasons most of the time but not always: room for accuracy and format rewards
   to improve, which the demo and the tests check.

Re-run with ``python -m budgetreason.models.tiny --output budgetreason/assets/tiny-arith``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from budgetreason.data.arith import ArithProblem, make_problems

#: Warm-up data mix: chains with a careless slip, and answers given without reasoning.
SLIP_RATE = 0.30
NO_THINK_RATE = 0.15
ARCH = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024)
WARMUP = dict(steps=1500, batch_size=64, lr=3e-3, seed=0, train_problems=4000)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK = ["<think>", "</think>"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def system_prompt() -> str:
    from budgetreason.data.datasets import SYSTEM_PROMPT

    return SYSTEM_PROMPT


def build_tokenizer(corpus: list[str], vocab_size: int = 512):
    """Byte-level BPE over the task's text; digits are always single tokens (so numbers are spelled out)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(corpus, trainer=trainer)
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK])
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE, model_max_length=ARCH["max_position_embeddings"])


def warmup_example(p: ArithProblem, rng: random.Random) -> str:
    """One warm-up completion: usually a clean chain, sometimes a slip, sometimes no reasoning."""
    think = rng.random() >= NO_THINK_RATE
    slip = rng.choice([1, 2]) if rng.random() < SLIP_RATE else 0
    if not think:
        # A guess without reasoning is right only when nothing slipped and the sum is easy.
        slip = slip or (0 if (p.a % 10 + p.b % 10) < 10 else 2)
    return p.worked_solution(slip=slip, think=think)


def build(output: Path, steps: int = WARMUP["steps"], seed: int = WARMUP["seed"], log=print) -> dict:
    """Build tokenizer and model, run the warm-up, save everything to `output`. Returns a summary."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    rng = random.Random(seed)
    sys_prompt = system_prompt()
    problems = make_problems(WARMUP["train_problems"], seed=seed)
    corpus = [sys_prompt] * 50 + [p.problem + "\n" + p.worked_solution() for p in problems]
    tok = build_tokenizer(corpus)
    cfg = Qwen2Config(vocab_size=len(tok), tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=None, **ARCH)
    model = Qwen2ForCausalLM(cfg)

    def encode(p: ArithProblem) -> tuple[list[int], list[int]]:
        msgs = [{"role": "system", "content": sys_prompt}, {"role": "user", "content": p.problem}]
        prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        comp = warmup_example(p, rng) + tok.eos_token
        return tok(prompt, add_special_tokens=False)["input_ids"], tok(comp, add_special_tokens=False)["input_ids"]

    opt = torch.optim.AdamW(model.parameters(), lr=WARMUP["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=WARMUP["lr"], total_steps=steps, pct_start=0.05)
    b, t0 = WARMUP["batch_size"], time.time()
    model.train()
    for step in range(steps):
        batch = [encode(problems[rng.randrange(len(problems))]) for _ in range(b)]
        width = max(len(x) + len(y) for x, y in batch)
        ids = torch.full((b, width), tok.pad_token_id)
        labels = torch.full((b, width), -100)
        mask = torch.zeros((b, width), dtype=torch.long)
        for i, (x, y) in enumerate(batch):  # loss on the completion only, as SFT on chat data does
            ids[i, : len(x) + len(y)] = torch.tensor(x + y)
            labels[i, len(x): len(x) + len(y)] = torch.tensor(y)
            mask[i, : len(x) + len(y)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 200 == 0 or step == steps - 1:
            log(f"warm-up step {step}/{steps}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    model.eval()
    output.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(output, safe_serialization=True)
    tok.save_pretrained(output)
    summary = {"params": model.num_parameters(), "vocab": len(tok), "warmup_steps": steps, "seed": seed,
               "slip_rate": SLIP_RATE, "no_think_rate": NO_THINK_RATE, "seconds": round(time.time() - t0, 1)}
    (output / "build.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description="Build the built-in tiny-arith model.")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "assets" / "tiny-arith")
    ap.add_argument("--steps", type=int, default=WARMUP["steps"])
    ap.add_argument("--seed", type=int, default=WARMUP["seed"])
    args = ap.parse_args()
    print(json.dumps(build(args.output, args.steps, args.seed), indent=2))


if __name__ == "__main__":
    main()
