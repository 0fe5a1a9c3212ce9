"""Sampling completions for evaluation and validation: vLLM on a GPU, transformers on the CPU.

Both back-ends return the same ``Sample`` records, so scores do not depend on where they were
made. Entropy: the transformers back-end computes the micro-budget paper's eq. 1 exactly, from
the full next-token distribution (a teacher-forced pass over each completion, the LM head
applied in chunks); vLLM returns only top-k log-probabilities, so its entropy is the top-k
approximation (a lower bound; see budgetreason.evaluate.metrics.topk_entropy) unless exact entropy is
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Top-k log-probabilities requested from vLLM for the entropy approximation.
VLLM_LOGPROBS = 20
#: Completion positions pushed through the LM head at once when computing exact entropy.
ENTROPY_CHUNK = 256


@dataclass
class SamplingSettings:
    n: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 3584
    seed: int = 0


@dataclass
class Sample:
    text: str
    tokens: int
    entropy: float | None
    finish_reason: str
    """'stop' (ended by EOS) or 'length' (cut at max_tokens)."""


def render_prompts(tokenizer, prompts: list[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]


def template_opens_think(tokenizer, prompt: list[dict]) -> bool:
    """Whether the chat template ends the generation prompt with ``<think>`` (the DeepSeek-R1 distills' does).

    Their completions start inside the reasoning, so one without ``</think>`` is unfinished and
    scores 0 (budgetreason.rewards.verify.answer_region's ``prompt_opens_think``), in training,
    validation and evaluation alike.
    """
    if not getattr(tokenizer, "chat_template", None):
        return False
    return render_prompts(tokenizer, [prompt])[0].rstrip().endswith("<think>")


def response_entropy(model, prompt_ids: list[int], completion_ids: list[int]) -> float:
    """Exact mean token entropy of `completion_ids` after `prompt_ids` under `model` (eq. 1, T = 1)."""
    import torch

    from budgetreason.evaluate.metrics import token_entropies

    if not completion_ids:
        return float("nan")
    ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False, logits_to_keep=1)
        hidden = out.hidden_states[-1][0]
        # Position t predicts token t+1: the distributions over the completion start at the prompt's last token.
        start = len(prompt_ids) - 1
        h = hidden[start:start + len(completion_ids)]
        head = model.get_output_embeddings()
        ents = [token_entropies(head(h[i:i + ENTROPY_CHUNK])) for i in range(0, h.shape[0], ENTROPY_CHUNK)]
    return float(torch.cat(ents).mean())


class HFGenerator:
    """transformers ``generate`` with sampling; exact entropy from a teacher-forced pass."""

    def __init__(self, model, tokenizer, batch_prompts: int = 8, exact_entropy: bool = True):
        self.model, self.tok = model, tokenizer
        self.batch_prompts = batch_prompts
        self.exact_entropy = exact_entropy

    def generate(self, prompts: list[list[dict]], s: SamplingSettings) -> list[list[Sample]]:
        import torch

        tok, model = self.tok, self.model
        texts = render_prompts(tok, prompts)
        old_side, tok.padding_side = tok.padding_side, "left"
        out: list[list[Sample]] = []
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(texts), self.batch_prompts):
                chunk = texts[start:start + self.batch_prompts]
                enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                torch.manual_seed(s.seed + start)
                # A completion cannot run past the model's context (vLLM's max_model_len does the same).
                context = getattr(model.config, "max_position_embeddings", None)
                room = s.max_tokens if context is None else max(1, min(s.max_tokens, context - enc["input_ids"].shape[1]))
                with torch.no_grad():
                    gen = model.generate(**enc, do_sample=s.temperature > 0, temperature=s.temperature or None,
                                         top_p=s.top_p, top_k=0, max_new_tokens=room,
                                         num_return_sequences=s.n, pad_token_id=tok.pad_token_id)
                width = enc["input_ids"].shape[1]
                for i in range(len(chunk)):
                    prompt_ids = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
                    samples = []
                    for j in range(s.n):
                        row = gen[i * s.n + j, width:].tolist()
                        ended = tok.eos_token_id in row
                        comp = row[: row.index(tok.eos_token_id)] if ended else [t for t in row if t != tok.pad_token_id]
                        ent = response_entropy(model, prompt_ids, comp) if self.exact_entropy else None
                        samples.append(Sample(text=tok.decode(comp, skip_special_tokens=True), tokens=len(comp),
                                              entropy=ent, finish_reason="stop" if ended else "length"))
                    out.append(samples)
        finally:
            tok.padding_side = old_side
            if was_training:
                model.train()
        return out


def vllm_params(s: SamplingSettings, logprobs: int | None = VLLM_LOGPROBS):
    from vllm import SamplingParams

    return SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
                          logprobs=logprobs)


def vllm_samples(outputs) -> list[list[Sample]]:
    """vLLM RequestOutputs (from LLM.generate or Unsloth's fast_generate) as Sample records; the entropy is
    the top-k estimate when log-probabilities were requested, else None."""
    from budgetreason.evaluate.metrics import topk_entropy

    result = []
    for o in outputs:
        samples = []
        for c in o.outputs:
            ents = [topk_entropy([lp.logprob for lp in step.values()]) for step in (c.logprobs or [])]
            samples.append(Sample(text=c.text, tokens=len(c.token_ids), entropy=sum(ents) / len(ents) if ents else None,
                                  finish_reason="length" if c.finish_reason == "length" else "stop"))
        result.append(samples)
    return result


class UnslothGenerator:
    """Unsloth's fast generation (its vLLM engine) with the adapter loaded as a LoRA request."""

    def __init__(self, model_path: str, adapter: str | None, max_seq_length: int, lora_rank: int = 256,
                 gpu_memory_utilization: float = 0.85, seed: int = 0):
        from unsloth import FastLanguageModel

        self.model, self.tok = FastLanguageModel.from_pretrained(
            model_name=model_path, max_seq_length=max_seq_length, load_in_4bit=False, load_in_16bit=True,
            fast_inference=True, max_lora_rank=lora_rank, gpu_memory_utilization=gpu_memory_utilization,
            random_state=seed)
        self.lora = self.model.load_lora(adapter) if adapter else None

    def generate(self, prompts: list[list[dict]], s: SamplingSettings) -> list[list[Sample]]:
        outs = self.model.fast_generate(render_prompts(self.tok, prompts), sampling_params=vllm_params(s),
                                        lora_request=self.lora)
        return vllm_samples(outs)


class VLLMGenerator:
    """vLLM offline engine; a LoRA adapter is applied per request (no merge)."""

    def __init__(self, model_path: str, adapter: str | None, max_model_len: int, lora_rank: int = 256,
                 gpu_memory_utilization: float = 0.85, seed: int = 0):
        from vllm import LLM

        kwargs = dict(model=model_path, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                      seed=seed, max_logprobs=VLLM_LOGPROBS)
        if adapter:
            kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
        self.llm = LLM(**kwargs)
        self.tok = self.llm.get_tokenizer()
        self.adapter = adapter

    def generate(self, prompts: list[list[dict]], s: SamplingSettings) -> list[list[Sample]]:
        lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.adapter)
        return vllm_samples(self.llm.generate(render_prompts(self.tok, prompts), vllm_params(s), lora_request=lora))
