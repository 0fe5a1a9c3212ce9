"""``budgetreason serve``: print (or start) the vLLM server command for a run's adapter, and a request to try it."""

from __future__ import annotations

from typing import Annotated

import typer


def serve_cmd(
    run: Annotated[str, typer.Argument(help="Run folder.")],
    name: Annotated[str | None, typer.Option("--name", help="Model name in requests (default: the run folder's).")] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="final, best (by val/accuracy), or a step N.")] = "final",
    merged: Annotated[str | None, typer.Option("--merged", help="Serve this merged export instead of base + adapter.")] = None,
    port: Annotated[int, typer.Option("--port")] = 8000,
    host: Annotated[str | None, typer.Option("--host")] = None,
    vllm_share: Annotated[float | None, typer.Option("--vllm-share", help="vLLM's --gpu-memory-utilization.")] = None,
    start_now: Annotated[bool, typer.Option("--run", help="Start the server (needs vLLM and a GPU).")] = False,
) -> None:
    """The `vllm serve` command with the LoRA adapter enabled, and an OpenAI-style request to try it."""
    from budgetreason.share.serving import serve_command, start

    cmd = serve_command(run, name=name, checkpoint=checkpoint, port=port, host=host, merged=merged,
                        gpu_memory_utilization=vllm_share)
    typer.echo(cmd.shell)
    typer.echo("")
    typer.echo("# then, from another shell:")
    typer.echo(cmd.request)
    if start_now:
        raise typer.Exit(start(cmd))
