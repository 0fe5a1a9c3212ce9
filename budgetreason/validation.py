"""Validation during training: pass@1 on a benchmark every N steps, in the training process.

The micro-budget paper tracks MATH500 pass@1 while training (its Figure 3); with
``--val-every N --val-benchmark math500 --val-size 100`` budgetreason does the same and writes
``val/accuracy`` (plus ``val/mean_length``) into that step's line of metrics.jsonl. Generation
uses what the run already has: transformers on the hf back-end, TRL's colocated vLLM engine on
the trl back-end, Unsloth's ``fast_generate`` with the current adapter on the unsloth back-end.
"""

from __future__ import annotations

import tempfile

from transformers import TrainerCallback

from budgetreason.generation import SamplingSettings

VAL_TEMPERATURE, VAL_TOP_P = 0.6, 0.95


class _VLLMEngine:
    """Sampling on an existing vLLM engine (TRL's colocated one), the same Sample records as elsewhere."""

    def __init__(self, llm, tokenizer):
        self.llm, self.tok = llm, tokenizer

    def generate(self, prompts, s: SamplingSettings):
        from budgetreason.generation import render_prompts, vllm_params, vllm_samples

        return vllm_samples(self.llm.generate(render_prompts(self.tok, prompts), vllm_params(s, None), use_tqdm=False))


class _UnslothEngine:
    """Unsloth's fast_generate with the adapter as it is now (saved and loaded as a LoRA request)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer

    def generate(self, prompts, s: SamplingSettings):
        from budgetreason.generation import render_prompts, vllm_params, vllm_samples

        with tempfile.TemporaryDirectory() as tmp:
            self.model.save_lora(tmp)
            outs = self.model.fast_generate(render_prompts(self.tok, prompts), sampling_params=vllm_params(s, None),
                                            lora_request=self.model.load_lora(tmp))
        return vllm_samples(outs)


class ValidationCallback(TrainerCallback):
    """Every `val_every` steps (and before the first), score the policy on the validation benchmark."""

    def __init__(self, run_state, cfg, tokenizer, backend: str):
        from budgetreason.benchmarks import load_problems

        self.run, self.cfg, self.tok, self.backend = run_state, cfg, tokenizer, backend
        self.problems = load_problems(cfg.val_benchmark, data=cfg.val_data, seed=cfg.seed,
                                      limit=cfg.val_size_benchmark)
        self.trainer = None  # set by train() after the trainer exists (for its vLLM engine)
        self.settings = SamplingSettings(n=cfg.val_samples, temperature=VAL_TEMPERATURE, top_p=VAL_TOP_P,
                                         max_tokens=cfg.max_completion_length, seed=cfg.seed)

    def _engine(self, model):
        if self.backend == "unsloth":
            return _UnslothEngine(self.trainer.model if self.trainer else model, self.tok)
        if self.backend == "trl" and self.trainer is not None:
            vg = self.trainer.vllm_generation
            vg.sync_weights()
            return _VLLMEngine(vg.llm, self.tok)
        from budgetreason.generation import HFGenerator

        return HFGenerator(model, self.tok, batch_prompts=16, exact_entropy=False)

    def validate(self, model) -> dict:
        from budgetreason.evaluation import score, summarize

        samples = self._engine(model).generate([p.prompt for p in self.problems], self.settings)
        s = summarize(score(self.problems, samples, self.cfg.val_benchmark))[self.cfg.val_benchmark]
        return {"val/accuracy": s["mean_accuracy"], "val/mean_length": s["mean_length"],
                "val/truncated": s["truncated"]}

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:
            initial = self.validate(model)
            self.run.pending.update({k.replace("val/", "val_initial/"): v for k, v in initial.items()})
            self.run.folder.event("validation", f"before training: {initial['val/accuracy']:.3f}", step=0, **initial)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.cfg.val_every == 0:
            result = self.validate(model)
            self.run.pending.update(result)
        return control
