"""The several-GPU layout: which GPUs serve vLLM, which train, the ZeRO stage, and memory per role."""

from __future__ import annotations

import json

import pytest

from budgetreason.errors import BudgetError
from budgetreason.plan import memory
from budgetreason.plan.architectures import resolve_model
from budgetreason.plan.hardware import catalog as gpus
from budgetreason.plan.layout import layout_for_config, plan_layout, server_memory, trainer_memory
from budgetreason.plan.shape import Shape
from tests.conftest import run_cli

TINA = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
LLAMA8B = "meta-llama/Llama-3.1-8B-Instruct"


def _tina_layout():
    from budgetreason.train.config import RunConfig
    from budgetreason.train.recipes import load_recipe

    return layout_for_config(2, RunConfig.from_dict(load_recipe("tina-open-rs2")))


def test_tina_recipe_on_two_l40s_is_one_server_one_trainer_and_fits():
    lay = _tina_layout()
    assert lay.fits and lay.gpu.key == "l40s"
    assert (lay.server_gpus, lay.trainer_gpus, lay.zero_stage) == (1, 1, 0)
    c = lay.config
    assert (c["lora_rank"], c["lora_alpha"], c["num_generations"], c["max_completion_length"]) == (32, 128, 6, 3584)
    assert lay.completions_per_step % 6 == 0 and c["backend"] == "trl" and not c["load_in_4bit"]
    assert lay.server.fits and lay.trainer.fits
    assert "one training process" in " ".join(lay.reasons)


def test_8b_on_four_a40_plans_a_zero_stage_and_says_why():
    lay = plan_layout(4, "a40", LLAMA8B, 24)
    assert lay.fits and lay.zero_stage in (2, 3)
    assert lay.server_gpus + lay.trainer_gpus == 4 and lay.trainer_gpus >= 2
    why = " ".join(lay.reasons)
    assert f"ZeRO-{lay.zero_stage}" in why and "DDP" in why and "micro-batch" in why
    # The stage is chosen because DDP holds the whole adapter state per GPU and fits a smaller micro-batch.
    ddp = plan_layout(4, "a40", LLAMA8B, 24, per_device_train_batch_size=lay.shape.per_device_train_batch_size)
    assert ddp.zero_stage != 0 or not ddp.trainer.fits


def test_server_terms_are_weight_shard_plus_kv_for_the_sequences_it_holds():
    arch, gpu = resolve_model(LLAMA8B), gpus()["a40"]
    s = Shape(num_generations=8, per_device_train_batch_size=128, gradient_accumulation_steps=1, backend="trl")
    usable = int(gpu.vram_mib * 1024**2 * 0.9)
    for tp in (1, 2):
        role, conc = server_memory(arch, gpu, s, tp, usable)
        assert role.terms["vllm_weights"] == arch.param_count() * 2 // tp
        assert role.terms["kv_cache"] == conc * (arch.kv_bytes(4096, 2) // tp)
        assert role.terms["cuda_context"] == memory.CUDA_CONTEXT_BYTES
        assert role.total == sum(role.terms.values()) <= usable
        # one more sequence would not fit beside the rest
        assert conc == 128 or role.total + arch.kv_bytes(4096, 2) // tp > usable
    one, c1 = server_memory(arch, gpu, s, 1, usable)
    two, c2 = server_memory(arch, gpu, s, 2, usable)
    assert c2 > 2 * c1  # halving the weights per GPU frees KV room on both cards


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_trainer_terms_by_zero_stage(stage):
    arch = resolve_model(LLAMA8B)
    s = Shape(lora_rank=256, per_device_train_batch_size=2, gradient_accumulation_steps=16, backend="trl")
    usable = 40 * 2**30
    t = trainer_memory(arch, s, 3, stage, usable).terms
    w, lora = arch.param_count() * 2, arch.lora_params(256, s.lora_target_modules) * 4
    opt = arch.lora_params(256, s.lora_target_modules) * 8
    assert t["base_weights"] == (w // 3 if stage == 3 else w)
    assert t["optimizer_states"] == (opt // 3 if stage else opt)
    assert t["lora_grads"] == (lora // 3 if stage >= 2 else lora)
    assert t["ddp_buckets"] == (lora if stage == 0 else 0)
    assert t["lora_params"] == (lora // 3 if stage == 3 else lora)
    assert (t["zero3_gathered"] > 0) == (stage == 3)
    assert t["activations"] == memory.activation_bytes(arch, s) and t["logits"] == memory.logits_bytes(arch, s)


def test_zero3_peak_is_the_weight_sync_gather_when_it_is_larger():
    """TRL gathers the whole PEFT model to merge the adapter before streaming it to the server."""
    arch = resolve_model(LLAMA8B)
    s = Shape(lora_rank=256, per_device_train_batch_size=1, gradient_accumulation_steps=16, backend="trl")
    role = trainer_memory(arch, s, 4, 3, 40 * 2**30)
    sync = memory.CUDA_CONTEXT_BYTES + arch.param_count() * 2 + role.terms["lora_params"] * 4 + role.terms["optimizer_states"]
    assert role.peak_phase == "weight sync" and role.total == sync > sum(role.terms.values())


def test_micro_batch_times_processes_times_accumulation_is_the_step():
    lay = plan_layout(4, "a40", LLAMA8B, 24)
    s = lay.shape
    assert s.per_device_train_batch_size * s.gradient_accumulation_steps * lay.trainer_gpus == lay.completions_per_step
    assert lay.completions_per_step % s.num_generations == 0


def test_three_trainers_get_a_step_that_splits_evenly():
    lay = plan_layout(4, "h100", "Qwen/Qwen2.5-1.5B-Instruct", 24)
    assert lay.completions_per_step % lay.trainer_gpus == 0


def test_too_small_cards_do_not_fit_and_say_what_would():
    lay = plan_layout(2, "t4", LLAMA8B, 24)
    assert not lay.fits and lay.suggestions and "nothing fits" in lay.warnings[-1]


@pytest.mark.parametrize("args,needle", [
    ((1, "l40s"), "at least 2 GPUs"),
    ((2, "cpu"), "needs CUDA GPUs"),
])
def test_bad_layouts_raise_one_line(args, needle):
    with pytest.raises(BudgetError, match=needle):
        plan_layout(*args, TINA, 16)


def test_cli_plan_gpus_json_and_table():
    r = run_cli("plan", "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["server_gpus"], d["trainer_gpus"], d["prompts_per_step"]) == (1, 1, 8)  # the recipe pins 8 prompts
    assert set(d["roles"]["trainer"]["memory_gib"]) >= {"base_weights", "lora_params", "optimizer_states",
                                                       "activations", "logits"}
    assert set(d["roles"]["server"]["memory_gib"]) >= {"vllm_weights", "kv_cache"}
    r = run_cli("plan", "--gpus", "4", "--gpu", "a40", "--model", LLAMA8B)
    assert r.returncode == 0, r.stderr
    assert "Memory per GPU" in r.stdout and "ZeRO-2" in r.stdout
    r = run_cli("plan", "--gpus", "1", "--gpu", "a40")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
