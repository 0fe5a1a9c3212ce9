"""Hub datasets by id with --dataset-config and --split (the hub itself is replaced: it cannot be reached here)."""

from __future__ import annotations

import datasets
import pytest

from budgetreason.data.datasets import load_dataset_recipe
from budgetreason.errors import BudgetError
from tests.conftest import run_cli


def test_hub_id_passes_config_and_split(monkeypatch):
    calls = []

    def fake_load(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"question": "1+1", "answer": "#### 2"}, {"question": "2+3", "answer": "#### 5"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    prepared = load_dataset_recipe("openai/gsm8k", config="main", split="test", problem_column="question")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert sorted(prepared.train["solution"]) == ["#### 2", "#### 5"]
    load_dataset_recipe("openai/gsm8k", problem_column="question")
    assert calls[-1] == ("openai/gsm8k", None, "train")  # default split
    load_dataset_recipe("open-rs", split="train", config="other", problem_column="question")
    assert calls[-1] == ("knoveleng/open-rs", "other", "train")


def test_unreachable_hub_dataset_is_one_line_naming_config_and_split():
    with pytest.raises(BudgetError) as e:
        load_dataset_recipe("no-org/no-such-data", config="main", split="test")
    assert "no-org/no-such-data (config main), split test" in str(e.value) and "\n" not in str(e.value)


def test_train_help_documents_hub_datasets():
    r = run_cli("train", "--help")
    assert "ORG/NAME" in r.stdout and "--dataset-config" in r.stdout and "--split" in r.stdout
