"""Validation during training: pass@1 on a benchmark every N steps, in the training process.

The micro-budget paper tracks MATH500 pass@1 while training (its Figure 3); with
``--val-every N|auto --val-benchmark math500`` budgetreason does the same and writes
``val/accuracy`` with its standard error ``val/accuracy_se`` (plus ``val/mean_length``) into
that step's line of metrics.jsonl. The default is the whole benchmark (100 MATH500 problems with
one sample is about ±5 points of noise); ``--val-size N`` takes a fixed subset drawn with the
run's seed (at least 250 with ``--val-samples 2`` keeps the noise near the full set's), and
``auto`` validates as often as keeps it near planner.VAL_SHARE of the time. Generation
uses what the run already has: transformers on the hf back-end, TRL's colocated vLLM engine on
the trl back-end, Unsloth's ``fast_generate`` with the current adapter on the unsloth back-end.
"""

from __future__ import annotations

import tempfile

from transformers import TrainerCallback

from budgetreason.evaluate.generation import SamplingSettings

VAL_TEMPERATURE, VAL_TOP_P = 0.6, 0.95


class _VLLMEngine:
    """Sampling on TRL's colocated vLLM engine (``trainer.vllm_generation``), the same Sample records as elsewhere.

    Under vLLM sleep mode (``vllm_standby``) TRL keeps the engine asleep between its generations and
    ``sync_weights`` wakes only the weights; as TRL 1.15's ``VLLMGeneration.generate`` does, the KV cache
    is woken before sampling and the engine put back to sleep (level 2) after, and TRL is told its
    weights are gone so its next generation pushes them again.
    """

    def __init__(self, vllm_generation, tokenizer):
        self.vg, self.llm, self.tok = vllm_generation, vllm_generation.llm, tokenizer

    def generate(self, prompts, s: SamplingSettings):
        from budgetreason.evaluate.generation import render_prompts, vllm_params, vllm_samples

        sleeps = bool(getattr(self.vg, "enable_sleep_mode", False))
        if sleeps:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            outs = self.llm.generate(render_prompts(self.tok, prompts), vllm_params(s, None), use_tqdm=False)
        finally:
            if sleeps:
                self.llm.sleep(level=2)
                self.vg._llm_weights_sleeping = True  # TRL's own flag: re-sync the weights before its next generate
        return vllm_samples(outs)


class _UnslothEngine:
    """Unsloth's fast_generate with the adapter as it is now (saved and loaded as a LoRA request)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer

    def generate(self, prompts, s: SamplingSettings):
        from budgetreason.evaluate.generation import render_prompts, vllm_params, vllm_samples

        with tempfile.TemporaryDirectory() as tmp:
            self.model.save_lora(tmp)
            outs = self.model.fast_generate(render_prompts(self.tok, prompts), sampling_params=vllm_params(s, None),
                                            lora_request=self.model.load_lora(tmp))
        return vllm_samples(outs)


class ValidationCallback(TrainerCallback):
    """Every `val_every` steps (and before the first), score the policy on the validation benchmark."""

    def __init__(self, run_state, cfg, tokenizer, backend: str, every: int | None = None):
        import random

        from budgetreason.evaluate.benchmarks import load_problems

        self.run, self.cfg, self.tok, self.backend = run_state, cfg, tokenizer, backend
        self.every = every or cfg.val_every
        problems = load_problems(cfg.val_benchmark, data=cfg.val_data, seed=cfg.seed)
        size = cfg.val_size_benchmark
        if size and size < len(problems):  # a fixed subset, the same at every validation and on resume
            keep = sorted(random.Random(cfg.seed).sample(range(len(problems)), size))
            problems = [problems[i] for i in keep]
        self.problems = problems
        from budgetreason.evaluate.generation import template_opens_think

        # As the training reward: under a template that opens <think>, unfinished reasoning scores 0.
        self.prompt_opens_think = template_opens_think(tokenizer, problems[0].prompt)
        self.trainer = None  # set by train() after the trainer exists (for its vLLM engine)
        self.settings = SamplingSettings(n=cfg.val_samples, temperature=VAL_TEMPERATURE, top_p=VAL_TOP_P,
                                         max_tokens=cfg.max_completion_length, seed=cfg.seed)

    def _engine(self, model):
        if self.backend == "unsloth":
            return _UnslothEngine(self.trainer.model if self.trainer else model, self.tok)
        if self.backend == "trl" and self.trainer is not None:
            vg = self.trainer.vllm_generation
            if getattr(vg, "mode", "colocate") != "colocate":  # TRL's server mode has no engine in this process
                from budgetreason.errors import BudgetError
                from budgetreason.train.config import SERVER_MODE_VALIDATION

                raise BudgetError(SERVER_MODE_VALIDATION)
            vg.sync_weights()  # wakes the weights under sleep mode
            return _VLLMEngine(vg, self.tok)
        from budgetreason.evaluate.generation import HFGenerator

        return HFGenerator(model, self.tok, batch_prompts=16, exact_entropy=False)

    def validate(self, model) -> dict:
        from budgetreason.evaluate.evaluation import score, summarize

        samples = self._engine(model).generate([p.prompt for p in self.problems], self.settings)
        records = score(self.problems, samples, self.cfg.val_benchmark, self.prompt_opens_think)
        s = summarize(records)[self.cfg.val_benchmark]
        return {"val/accuracy": s["mean_accuracy"], "val/accuracy_se": round(standard_error(records), 4),
                "val/n_problems": s["n_problems"], "val/samples": self.cfg.val_samples,
                "val/mean_length": s["mean_length"], "val/truncated": s["truncated"]}

    def on_train_begin(self, args, state, control, model=None, **kw):
        if state.global_step == 0:
            initial = self.validate(model)
            self.run.pending.update({k.replace("val/", "val_initial/"): v for k, v in initial.items()})
            self.run.folder.event("validation", f"before training: {initial['val/accuracy']:.3f}", step=0, **initial)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every == 0:
            result = self.validate(model)
            self.run.pending.update(result)
        return control


def standard_error(records: list[dict]) -> float:
    """Standard error of the mean accuracy over problems (samples of one problem are averaged first)."""
    import math

    by_problem: dict = {}
    for r in records:
        by_problem.setdefault(r["problem_id"], []).append(float(r["correct"]))
    means = [sum(v) / len(v) for v in by_problem.values()]
    n = len(means)
    if n < 2:
        return 0.0
    mu = sum(means) / n
    return math.sqrt(sum((m - mu) ** 2 for m in means) / (n - 1) / n)
