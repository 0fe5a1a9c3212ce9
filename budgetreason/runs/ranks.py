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


def wait_for_everyone() -> None:
    """Barrier across the trainer processes; nothing at all on a single-process run."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


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
