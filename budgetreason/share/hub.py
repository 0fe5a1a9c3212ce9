"""``push``: a run's adapter (or merged model) and its model card to the Hugging Face Hub.

The repository is built as a folder first, ``RUN/hub/`` (rebuilt on every push; budgetreason's
own output, nothing else lives there): the exported adapter or merged model
(:mod:`budgetreason.share.export`), README.md (:func:`budgetreason.share.hub_card.model_card`), the report's
figures under ``figures/``, and the run's config.yaml, plan.json, summary.json and eval results.
``dry_run`` stops there, so the listing is exactly what would be uploaded. The upload is
``huggingface_hub``'s ``create_repo`` + ``upload_folder``: one commit, resumable by running again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.runs.folder import RunFolder

STAGING = "hub"


@dataclass
class PushResult:
    repo_id: str
    folder: str
    """The local copy of the repository (RUN/hub)."""
    files: list[tuple[str, int]] = field(default_factory=list)
    """(path in the repository, bytes)."""
    uploaded: bool = False
    url: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise BudgetError(f"--repo must be USER/NAME (or ORG/NAME), got '{repo_id}'.")


def find_evals(run: Path, extra: list[str | Path] | None = None) -> list[dict]:
    """eval.json files inside the run folder (e.g. RUN/eval/) plus the ones given, in that order."""
    from budgetreason.evaluate.comparison import load_eval

    paths = [p for p in sorted(run.rglob("eval.json")) if STAGING not in p.relative_to(run).parts]
    found = [load_eval(p) for p in paths]
    return found + [load_eval(p) for p in extra or []]


def _figures(run: Path, report_dir: Path | None) -> dict[str, Path]:
    """The report's PNGs (made now if the run has no report yet)."""
    report_dir = report_dir or run / "report"
    data_file = report_dir / "report.json"
    if not data_file.is_file():
        from budgetreason.report.reporting import report

        if not RunFolder(run).read_metrics():
            return {}
        report([run], output=report_dir)
    data = json.loads(data_file.read_text())
    return {name: report_dir / path for name, path in data.get("figures", {}).items() if (report_dir / path).is_file()}


def stage(run: str | Path, repo_id: str, *, merged: bool = False, checkpoint: str = "final",
          evals: list[str | Path] | None = None, report_dir: str | Path | None = None, base: str | None = None) -> Path:
    """Build RUN/hub: the export, the card, figures and the run's records. Returns the folder."""
    from budgetreason.share.export import export_adapter, export_merged
    from budgetreason.share.hub_card import model_card

    _check_repo_id(repo_id)
    folder = RunFolder(run)
    if not folder.exists():
        raise BudgetError(f"{run}: no budgetreason run there (config.yaml missing).")
    out = folder.path / STAGING
    if out.exists():
        shutil.rmtree(out)  # our own staging copy from an earlier push
    found = find_evals(folder.path, evals)  # before anything is written: a bad --eval fails first
    figures = _figures(folder.path, Path(report_dir) if report_dir else None)
    exported = (export_merged(folder.path, out, checkpoint=checkpoint, base=base) if merged
                else export_adapter(folder.path, out, checkpoint=checkpoint, base=base))
    (out / "export.json").unlink()  # its paths are local; the card says what it holds
    (out / "figures").mkdir()
    in_repo = {}
    for name, src in figures.items():
        shutil.copy2(src, out / "figures" / src.name)
        in_repo[name] = f"figures/{src.name}"
    for f in (folder.config, folder.plan, folder.summary):
        if f.is_file():
            shutil.copy2(f, out / f.name)
    if found:
        (out / "eval_results.json").write_text(json.dumps(found, indent=2))
    (out / "README.md").write_text(model_card(folder.path, repo_id, merged=merged, figures=in_repo, evals=found,
                                              export=exported.to_dict()))
    return out


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def push(run: str | Path, repo_id: str, *, private: bool = False, merged: bool = False, dry_run: bool = False,
         checkpoint: str = "final", evals: list[str | Path] | None = None, token: str | None = None,
         base: str | None = None) -> PushResult:
    """Stage the repository and (unless `dry_run`) upload it; offline or logged out is one line."""
    _check_repo_id(repo_id)
    if not dry_run:
        _ready_to_upload(token)
    out = stage(run, repo_id, merged=merged, checkpoint=checkpoint, evals=evals, base=base)
    result = PushResult(repo_id=repo_id, folder=str(out), files=listing(out))
    if dry_run:
        return result
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(out), repo_type="model",
                          commit_message=f"budgetreason push of {Path(run).name}")
    except Exception as e:  # network, permissions, a name taken by someone else: one line either way
        raise BudgetError(f"Upload to {repo_id} failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); the "
                          f"files are ready in {out}; push again to retry.") from None
    result.uploaded, result.url = True, str(url)
    return result


def _ready_to_upload(token: str | None) -> None:
    import os

    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise BudgetError("Offline (HF_HUB_OFFLINE is set): nothing uploaded; run with --dry-run to build the "
                          "files, or push again when online.")
    if not (token or get_token()):
        raise BudgetError("Not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN, then push "
                          "again (--dry-run works without).")
