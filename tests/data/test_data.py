"""Dataset recipes on local files shaped like the hub's (made here), validation, and the seeded split."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from budgetreason.data.datasets import SYSTEM_PROMPT, get_recipe, load_dataset_recipe, recipes
from budgetreason.errors import BudgetError

#: Columns of each hub dataset as REFERENCE.md lists them, with a row builder in that shape.
HUB_SHAPES = {
    "open-rs": lambda i: {"problem": f"P{i}: what is {i}+1?", "solution": f"... so \\boxed{{{i + 1}}}",
                          "answer": str(i + 1), "level": "Level 3"},
    "open-s1": lambda i: {"problem": f"S{i}", "solution": f"\\boxed{{{i}}}", "answer": str(i), "source": "s1",
                          "messages": [{"role": "user", "content": f"S{i}"}]},
    "open-deepscaler": lambda i: {"problem": f"D{i}", "solution": f"\\boxed{{{i}}}", "answer": str(i)},
    "deepscaler": lambda i: {"problem": f"DS{i}", "answer": str(i), "solution": ""},
    "limr": lambda i: {"prompt": f"L{i}", "answer": str(i)},
    "still-3": lambda i: {"question": f"Q{i}", "answer": str(i)},
    "openr1-math": lambda i: {"problem": f"O{i}", "solution": f"\\boxed{{{i}}}", "answer": str(i),
                              "problem_type": "Algebra"},
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class CharTokenizer:
    """A real (if simple) tokenizer contract: one token per character of the chat-rendered prompt."""

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")
        return list(range(len(text))) if tokenize else text


def test_registry_has_the_papers_sets():
    names = {r.name for r in recipes()}
    assert {"open-rs", "open-s1", "open-deepscaler", "limr", "deepscaler", "still-3", "openr1-math", "arith"} <= names
    for r in recipes():
        assert r.problem_column and r.answer_column and r.description and r.used_by
        if r.name != "arith":
            assert r.hf_id and r.split
    assert get_recipe("open-rs").hf_id == "knoveleng/open-rs" and get_recipe("open-rs").rows == 7000


@pytest.mark.parametrize("name", sorted(HUB_SHAPES))
def test_every_recipe_loads_a_local_copy_in_the_hubs_shape(tmp_path, name):
    rows = [HUB_SHAPES[name](i) for i in range(20)]
    data = load_dataset_recipe(name, data_files=str(write_jsonl(tmp_path / "copy.jsonl", rows)), seed=1, val_size=4)
    assert len(data.train) == 16 and len(data.val) == 4
    row = data.train[0]
    assert row["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert row["prompt"][1]["role"] == "user" and row["prompt"][1]["content"]
    recipe = get_recipe(name)
    src = {r[recipe.problem_column]: r for r in rows}[row["prompt"][1]["content"]]
    assert row["solution"] == str(src[recipe.answer_column])
    extra = set(rows[0]) - {recipe.problem_column, recipe.answer_column}
    kept = {f"source_{c}" if c in ("prompt", "solution") else c for c in extra}
    assert kept <= set(data.train.column_names)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv"])
def test_local_files_with_column_mapping(tmp_path, fmt):
    rows = [{"q": f"question {i}", "a": str(i * 2), "topic": "t"} for i in range(10)]
    path = tmp_path / f"data.{fmt}"
    df = pd.DataFrame(rows)
    {"jsonl": lambda: df.to_json(path, orient="records", lines=True), "json": lambda: df.to_json(path, orient="records"),
     "parquet": lambda: df.to_parquet(path), "csv": lambda: df.to_csv(path, index=False)}[fmt]()
    data = load_dataset_recipe(str(path), problem_column="q", answer_column="a")
    assert len(data.train) == 10 and data.val is None
    assert sorted(r["solution"] for r in data.train) == sorted(str(i * 2) for i in range(10))
    assert "topic" in data.train.column_names


def test_missing_column_names_what_exists(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "x", "result": "1"}])
    with pytest.raises(BudgetError) as e:
        load_dataset_recipe(str(path))
    msg = str(e.value)
    assert "Column 'problem' not in" in msg and "question, result" in msg and "--problem-column" in msg
    with pytest.raises(BudgetError, match="--answer-column"):
        load_dataset_recipe(str(path), problem_column="question")


def test_empty_answers_and_duplicates_are_dropped_and_counted(tmp_path):
    rows = [{"problem": "a", "answer": "1"}, {"problem": "b", "answer": ""}, {"problem": "c", "answer": None},
            {"problem": "A ", "answer": "1"}, {"problem": "d", "answer": "  "}, {"problem": "e", "answer": "5"}]
    data = load_dataset_recipe(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    r = data.report
    assert (r.rows_in, r.dropped_empty_answer, r.dropped_duplicates, r.rows_train) == (6, 3, 1, 2)
    assert "3 empty answers" in r.summary() and "1 duplicates" in r.summary()


def test_long_prompts_are_dropped_and_reported(tmp_path):
    rows = [{"problem": "x" * n, "answer": "1"} for n in (10, 50, 400, 1000)]
    tok = CharTokenizer()
    limit = len(tok.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT},
                                         {"role": "user", "content": "x" * 60}]))
    data = load_dataset_recipe(str(write_jsonl(tmp_path / "d.jsonl", rows)), tokenizer=tok, max_prompt_length=limit)
    assert data.report.dropped_too_long == 2 and len(data.train) == 2


def test_nothing_left_is_one_clear_line(tmp_path):
    rows = [{"problem": "x" * 100, "answer": "1"}]
    with pytest.raises(BudgetError, match="no rows left") as e:
        load_dataset_recipe(str(write_jsonl(tmp_path / "d.jsonl", rows)), tokenizer=CharTokenizer(), max_prompt_length=5)
    assert "\n" not in str(e.value)


def test_seeded_shuffle_and_split_are_deterministic(tmp_path):
    rows = [{"problem": f"p{i}", "answer": str(i)} for i in range(50)]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    a = load_dataset_recipe(path, seed=3, val_size=0.2)
    b = load_dataset_recipe(path, seed=3, val_size=0.2)
    c = load_dataset_recipe(path, seed=4, val_size=0.2)
    assert a.train["solution"] == b.train["solution"] and a.val["solution"] == b.val["solution"]
    assert a.train["solution"] != c.train["solution"]
    assert len(a.val) == 10 and not set(a.val["solution"]) & set(a.train["solution"])


def test_hub_failure_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BudgetError) as e:
        load_dataset_recipe("open-rs")
    assert "--data" in str(e.value) and "\n" not in str(e.value)


def test_unknown_dataset_lists_recipes():
    with pytest.raises(BudgetError, match="open-rs"):
        load_dataset_recipe("no-such-dataset")


def test_arith_recipe_is_generated_from_the_seed():
    a = load_dataset_recipe("arith", seed=0, limit=100)
    b = load_dataset_recipe("arith", seed=0, limit=100)
    assert a.train["solution"] == b.train["solution"] and len(a.train) == 100
    assert a.train[0]["prompt"][1]["content"].startswith("What is ")
