"""Export a run's adapter for use outside budgetreason: merged into its base, or the adapter alone.

``export_merged`` loads the base in float32, applies the chosen adapter with PEFT and folds it in
(``merge_and_unload``), then saves a plain transformers model in 16-bit safetensors with the
tokenizer, chat template and generation config: transformers, vLLM (``vllm serve DIR``) and TGI
load it with no PEFT installed. Merging in float32 and rounding once at the end keeps the merged
weights as close to base + adapter as the 16-bit format allows (Unsloth's ``merged_16bit`` does the
same); ``dtype="float32"`` keeps them exact.

``export_adapter`` copies the adapter weights and tokenizer with an ``adapter_config.json`` whose
``base_model_name_or_path`` is the base's model id, not the local path it was loaded from, so
``PeftModel.from_pretrained`` and ``vllm --lora-modules`` find the base anywhere.

Both read only the run folder (config.yaml, metrics.jsonl, checkpoints, adapter/) and never write
into an existing non-empty folder: they build the export beside it and rename it into place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.runs.folder import COMPLETE, RunFolder

#: Files of an adapter folder worth exporting (not the optimizer, scheduler or RNG state).
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")
DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class Export:
    """What an export wrote (also ``export.json`` in the output folder)."""

    output: str
    kind: str
    """merged or adapter."""
    base_model: str
    adapter: str
    """The adapter folder the export came from (adapter/ or checkpoint-N)."""
    step: int | None
    checkpoint: str
    """How it was chosen: final, best (with its validation accuracy) or a step."""
    dtype: str | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _run_config(folder: RunFolder) -> dict:
    import yaml

    if not folder.exists():
        raise BudgetError(f"{folder.path}: no budgetreason run there (config.yaml missing).")
    return yaml.safe_load(folder.config.read_text()) or {}


def _final_step(folder: RunFolder) -> int | None:
    if folder.summary.is_file():
        return json.loads(folder.summary.read_text()).get("steps")
    rows = folder.read_metrics()
    return rows[-1]["step"] if rows else None


def choose_adapter(folder: RunFolder, checkpoint: str = "final") -> tuple[Path, int | None, str]:
    """The adapter folder for ``--checkpoint final|best|N``: (path, step, how it was chosen).

    ``best`` is the highest ``val/accuracy`` in metrics.jsonl among the steps whose adapter still
    exists (a complete checkpoint, or the final adapter); ties go to the earlier step.
    """
    complete = {int(p.name.split("-")[-1]): p for p in folder.checkpoints() if (p / COMPLETE).is_file()}
    final_step = _final_step(folder)
    if checkpoint == "final":
        if not (folder.adapter / "adapter_config.json").is_file():
            if complete:
                step = max(complete)
                return complete[step], step, f"latest checkpoint (step {step}; the run has no final adapter yet)"
            raise BudgetError(f"{folder.path} has no adapter yet (no adapter/ and no complete checkpoint).")
        return folder.adapter, final_step, "final"
    if checkpoint == "best":
        val = {r["step"]: r["val/accuracy"] for r in folder.read_metrics() if r.get("val/accuracy") is not None}
        if not val:
            raise BudgetError(f"{folder.path}: no val/accuracy in metrics.jsonl (train with --val-every N); "
                              "use --checkpoint final or a step.")
        have = dict(complete)
        if final_step is not None and (folder.adapter / "adapter_config.json").is_file():
            have[final_step] = folder.adapter
        candidates = [s for s in sorted(val) if s in have]
        if not candidates:
            raise BudgetError(f"{folder.path}: no saved adapter at a validated step (validated: "
                              f"{', '.join(map(str, sorted(val)))}; saved: {', '.join(map(str, sorted(have))) or 'none'}). "
                              "Use --checkpoint final or a step.")
        step = max(candidates, key=lambda s: (val[s], -s))
        return have[step], step, f"best (val/accuracy {val[step]:.3f} at step {step})"
    if not checkpoint.isdigit():
        raise BudgetError(f"--checkpoint must be best, final or a step number, got '{checkpoint}'.")
    step = int(checkpoint)
    if step in complete:
        return complete[step], step, f"step {step}"
    if step == final_step and (folder.adapter / "adapter_config.json").is_file():
        return folder.adapter, step, f"step {step} (final)"
    raise BudgetError(f"{folder.path} has no complete checkpoint-{step}; saved steps: "
                      f"{', '.join(map(str, sorted(complete))) or 'none'}.")


def _check_output(output: str | Path) -> Path:
    out = Path(output).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BudgetError(f"{out} exists and is not empty; choose another --output (nothing was written).")
    return out


def _staging(out: Path) -> Path:
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, out: Path, record: Export) -> Export:
    """Write export.json, then rename the finished folder into place (an empty one is replaced)."""
    record.files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + ["export.json"]
    record.output = str(out)
    (tmp / "export.json").write_text(json.dumps(record.to_dict(), indent=2))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return record


def _copy_tokenizer(src: Path, dest: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)


def export_adapter(run: str | Path, output: str | Path, *, checkpoint: str = "final", base: str | None = None) -> Export:
    """Copy the chosen adapter (weights, config, tokenizer) to `output`, naming the base by its model id."""
    folder = RunFolder(run)
    cfg = _run_config(folder)
    out = _check_output(output)
    src, step, how = choose_adapter(folder, checkpoint)
    base_id = base or cfg.get("model")
    tmp = _staging(out)
    for name in ADAPTER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    _copy_tokenizer(src if (src / "tokenizer_config.json").is_file() else folder.adapter, tmp)
    conf = json.loads((tmp / "adapter_config.json").read_text())
    conf["base_model_name_or_path"] = base_id
    (tmp / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True))
    return _publish(tmp, out, Export(output=str(out), kind="adapter", base_model=base_id, adapter=str(src), step=step,
                                     checkpoint=how))


def export_merged(run: str | Path, output: str | Path, *, checkpoint: str = "final", dtype: str = "bfloat16",
                  base: str | None = None) -> Export:
    """Merge the chosen adapter into its base and save a plain model in `dtype` safetensors.

    `base` overrides the run's model (e.g. the 16-bit original of a pre-quantised 4-bit base).
    """
    if dtype not in DTYPES:
        raise BudgetError(f"--dtype must be one of {', '.join(DTYPES)}, got '{dtype}'.")
    folder = RunFolder(run)
    cfg = _run_config(folder)
    out = _check_output(output)
    src, step, how = choose_adapter(folder, checkpoint)
    base_id = base or cfg.get("model")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from budgetreason.models.backends import model_path, quiet_progress_bars

    quiet_progress_bars()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path(base_id), dtype=torch.float32)
    except OSError as e:
        raise BudgetError(f"Cannot load the base '{base_id}' ({str(e).splitlines()[0][:120]}); offline? "
                          "Pass a local copy with --base DIR.") from None
    if getattr(model.config, "quantization_config", None):
        raise BudgetError(f"The base '{base_id}' is pre-quantised; merge into its 16-bit original: --base ORG/NAME.")
    model = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    model = model.to(getattr(torch, dtype))
    tmp = _staging(out)
    model.save_pretrained(str(tmp), safe_serialization=True)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(tmp))
    tok_src = src if (src / "tokenizer_config.json").is_file() else model_path(base_id)
    AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(str(tmp))
    return _publish(tmp, out, Export(output=str(out), kind="merged", base_model=base_id, adapter=str(src), step=step,
                                     checkpoint=how, dtype=dtype))
