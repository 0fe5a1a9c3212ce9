"""``budgetreason push``: the adapter (or merged model) and a model card from the run folder, to the Hub."""

from __future__ import annotations

from typing import Annotated

import typer


def push_cmd(
    run: Annotated[str, typer.Argument(help="Run folder.")],
    repo: Annotated[str, typer.Option("--repo", help="Hub repository, USER/NAME or ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    merged: Annotated[bool, typer.Option("--merged", help="Upload the merged 16-bit model instead of the adapter.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build RUN/hub (files and card) and list it; upload nothing.")] = False,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="final, best (by val/accuracy), or a step N.")] = "final",
    evals: Annotated[list[str] | None, typer.Option("--eval", help="eval.json (or its folder) for the card; repeatable. "
                                                    "RUN/**/eval.json are found by themselves.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base model id for the card and the merge (default: the run's).")] = None,
) -> None:
    """Upload to the Hugging Face Hub with a model card: base, data, recipe, plan, curves and evaluation."""
    from budgetreason.share.hub import push

    result = push(run, repo, private=private, merged=merged, dry_run=dry_run, checkpoint=checkpoint, evals=evals,
                  base=base)
    for path, size in result.files:
        typer.echo(f"{size:>12,}  {path}")
    if result.uploaded:
        typer.echo(f"pushed {len(result.files)} files to {result.url}")
    else:
        typer.echo(f"dry run: {len(result.files)} files for {repo} in {result.folder} (card: {result.folder}/README.md)")
