"""`export verl`: verl's parquet layout read back, the reward module against budgetreason's rewards, and
every override key checked against verl's own config (a copy of v0.9.0's, and verl's classes when installed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from budgetreason.errors import BudgetError
from budgetreason.rewards.functions import accuracy_reward, preset
from budgetreason.share.verl_export import export
from tests.conftest import ROOT, run_cli
from tests.rewards.test_answer_equivalence import ALL

VERL_CONFIG = ROOT / "tests" / "data" / "verl_ppo_trainer_v0.9.0.yaml"
VERL_COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


def _open_rs_copy(tmp_path, n=12) -> Path:
    """A local file in open-rs's shape (problem, answer), as --data takes it."""
    path = tmp_path / "open-rs.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(n)))
    return path


@pytest.fixture(scope="module")
def tina(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verl")
    return export("tina-open-rs2", str(tmp / "out"), data_path=str(_open_rs_copy(tmp)), gpus=2)


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"verl_reward_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parquet_has_verls_rows_and_columns(tina):
    import datasets
    import pyarrow.parquet as pq

    table = pq.read_table(tina.output / "train.parquet")
    assert set(table.column_names) == VERL_COLUMNS and table.num_rows == tina.rows["train"] == 12
    rows = table.to_pylist()
    for r in rows:
        assert r["data_source"] == "budgetreason/open-rs" and r["ability"] == "math"
        assert r["reward_model"]["style"] == "rule"
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]  # a chat list, as RLHFDataset templates it
        assert r["extra_info"]["split"] == "train" and r["prompt"][-1]["content"] == r["extra_info"]["problem"]
    golds = {r["prompt"][-1]["content"]: r["reward_model"]["ground_truth"] for r in rows}
    assert golds["What is 5 + 5?"] == "10"
    # verl reads the files with datasets' parquet loader (verl/utils/dataset/rl_dataset.py)
    ds = datasets.load_dataset("parquet", data_files=str(tina.output / "train.parquet"))["train"]
    assert len(ds) == 12 and ds[0]["prompt"][0]["role"] == "system"


def test_reward_module_accuracy_scores_the_projects_cases_as_budgetreason(tina):
    mod = _module(tina.output / "reward.py")
    golds, texts = [g for g, _, _ in ALL], [t for _, t, _ in ALL]
    # One batch call, as TRL scores a batch; verl needs a number, so "not judged" (None) reads 0.0.
    expected = [0.0 if s is None else s for s in accuracy_reward(texts, solution=golds)]
    got = [mod.accuracy("budgetreason/open-rs", t, g, {"split": "train"}) for g, t in zip(golds, texts)]
    assert got == expected
    assert sum(expected) > 0 and 0.0 in expected


def test_reward_module_compute_score_is_the_presets_weighted_sum(tina):
    """tina: the preset's rewards and weights, summed as TRL sums reward_weights (unjudged left out)."""
    mod = _module(tina.output / "reward.py")
    p = preset("tina", prompt_opens_think=mod.PROMPT_OPENS_THINK)
    assert p.weights == (2.0, 1.0) and mod.WEIGHTS == p.weights
    cases = [("7", "<think>\n3+4\n</think>\n\\boxed{7}"), ("7", "\\boxed{7}"), ("7", "<think>\nx\n</think>\n\\boxed{8}"),
             ("3/4", "<think>a</think><think>b</think> \\boxed{0.75}")] + [(g, t) for g, t, _ in ALL[:40]]
    golds, texts = [g for g, _ in cases], [t for _, t in cases]
    per_func = [f(texts, solution=golds) for f in p.funcs]  # one batch per reward, as TRL calls them
    for i, (gold, text) in enumerate(cases):
        expected = sum(w * s[i] for w, s in zip(p.weights, per_func) if s[i] is not None)
        assert mod.compute_score("budgetreason/open-rs", text, gold) == expected, (gold, text)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out[key] = v
        if isinstance(v, dict):
            out |= _flat(v, key + ".")
    return out


def _parse(value: str):
    """A Hydra override value: numbers as Hydra reads them (1e-06 is a float), the rest as YAML."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return yaml.safe_load(value)


def test_every_override_is_a_key_of_verls_config_with_a_matching_type(tina):
    text = VERL_CONFIG.read_text()
    assert "483b8a009ba3a97563edee3a19887e4862b8094a" in text.splitlines()[1]  # the copy says where it is from
    keys = _flat(yaml.safe_load(text))
    for item in tina.overrides:
        key, value = item.split("=", 1)
        assert key in keys, f"{key} is not in verl's ppo_trainer config"
        default, ours = keys[key], _parse(value)
        if isinstance(default, bool):
            assert isinstance(ours, bool), item
        elif isinstance(default, (int, float)) and not isinstance(ours, bool):
            assert isinstance(ours, (int, float)), item
        elif isinstance(default, list):
            assert isinstance(ours, list), item


def test_tina_settings_map_one_to_one(tina):
    o = dict(item.split("=", 1) for item in tina.overrides)
    assert o["algorithm.adv_estimator"] == "grpo" and o["actor_rollout_ref.rollout.n"] == "6"
    assert (o["actor_rollout_ref.model.lora_rank"], o["actor_rollout_ref.model.lora_alpha"]) == ("32", "128")
    assert (o["data.max_prompt_length"], o["data.max_response_length"]) == ("512", "3584")
    assert o["actor_rollout_ref.actor.optim.lr"] == "1e-06" and o["actor_rollout_ref.rollout.temperature"] == "0.7"
    assert o["actor_rollout_ref.actor.use_kl_loss"] == "True" and o["actor_rollout_ref.actor.kl_loss_coef"] == "0.04"
    assert o["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-mean"  # TRL's grpo loss
    assert o["trainer.n_gpus_per_node"] == "2" and o["reward.custom_reward_function.name"] == "compute_score"
    assert Path(o["reward.custom_reward_function.path"]) == (tina.output / "reward.py").resolve()
    prompts, k, b = int(o["data.train_batch_size"]), 6, int(o["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"])
    assert (prompts * k // 2) % b == 0  # each GPU's share of a step is whole micro-batches
    assert any("lora_dropout" in n for n in tina.notes) and any("schedule_steps 1500" in n for n in tina.notes)
    assert o["trainer.total_training_steps"] == "850"  # the recipe stops at max_steps 850
    # long_prompts truncate_left: Tina keeps the last 512 prompt tokens, verl's data.truncation=left does the same
    # (verl/utils/dataset/rl_dataset.py); filtering first would drop those prompts instead
    assert (o["data.truncation"], o["data.filter_overlong_prompts"]) == ("left", "False")
    assert any(n.startswith("long_prompts truncate_left: data.truncation=left") for n in tina.notes), tina.notes
    assert not any("dropped by verl" in n for n in tina.notes)
    launch = (tina.output / "launch.sh").read_text()
    assert "python3 -m verl.trainer.main_ppo" in launch and "algorithm.adv_estimator=grpo" in launch


def test_overrides_load_with_verls_own_config_classes(tina):
    """Where verl is installed (it is not in the CPU test environment: see docs/scale-out.md)."""
    pytest.importorskip("verl")
    pytest.importorskip("hydra")
    import os

    import verl
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"),
                               version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=tina.overrides)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    algo = omega_conf_to_dataclass(cfg.algorithm)
    assert (actor.kl_loss_coef, actor.loss_agg_mode, actor.optim.lr_scheduler_type) == (0.04, "seq-mean-token-mean", "cosine")
    assert (rollout.n, rollout.response_length, algo.adv_estimator) == (6, 3584, "grpo")
    assert cfg.reward.custom_reward_function.name == "compute_score"


def test_a_run_folder_exports_its_resolved_settings(tmp_path):
    from budgetreason.runs.folder import RunFolder
    from budgetreason.train.training import _user_config, resolve

    run = resolve(_user_config("tiny-arith", {"max_steps": 3, "output": str(tmp_path / "run")}))
    folder = RunFolder(run.config.output)
    folder.path.mkdir(parents=True)
    folder.write_text(folder.config, run.config.to_yaml())
    folder.write_json(folder.plan, run.plan.to_dict())
    result = export(str(folder.path), str(tmp_path / "verl"))
    o = dict(item.split("=", 1) for item in result.overrides)
    c = run.config
    assert o["actor_rollout_ref.model.lora_rank"] == str(c.lora_rank)
    assert o["actor_rollout_ref.rollout.n"] == str(c.num_generations)
    assert int(o["data.train_batch_size"]) * c.num_generations == c.per_device_train_batch_size * c.gradient_accumulation_steps
    assert o["trainer.total_training_steps"] == "3"
    assert not any("planner's target" in n for n in result.notes)
    assert c.long_prompts == "drop"  # budgetreason's default: verl filters them out, and errors on none left
    assert (o["data.filter_overlong_prompts"], o["data.truncation"]) == ("True", "error")
    assert any("dropped by verl" in n for n in result.notes)


def test_cli_export_verl_and_refusal_to_overwrite(tmp_path):
    data = _open_rs_copy(tmp_path)
    r = run_cli("export", "verl", "tina-open-rs3", "--output", str(tmp_path / "v"), "--data", str(data))
    assert r.returncode == 0, r.stderr
    assert "verl.trainer.main_ppo" in r.stdout and (tmp_path / "v" / "train.parquet").is_file()
    before = (tmp_path / "v" / "reward.py").read_text()
    assert "tina_cosine" in before
    r = run_cli("export", "verl", "tina-open-rs3", "--output", str(tmp_path / "v"), "--data", str(data))
    assert r.returncode == 2 and "not empty" in r.stderr and r.stderr.count("\n") == 1
    assert (tmp_path / "v" / "reward.py").read_text() == before
    with pytest.raises(BudgetError, match="do not split"):
        export("tina-open-rs2", str(tmp_path / "w"), data_path=str(data), gpus=7)
