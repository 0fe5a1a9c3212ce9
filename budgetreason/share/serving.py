"""``serve``: the ``vllm serve`` command that serves a run's LoRA adapter, and a request to try it.

vLLM serves the base model with the adapter as a second model name (``--enable-lora
--lora-modules NAME=PATH``); requests choose it by ``"model": NAME`` on the OpenAI-compatible API.
``--max-lora-rank`` must be one of vLLM's allowed ranks (``MaxLoRARanks`` in vllm/config/lora.py:
1, 8, 16, 32, 64, 128, 256, 320, 512) and at least the adapter's rank; its default, 16, refuses
larger adapters. A merged export (``budgetreason export merged``) is served as a plain model.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from budgetreason.errors import BudgetError

#: vLLM's MaxLoRARanks (vllm/config/lora.py).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass
class ServeCommand:
    argv: list[str]
    name: str
    """The model name requests use."""
    request: str
    """A curl command for the OpenAI-style chat endpoint."""

    @property
    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


def max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds `rank`.

    >>> max_lora_rank(16), max_lora_rank(24), max_lora_rank(256)
    (16, 32, 256)
    """
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise BudgetError(f"LoRA rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]}); serve a merged export "
                      "instead (budgetreason export merged RUN --output DIR).")


def _name(run: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", run.resolve().name).strip("-") or "adapter"


def serve_command(run: str | Path, *, name: str | None = None, checkpoint: str = "final", port: int = 8000,
                  host: str | None = None, merged: str | Path | None = None,
                  gpu_memory_utilization: float | None = None) -> ServeCommand:
    """The vllm serve argv for a run folder (or for its merged export `merged`), and a request to try it."""
    import yaml

    from budgetreason.data.datasets import SYSTEM_PROMPT
    from budgetreason.models.backends import model_path
    from budgetreason.runs.folder import RunFolder
    from budgetreason.share.export import choose_adapter

    folder = RunFolder(run)
    if not folder.exists():
        raise BudgetError(f"{run}: no budgetreason run there (config.yaml missing).")
    cfg = yaml.safe_load(folder.config.read_text()) or {}
    max_len = (cfg.get("max_prompt_length") or 0) + (cfg.get("max_completion_length") or 0)
    served = name or _name(folder.path)
    if merged is not None:
        m = Path(merged)
        if not (m / "config.json").is_file():
            raise BudgetError(f"--merged {merged}: no model there (config.json missing); run budgetreason export "
                              "merged first.")
        argv = ["vllm", "serve", str(m.resolve()), "--served-model-name", served]
    else:
        adapter, _, _ = choose_adapter(folder, checkpoint)
        rank = json.loads((adapter / "adapter_config.json").read_text()).get("r") or cfg.get("lora_rank") or 16
        argv = ["vllm", "serve", model_path(cfg["model"]), "--enable-lora",
                "--lora-modules", f"{served}={adapter.resolve()}", "--max-lora-rank", str(max_lora_rank(int(rank)))]
    if max_len:
        argv += ["--max-model-len", str(max_len)]
    if gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
    if host:
        argv += ["--host", host]
    argv += ["--port", str(port)]
    body = {"model": served, "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": "What is 17 + 25?"}],
            "temperature": 0.6, "top_p": 0.95, "max_tokens": cfg.get("max_completion_length") or 512}
    request = (f"curl http://{host or 'localhost'}:{port}/v1/chat/completions -H 'Content-Type: application/json' "
               f"-d {shlex.quote(json.dumps(body))}")
    return ServeCommand(argv=argv, name=served, request=request)


def start(cmd: ServeCommand) -> int:
    """Run vllm serve in the foreground (Ctrl-C stops it); its exit code."""
    import shutil
    import subprocess

    if shutil.which(cmd.argv[0]) is None:
        raise BudgetError("vLLM is not installed here (it needs a CUDA GPU: pip install -e '.[gpu]'); run the "
                          "printed command on a GPU machine.")
    return subprocess.call(cmd.argv)
