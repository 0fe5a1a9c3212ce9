"""The recipes and evaluation protocols reproduce the papers: docs/reproduce.md's tables, the YAML files
and the resolved run configuration agree value for value (the doc is generated from the files)."""

from __future__ import annotations

import json

import pytest
import yaml

from budgetreason.evaluate.evaluation import PROTOCOLS
from budgetreason.reproduce import parse_table, render
from budgetreason.train.recipes import load_recipe, recipe_path
from tests.conftest import ROOT, run_cli

DOC = ROOT / "docs" / "reproduce.md"
PAPER_RECIPES = ("micro-budget", "tina-open-rs2", "tina-open-rs3", "tina-open-rs3-drgrpo")


def test_reproduce_doc_tables_are_current():
    text = DOC.read_text()
    assert render(text) == text, "run: python -m budgetreason.reproduce docs/reproduce.md"


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_yaml_and_resolved_config_hold_every_value_of_the_doc_table(name):
    from budgetreason.train.training import _user_config, resolve

    table = parse_table(DOC.read_text(), "recipe", name)
    data = load_recipe(name)
    assert set(table) == set(data)  # every setting of the file is in the table, and nothing else
    resolved = resolve(_user_config(name, {})).config
    for key, value in table.items():
        assert data[key] == value, key
        assert getattr(resolved, key) == value, key
    assert all(row_source for row_source in _sources(name).values()), "every value names its source"


def _sources(name: str) -> dict:
    from budgetreason.train.recipes import settings

    return {r["key"]: r["source"] for r in settings(name)}


def test_tina_recipes_follow_the_released_config_and_record_the_paper_difference():
    for name in ("tina-open-rs2", "tina-open-rs3", "tina-open-rs3-drgrpo"):
        d, src = load_recipe(name), _sources(name)
        assert (d["num_generations"], d["prompts_per_step"]) == (6, 8)
        assert "paper Table 5: 4" in src["num_generations"]  # both values recorded
        assert (d["schedule_steps"], d["max_steps"], d["warmup_ratio"], d["min_lr_ratio"]) == (1500, 850, 0.1, 0.1)
        assert d["long_prompts"] == "truncate_left" and d["save_steps"] == 50
    assert load_recipe("tina-open-rs3-drgrpo")["loss"] == "bnpo"  # Tina's Dr.GRPO, not TRL's dr_grpo
    assert load_recipe("tina-open-rs3-drgrpo")["scale_rewards"] == "none"


def test_no_value_is_attributed_to_a_table_that_does_not_hold_it():
    """Tina's Table 5 has no KL coefficient, temperature or k = 6; the micro-budget paper has no tables of settings."""
    for name in ("tina-open-rs2", "tina-open-rs3"):
        src = _sources(name)
        for key in ("beta", "temperature", "num_generations", "schedule_steps", "min_lr_ratio"):
            assert not src[key].startswith("paper Table 5"), key
    for key, note in _sources("micro-budget").items():
        assert "Table" not in note, key


def test_config_yaml_of_a_tina_run_records_the_trl_settings_neither_paper_had(tmp_path):
    from budgetreason.train.training import _user_config, resolve

    cfg = yaml.safe_load(resolve(_user_config("tina-open-rs2", {})).config.to_yaml())
    assert cfg["logprob_temperature"] == "sampling"
    assert cfg["use_bias_correction_kl"] is False and cfg["vllm_importance_sampling_correction"] is False
    assert cfg["vllm_importance_sampling_mode"] == "sequence_mask" and cfg["vllm_importance_sampling_clip_max"] == 3.0


def test_grpo_config_gets_the_pinned_trl_settings():
    from types import SimpleNamespace

    from budgetreason.plan.hardware import resolve_gpu
    from budgetreason.rewards.functions import preset
    from budgetreason.train.trainer_args import grpo_config
    from budgetreason.train.training import _user_config, resolve

    run = resolve(_user_config("tina-open-rs3-drgrpo", {}))
    run = SimpleNamespace(config=run.config, gpu=resolve_gpu("cpu"), backend="hf", folder=run.folder)
    args = grpo_config(run, preset("tina_cosine"))
    assert (args.loss_type, args.scale_rewards, args.beta, args.temperature) == ("bnpo", "none", 0.04, 0.7)
    assert args.use_bias_correction_kl is False and args.vllm_importance_sampling_correction is False


def test_recipe_files_say_where_each_value_comes_from():
    for name in PAPER_RECIPES:
        lines = [x for x in recipe_path(name).read_text().splitlines() if x and not x.startswith("#")]
        assert all(" # " in x for x in lines), name


SIX = {
    "aime24": {"problem": "What is 2 + 3?", "answer": "5"},
    "aime25": {"problem": "What is 4 + 4?", "answer": "8"},
    "amc23": {"problem": "What is 1 + 1?", "answer": "2"},
    "math500": {"problem": "What is 3 + 3?", "solution": "\\boxed{6}", "answer": "6"},
    "minerva": {"problem": "What is 5 + 2?", "solution": "\\boxed{7}"},
    "gpqa-diamond": {"Question": "Which is 2?", "Correct Answer": "2", "Incorrect Answer 1": "3",
                     "Incorrect Answer 2": "4", "Incorrect Answer 3": "5"},
}


def test_eval_protocol_tina_writes_its_settings_into_eval_json(tmp_path):
    data = []
    for name, row in SIX.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        data += ["--data", f"{name}={path}"]
    out = tmp_path / "eval"
    r = run_cli("eval", "--protocol", "tina", "--model", "tiny-arith", "--backend", "hf", *data, "--output", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "eval.json").read_text())
    proto = result["protocol"]
    assert proto["name"] == "tina"
    # Tina's 32768 new tokens, capped to what tiny-arith's 1024-token context leaves (Tina: 4096 for Qwen2.5-Math)
    assert (proto["n"], proto["temperature"], proto["top_p"], proto["max_tokens"]) == (1, 0.6, 0.95, 512)
    assert result["completion_length"] == {"asked": 32768, "model_context": 1024, "prompt_room": 512,
                                           "max_tokens": 512, "capped": True, "engine_max_model_len": 1024}
    assert "--max-tokens 512, not the protocol's 32768: tiny-arith's context is 1024 tokens." in r.stderr
    assert proto["benchmarks"] == ["aime24", "aime25", "amc23", "math500", "gpqa-diamond", "minerva"]
    assert proto["ks"] == [1] and proto["source"] == PROTOCOLS["tina"]["source"]
    assert sorted(result["benchmarks"]) == sorted(SIX)
    assert all(set(k for k in b if k.startswith("pass@")) == {"pass@1"} for b in result["benchmarks"].values())
    r = run_cli("eval", "--protocol", "tina", "--model", "tiny-arith", "--samples", "4", "--output", str(out))
    assert r.returncode == 2 and "--samples" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_tina_prompt_rule_keeps_long_prompts_cut_from_the_left_and_duplicates(tmp_path):
    from transformers import AutoTokenizer

    from budgetreason.data.datasets import _prompt_tokens, load_dataset_recipe
    from budgetreason.plan.architectures import tiny_model_dir

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    long = "12 + 34 = ? " * 80 + "What is 1 + 2?"
    rows = [{"problem": long, "answer": "3"}, {"problem": "What is 2 + 2?", "answer": "4"},
            {"problem": "What is 2 + 2?", "answer": "4"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours = load_dataset_recipe(str(path), tokenizer=tok, max_prompt_length=128)
    assert (ours.report.dropped_too_long, ours.report.dropped_duplicates, len(ours.train)) == (1, 1, 1)
    tina = load_dataset_recipe(str(path), tokenizer=tok, max_prompt_length=128, long_prompts="truncate_left",
                               drop_duplicates=False)
    assert (tina.report.truncated_left, tina.report.dropped_too_long, len(tina.train)) == (1, 0, 3)
    cut = next(r["prompt"] for r in tina.train if r["solution"] == "3")
    assert _prompt_tokens(tok, cut) <= 128 and cut[-1]["content"].endswith("What is 1 + 2?")
    assert cut[0]["role"] == "system"  # the template and system prompt are kept; the problem's start is cut
    assert "cut from the left" in tina.report.summary()
