"""Which training process owns the run folder when ``accelerate launch`` starts several.

``train --gpus N`` runs T trainer processes on one run folder. Only the main process (global
rank 0) takes the folder's lock and writes it; the others train and read what rank 0 wrote.
Ranks come from the environment accelerate/torchrun set (RANK, else LOCAL_RANK), so a
single-process run never imports accelerate or touches torch.distributed.
"""

from __future__ import annotations

import os


def rank() -> int:
    """Global rank of this process (0 when not launched by accelerate/torchrun)."""
    return int(os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def is_main_process() -> bool:
    return rank() == 0


def agreed_error(error: str | None) -> str | None:
    """Every rank's start-up error (None: none) gathered; the lowest rank's comes back on every rank.

    A collective all ranks reach, so it is also the barrier between rank 0's folder check and the
    others' reading: a rank refused (lock held, another run in the folder) stops every rank with the
    same line, where a barrier the refused rank never reaches would hang the others until NCCL's
    timeout. A single process gets its own error back, with no accelerate or torch.distributed import.
    """
    if world_size() <= 1:
        return error
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # joins the process group accelerate launch / torchrun describe, as the trainer will
    if not dist.is_initialized():
        return error
    errors: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(errors, error)
    agreed = next((e for e in errors if e is not None), None)
    if agreed is not None:
        # Every rank stops here: leave the group, or gloo's threads abort the exiting process (SIGABRT,
        # "terminate called without an active exception") after the one-line error is printed.
        dist.destroy_process_group()
    return agreed


def from_main(value: int) -> int:
    """Rank 0's `value` on every rank (one clock decides for all); `value` itself on a single process."""
    if world_size() <= 1:
        return value
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return value
    from accelerate import PartialState

    t = torch.tensor([value], dtype=torch.long, device=PartialState().device)
    dist.broadcast(t, src=0)
    return int(t.item())
