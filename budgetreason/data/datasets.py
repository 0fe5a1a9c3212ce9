"""Dataset recipes: the papers' training sets, local files, and one normalised schema.

Every source becomes rows with ``prompt`` (chat messages: the reasoning instruction, then
the problem) and ``solution`` (the gold answer), keeping the other columns for reward
keyword arguments (a source column called ``prompt`` or ``solution`` is kept as
``source_prompt`` / ``source_solution``). Rows with empty answers, duplicate problems and
prompts longer than ``max_prompt_length`` tokens are dropped and counted; a seeded shuffle
then holds out a validation split. Recipes are data: catalog/datasets.json.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from budgetreason import catalog as catalog_file
from budgetreason.errors import BudgetError

#: The reasoning instruction every prompt starts with (training, validation and evaluation),
#: to the effect of Tina's and Open-RS's: think inside <think> </think>, answer in \boxed{}.
SYSTEM_PROMPT = ("You are a careful problem solver. First think step by step inside <think> </think> tags. "
                 "Then give the final answer inside \\boxed{}.")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class HubTable:
    """Where a table of problems lives on the hub and which columns hold problem and answer
    (shared by training recipes and evaluation benchmarks)."""

    name: str
    hf_id: str | None
    config: str | None
    split: str | None
    problem_column: str
    answer_column: str
    answer_kind: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Recipe(HubTable):
    rows: int = 0
    used_by: str = ""
    description: str = ""


@dataclass
class DataReport:
    """What loading did: rows read, dropped and why, and the split."""

    source: str
    rows_in: int = 0
    dropped_empty_answer: int = 0
    dropped_duplicates: int = 0
    dropped_too_long: int = 0
    truncated_left: int = 0
    """Prompts over max_prompt_length kept by cutting the problem's beginning (long_prompts: truncate_left)."""
    dropped_not_utf8: int = 0
    not_utf8_lines: list[int] = field(default_factory=list)
    """1-based line numbers in the file of the rows skipped because they are not UTF-8."""
    rows_train: int = 0
    rows_val: int = 0
    columns: list[str] = field(default_factory=list)

    def summary(self) -> str:
        drops = [f"{n} {what}" for n, what in ((self.dropped_empty_answer, "empty answers"),
                 (self.dropped_duplicates, "duplicates"), (self.dropped_too_long, "prompts too long"),
                 (self.dropped_not_utf8, "rows not UTF-8")) if n]
        return (f"{self.source}: {self.rows_in} rows, {self.rows_train} train / {self.rows_val} validation"
                + (f" (dropped {', '.join(drops)})" if drops else "")
                + (f", {self.truncated_left} long prompts cut from the left" if self.truncated_left else ""))

    def skipped_lines(self) -> list[str]:
        """One line per kind of skipped row that names the rows (for events.jsonl and the console)."""
        if not self.not_utf8_lines:
            return []
        shown = ", ".join(map(str, self.not_utf8_lines[:10])) + (" …" if len(self.not_utf8_lines) > 10 else "")
        return [f"{self.source}: skipped {self.dropped_not_utf8} row(s) that are not UTF-8 text (line {shown})"]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    train: object
    """datasets.Dataset with prompt, solution and the source's other columns."""
    val: object
    report: DataReport


@lru_cache(maxsize=1)
def _registry() -> dict[str, Recipe]:
    raw = catalog_file.load("datasets")
    return {r["name"]: Recipe(**r) for r in raw["recipes"]}


def recipes() -> list[Recipe]:
    """All registered recipes, in catalog order."""
    return list(_registry().values())


def get_recipe(name: str) -> Recipe:
    reg = _registry()
    if name not in reg:
        raise BudgetError(f"Unknown dataset '{name}'. Recipes: {', '.join(reg)}; or pass a .jsonl/.json/.parquet/.csv file.")
    return reg[name]


def read_local(path: Path, split: str | None = None, not_utf8: list[int] | None = None) -> list[dict]:
    """Rows of a local .jsonl/.json/.parquet/.csv file or a ``save_to_disk`` folder (its `split`, else train).

    An empty file has no rows. In line-based files (.jsonl, .csv) a line that is not UTF-8 is
    skipped and its 1-based number appended to `not_utf8`, instead of refusing the whole file.
    """
    import datasets

    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception:
            raise BudgetError(f"{path} is a folder but not a saved dataset; pass a .jsonl, .json, .parquet or .csv file.") from None
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split] if split in ds else (ds["train"] if "train" in ds else next(iter(ds.values())))
        return list(ds)
    kind = LOCAL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BudgetError(f"{path}: unsupported file type '{path.suffix}'; use .jsonl, .json, .parquet or .csv.")
    raw = path.read_bytes()
    if not raw.strip():
        return []
    clean = None
    if path.suffix.lower() in (".jsonl", ".csv"):
        clean = _without_undecodable_lines(path, raw, not_utf8 if not_utf8 is not None else [])
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a local file reads in a blink; its bars would break one-line errors
    try:
        return list(datasets.load_dataset(kind, data_files=str(clean or path), split="train"))
    except Exception as e:
        raise BudgetError(f"Cannot read {path} as {kind}: {first_line(e)}") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
        if clean is not None:
            import shutil

            shutil.rmtree(clean.parent, ignore_errors=True)


def first_line(error: BaseException, limit: int = 160) -> str:
    """An exception's first line, or its type when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def _without_undecodable_lines(path: Path, raw: bytes, bad: list[int]) -> Path | None:
    """A temporary copy of `path` without its non-UTF-8 lines (numbers appended to `bad`); None if all decode."""
    import tempfile

    lines = raw.splitlines(keepends=True)
    kept = []
    for i, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(i)
            continue
        kept.append(line)
    if not bad:
        return None
    copy = Path(tempfile.mkdtemp(prefix="budgetreason-data-")) / path.name
    copy.write_bytes(b"".join(kept))
    return copy


def _read_hub(recipe: Recipe, split: str | None, config: str | None = None) -> list[dict]:
    from budgetreason.online import offline_reason

    offline_reason()  # before datasets is imported: without the hub it reads its cache only, at once
    import datasets

    try:
        return list(datasets.load_dataset(recipe.hf_id, config or recipe.config, split=split or recipe.split))
    except Exception as e:
        raise BudgetError(f"Cannot load {recipe.name} from the hub ({recipe.hf_id}: {type(e).__name__}; offline?). "
                          f"Pass a local copy with --data FILE (columns {recipe.problem_column}, {recipe.answer_column}).") from None


def _source_rows(name_or_path: str, data_files: str | None, split: str | None, seed: int, config: str | None = None,
                 not_utf8: list[int] | None = None) -> tuple[list[dict], str, str | None, str | None]:
    """Rows plus (source label, default problem column, default answer column)."""
    if name_or_path in _registry():
        recipe = get_recipe(name_or_path)
        if recipe.name == "arith" and not data_files:
            from budgetreason.data.arith import make_problems

            return [p.to_row() for p in make_problems(recipe.rows, seed=seed)], "arith", "problem", "answer"
        if data_files:
            path = Path(data_files).expanduser()
            if not path.exists():
                raise BudgetError(f"--data {data_files}: no such file or folder.")
            return (read_local(path, split, not_utf8=not_utf8), f"{recipe.name} ({path})", recipe.problem_column,
                    recipe.answer_column)
        return _read_hub(recipe, split, config), recipe.name, recipe.problem_column, recipe.answer_column
    path = Path(name_or_path).expanduser()
    if path.exists():
        return read_local(path, split, not_utf8=not_utf8), str(path), None, None
    if "/" in name_or_path and not path.suffix:
        from budgetreason.online import offline_reason

        offline_reason()
        import datasets

        try:
            rows = list(datasets.load_dataset(name_or_path, config, split=split or "train"))
        except Exception as e:
            what = f"{name_or_path}" + (f" (config {config})" if config else "") + f", split {split or 'train'}"
            raise BudgetError(f"Cannot load '{what}' from the hub ({type(e).__name__}: {str(e).splitlines()[0][:120]}"
                              "; offline, or see --dataset-config/--split). Pass a local file instead.") from None
        return rows, name_or_path, None, None
    raise BudgetError(f"Unknown dataset '{name_or_path}': not a recipe ({', '.join(_registry())}) and no such file.")


def check_source(name_or_path: str, data_files: str | None = None) -> None:
    """Fail fast (before a model loads) on a dataset that is neither a recipe, nor a file, nor a hub id."""
    if name_or_path in _registry():
        if data_files and not Path(data_files).expanduser().exists():
            raise BudgetError(f"--data {data_files}: no such file or folder.")
        return
    path = Path(name_or_path).expanduser()
    if path.exists() or ("/" in name_or_path and not path.suffix and not name_or_path.startswith((".", "/", "~"))):
        return
    raise BudgetError(f"Unknown dataset '{name_or_path}': not a recipe ({', '.join(_registry())}) and no such file.")


def _prompt_tokens(tokenizer, messages: list[dict]) -> int:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def _cut_left(tokenizer, messages: list[dict], max_prompt_length: int) -> list[dict]:
    """The messages with the user turn's first tokens removed until the templated prompt fits.

    Tina's trainer kept the last max_prompt_length tokens of the templated prompt (prompt_ids[:, -512:]),
    which can cut the system prompt too; this keeps the template and cuts only the problem text.
    """
    user = messages[-1]["content"]
    ids = tokenizer(user, add_special_tokens=False)["input_ids"]
    over = _prompt_tokens(tokenizer, messages) - max_prompt_length
    while over > 0 and ids:
        ids = ids[over:]
        messages = messages[:-1] + [{**messages[-1], "content": tokenizer.decode(ids)}]
        over = _prompt_tokens(tokenizer, messages) - max_prompt_length
    return messages


def load_dataset_recipe(name_or_path: str, *, split: str | None = None, problem_column: str | None = None,
                        answer_column: str | None = None, data_files: str | None = None, seed: int = 0,
                        val_size: int | float = 0, max_prompt_length: int | None = None, tokenizer=None,
                        limit: int | None = None, system_prompt: str = SYSTEM_PROMPT,
                        config: str | None = None, long_prompts: str = "drop", drop_duplicates: bool = True) -> PreparedData:
    """Load a recipe, a local file or a hub dataset into the normalised schema, validated and split.

    `split` and `config` choose a hub dataset's split and configuration (subset).
    `val_size` is a row count or a fraction; `limit` keeps only that many training rows after the
    shuffle; prompts longer than `max_prompt_length` tokens (under `tokenizer`'s chat template)
    are dropped, or with ``long_prompts="truncate_left"`` (Tina's rule) kept with the beginning of
    the problem cut until the templated prompt fits. ``drop_duplicates=False`` keeps repeated
    problems (neither paper's trainer removed them). Every problem is reported in one line on failure.
    """
    import datasets

    not_utf8: list[int] = []
    rows, source, default_p, default_a = _source_rows(name_or_path, data_files, split, seed, config, not_utf8)
    pcol, acol = problem_column or default_p or "problem", answer_column or default_a or "answer"
    columns = list(rows[0]) if rows else []
    for col, flag in ((pcol, "--problem-column"), (acol, "--answer-column")):
        if rows and col not in rows[0]:
            raise BudgetError(f"Column '{col}' not in {source}; columns are: {', '.join(columns)}. Pass {flag} NAME.")
    if not rows:
        raise BudgetError(f"{source} has no rows.")
    report = DataReport(source=source, rows_in=len(rows) + len(not_utf8), columns=columns,
                        dropped_not_utf8=len(not_utf8), not_utf8_lines=not_utf8)
    seen: set[str] = set()
    out: list[dict] = []
    for row in rows:
        answer = row.get(acol)
        answer = "" if answer is None else str(answer).strip()
        if not answer:
            report.dropped_empty_answer += 1
            continue
        problem = str(row.get(pcol) or "").strip()
        key = " ".join(problem.split()).lower()
        if drop_duplicates and key in seen:
            report.dropped_duplicates += 1
            continue
        seen.add(key)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
            [{"role": "user", "content": problem}]
        rec = {"prompt": messages, "solution": answer}
        for k, v in row.items():
            if k in (pcol, acol):
                continue
            rec[f"source_{k}" if k in ("prompt", "solution") else k] = v
        out.append(rec)
    if max_prompt_length is not None and tokenizer is not None:
        if long_prompts == "truncate_left":
            for r in out:
                if _prompt_tokens(tokenizer, r["prompt"]) > max_prompt_length:
                    r["prompt"] = _cut_left(tokenizer, r["prompt"], max_prompt_length)
                    report.truncated_left += 1
        kept = [r for r in out if _prompt_tokens(tokenizer, r["prompt"]) <= max_prompt_length]
        report.dropped_too_long = len(out) - len(kept)
        out = kept
    if not out:
        raise BudgetError(f"{source}: no rows left after dropping {report.dropped_empty_answer} empty answers, "
                          f"{report.dropped_duplicates} duplicates and {report.dropped_too_long} prompts over "
                          f"{max_prompt_length} tokens; raise --max-prompt or check the columns.")
    random.Random(seed).shuffle(out)
    n_val = int(round(val_size * len(out))) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if n_val >= len(out):
        raise BudgetError(f"val_size {val_size} leaves no training rows (only {len(out)} rows).")
    val, train = out[:n_val], out[n_val:]
    if limit:
        train = train[:limit]
    report.rows_train, report.rows_val = len(train), len(val)
    return PreparedData(train=datasets.Dataset.from_list(train),
                        val=datasets.Dataset.from_list(val) if val else None, report=report)
