"""The planner: the papers' runs fit, impossible ones are reduced or refused, memory is monotone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budgetreason.errors import BudgetError
from budgetreason.plan import memory
from budgetreason.plan.architectures import catalog as model_catalog
from budgetreason.plan.architectures import resolve_model
from budgetreason.plan.hardware import catalog as gpu_catalog
from budgetreason.plan.hardware import resolve_gpu
from budgetreason.plan.planner import plan
from budgetreason.plan.shape import Shape

MICRO_BUDGET_MODELS = ["Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-Math-1.5B",
                       "Qwen/Qwen3-0.6B", "agentica-org/DeepScaleR-1.5B-Preview"]
TERMS = ["cuda_context", "base_weights", "lora_params", "lora_grads", "optimizer_states", "activations", "logits",
         "vllm_weights", "kv_cache", "cuda_graphs", "fragmentation", "total", "available"]
CONFIG_KEYS = ["lora_rank", "lora_alpha", "num_generations", "per_device_train_batch_size",
               "gradient_accumulation_steps", "max_prompt_length", "max_completion_length", "load_in_4bit",
               "vllm_gpu_memory_utilization"]


@pytest.mark.parametrize("model_id", MICRO_BUDGET_MODELS)
@pytest.mark.parametrize("backend", ["unsloth", "trl"])
def test_micro_budget_runs_fit_an_a40(model_id, backend):
    """The paper ran each of its five models at k=8, 3584 tokens, rank 256 on one A40."""
    p = plan("a40", model_id, 24, backend=backend, lora_rank=256, num_generations=8, max_completion_length=3584)
    assert p.fits
    c = p.config
    assert (c["lora_rank"], c["num_generations"], c["max_completion_length"]) == (256, 8, 3584)
    assert not c["load_in_4bit"]
    assert p.memory.total <= p.usable_bytes
    assert 100 <= p.est_steps <= 2000  # the paper made ~300 updates in 24 h


def test_default_targets_are_the_papers_recipe():
    p = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24)
    c = p.config
    assert c["lora_rank"] == 256 and c["num_generations"] == 8
    assert (c["max_prompt_length"], c["max_completion_length"]) == (512, 3584)
    assert len(c["lora_target_modules"]) == 7 and c["lora_alpha"] == 4 * 256
    assert p.reductions == []
    gen = c["per_device_train_batch_size"] * c["gradient_accumulation_steps"]
    assert gen % c["num_generations"] == 0


def test_json_carries_every_field():
    d = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24).to_dict()
    for key in ("fits", "gpu", "model", "config", "memory_gib", "base_params", "lora_trainable_params",
                "est_step_seconds", "est_steps", "est_cost_usd", "reductions", "warnings"):
        assert key in d
    assert set(CONFIG_KEYS) <= set(d["config"])
    assert set(TERMS) <= set(d["memory_gib"])
    terms = sum(v for k, v in d["memory_gib"].items() if k not in ("total", "available", "usable"))
    assert d["memory_gib"]["total"] <= terms + 0.01  # the peak never exceeds the sum of its parts
    assert d["lora_trainable_params"] == 295_436_288
    assert d["est_cost_usd"] == pytest.approx(24 * gpu_catalog()["a40"].price_usd_hr)


def test_llama_8b_on_t4_goes_4bit_and_says_what_it_reduced():
    p = plan("t4", "meta-llama/Llama-3.1-8B-Instruct", 24)
    assert p.fits
    assert p.config["load_in_4bit"]
    assert p.config["dtype"] == "float16"
    assert any("4-bit" in r for r in p.reductions)
    assert any("bfloat16" in w for w in p.warnings)


def test_llama_8b_on_t4_in_16bit_is_refused_naming_the_term():
    with pytest.raises(BudgetError) as e:
        plan("t4", "meta-llama/Llama-3.1-8B-Instruct", 24, load_in_4bit=False)
    msg = str(e.value)
    assert "--load-in-4bit False" in msg and "base_weights" in msg and "\n" not in msg


def test_context_too_short_reduces_completion():
    p = plan("a40", "Qwen/Qwen2.5-Math-1.5B", 24, max_prompt_length=1024)
    assert p.config["max_prompt_length"] + p.config["max_completion_length"] <= 4096
    assert any("context of 4096" in r for r in p.reductions)


def test_context_too_short_with_fixed_completion_is_refused():
    with pytest.raises(BudgetError, match="exceeds Qwen/Qwen2.5-Math-1.5B's context of 4096"):
        plan("a40", "Qwen/Qwen2.5-Math-1.5B", 24, max_prompt_length=1024, max_completion_length=3584)


def test_math_model_at_papers_lengths_fits_exactly():
    p = plan("a40", "Qwen/Qwen2.5-Math-1.5B", 24)
    assert p.config["max_completion_length"] == 3584 and p.reductions == []


@pytest.mark.parametrize("kwargs,match", [
    ({"hours": 0}, "--hours"), ({"hours": -3}, "--hours"), ({"num_generations": 1}, "--k must be at least 2"),
    ({"lora_rank": 0}, "--rank must be at least 1"), ({"vllm_gpu_memory_utilization": 1.5}, "--vllm-share"),
    ({"per_device_train_batch_size": 3, "gradient_accumulation_steps": 1}, "multiple of"),
])
def test_bad_input_is_one_line(kwargs, match):
    args = {"hours": 24, **kwargs}
    hours = args.pop("hours")
    with pytest.raises(BudgetError, match=match) as e:
        plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", hours, **args)
    assert "\n" not in str(e.value)


def test_fixed_rank_too_big_names_the_term():
    with pytest.raises(BudgetError) as e:
        plan("t4", "Qwen/Qwen2.5-7B-Instruct", 24, lora_rank=1024, max_completion_length=3584)
    assert "--rank 1024" in str(e.value) and "GiB" in str(e.value)


def test_nothing_fits_says_what_would():
    p = plan(resolve_gpu(None, vram_gb=6), "Qwen/Qwen3-8B", 24)
    assert not p.fits
    assert any("bigger GPU" in s for s in p.suggestions)
    assert any("smaller model" in s for s in p.suggestions)


def test_user_fixed_values_are_kept():
    p = plan("l4", "Qwen/Qwen2.5-1.5B-Instruct", 12, lora_rank=64, num_generations=4, per_device_train_batch_size=2,
             lora_target_modules="attn")
    c = p.config
    assert (c["lora_rank"], c["num_generations"], c["per_device_train_batch_size"]) == (64, 4, 2)
    assert c["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert c["lora_alpha"] == 256


def test_fixed_vllm_share_sets_concurrency():
    p = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24, vllm_gpu_memory_utilization=0.2)
    d = p.to_dict()
    assert d["generation_concurrency"] <= d["generation_batch_size"]
    assert p.shape.concurrency * resolve_model("Qwen/Qwen2.5-1.5B-Instruct").kv_bytes(4096) <= 0.2 * 46068 * 2**20


def test_more_hours_more_steps():
    a = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 6)
    b = plan("a40", "Qwen/Qwen2.5-1.5B-Instruct", 24)
    assert b.est_steps > a.est_steps and b.est_cost_usd > a.est_cost_usd


def test_cpu_plan_for_the_tiny_model():
    p = plan("cpu", "tiny-arith", 0.1, max_completion_length=64, max_prompt_length=128)
    assert p.fits and p.config["backend"] == "hf" and p.config["vllm_gpu_memory_utilization"] == 0
    assert p.config["dtype"] == "float32"


def test_cpu_refuses_vllm_backends():
    with pytest.raises(BudgetError, match="needs a CUDA GPU"):
        plan("cpu", "tiny-arith", 1, backend="unsloth")


def test_every_catalog_pair_plans_without_error():
    for g in gpu_catalog():
        for m in ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen3-4B", "meta-llama/Llama-3.1-8B-Instruct"):
            p = plan(g, m, 24)
            if p.fits:
                assert p.memory.total <= p.usable_bytes


# ---- properties --------------------------------------------------------------------------------
ARCHS = [model_catalog()[m] for m in ("Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                                       "Qwen/Qwen3-4B", "google/gemma-3-1b-it")]
shapes = st.builds(
    Shape,
    lora_rank=st.sampled_from([4, 8, 16, 32, 64, 128, 256]),
    num_generations=st.sampled_from([2, 4, 6, 8, 16]),
    per_device_train_batch_size=st.integers(1, 16),
    gradient_accumulation_steps=st.integers(1, 16),
    max_prompt_length=st.sampled_from([128, 256, 512]),
    max_completion_length=st.integers(64, 4096),
    load_in_4bit=st.booleans(),
    vllm_standby=st.booleans(),
    backend=st.sampled_from(["unsloth", "trl", "hf"]),
    lora_dropout=st.sampled_from([0.0, 0.05]),
)


@settings(max_examples=300, deadline=None)
@given(shape=shapes, arch=st.sampled_from(ARCHS), knob=st.sampled_from(
    ["lora_rank", "num_generations", "per_device_train_batch_size", "max_completion_length"]),
    factor=st.sampled_from([2, 3]))
def test_total_memory_never_decreases_when_a_knob_grows(shape, arch, knob, factor):
    gpu = gpu_catalog()["a40"]
    bigger = shape.replace(**{knob: getattr(shape, knob) * factor})
    assert memory.estimate(arch, gpu, bigger).total >= memory.estimate(arch, gpu, shape).total


@settings(max_examples=200, deadline=None)
@given(shape=shapes, arch=st.sampled_from(ARCHS))
def test_each_term_is_non_negative_and_share_holds_vllm(shape, arch):
    gpu = gpu_catalog()["h100"]
    est = memory.estimate(arch, gpu, shape)
    assert all(v >= 0 for v in est.terms.values())
    if shape.uses_vllm:
        assert 0 < est.vllm_gpu_memory_utilization <= 0.95


def test_recipe_settings_change_the_estimates_but_are_never_reduced():
    kw = dict(lora_rank=32, num_generations=6, per_device_train_batch_size=6, gradient_accumulation_steps=4)
    tina = plan("l40s", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 16, lora_dropout=0.05, beta=0.04, **kw)
    plain = plan("l40s", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 16, **kw)
    assert tina.memory.terms["activations"] > plain.memory.terms["activations"]  # dropout copies adapter inputs
    assert tina.step.train_s > plain.step.train_s  # the KL term's reference forward pass
    assert tina.shape.beta == 0.04 and tina.shape.lora_dropout == 0.05
