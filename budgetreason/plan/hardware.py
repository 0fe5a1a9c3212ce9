"""GPU catalog and local GPU detection.

The planner needs four numbers per card: memory, 16-bit tensor throughput, memory bandwidth
and a price. They live in ``catalog/gpus.json`` with a source for each; this module reads
them and matches what ``nvidia-smi`` or ``torch.cuda`` calls a card to a catalog entry.
Nothing here imports torch unless asked to detect a GPU and torch is already loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

from budgetreason import catalog as catalog_file
from budgetreason.errors import BudgetError

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class GPU:
    """One accelerator as the planner sees it."""

    key: str
    """Short name used on the command line (``a40``)."""
    name: str
    """Name as the driver reports it (``NVIDIA A40``)."""
    vram_mib: int
    """Total memory in MiB as ``nvidia-smi --query-gpu=memory.total`` reports it."""
    bf16: bool
    """Whether the card computes in bfloat16 (T4 does not: fp16 then)."""
    tflops_16bit: float
    """Dense 16-bit tensor-core TFLOP/s (bf16, or fp16 where bf16 is missing)."""
    mem_bw_gbs: float
    """Memory bandwidth in GB/s."""
    price_usd_hr: float | None = None
    """Typical hourly price in USD (volatile; see price_source)."""
    price_source: str = ""
    compute_capability: str = ""
    spec_source: str = ""
    aliases: tuple[str, ...] = ()
    is_cuda: bool = True
    """False for the CPU pseudo-device used for the tiny model."""

    @property
    def vram_gib(self) -> float:
        return self.vram_mib * MIB / GIB

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.bf16 else "float16"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vram_gib"] = round(self.vram_gib, 2)
        d["aliases"] = list(self.aliases)
        return d


@lru_cache(maxsize=1)
def catalog() -> dict[str, GPU]:
    """All catalog GPUs by key, in catalog order."""
    raw = catalog_file.load("gpus")
    gpus = {}
    for g in raw["gpus"]:
        g = dict(g)
        g["aliases"] = tuple(g.get("aliases", ()))
        gpus[g["key"]] = GPU(**g)
    return gpus


def _norm(s: str) -> str:
    s = s.lower().replace("nvidia", "").replace("geforce", "").replace("tesla", "")
    return re.sub(r"[\s_\-]+", " ", s).strip()


def find_gpu(name: str) -> GPU | None:
    """Match a key, alias or driver name (``NVIDIA A100-SXM4-80GB``) to a catalog GPU."""
    want = _norm(name)
    gpus = catalog()
    for g in gpus.values():
        if want in {_norm(g.key), _norm(g.name), *(_norm(a) for a in g.aliases)}:
            return g
    # Driver names carry extras ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"): match on the
    # longest alias contained in the name, preferring the memory size the name states.
    best: tuple[int, GPU] | None = None
    for g in gpus.values():
        for alias in (g.key, g.name, *g.aliases):
            a = _norm(alias)
            if a and re.search(rf"(^|\s){re.escape(a)}($|\s)", want):
                score = len(a)
                if best is None or score > best[0]:
                    best = (score, g)
    if best and best[1].key.startswith("a100"):
        # "A100" alone maps to the 40 GB card; a name that says 80GB means the other one.
        return gpus["a100-80gb"] if "80" in want else gpus["a100-40gb"]
    return best[1] if best else None


def cpu_device(ram_gib: float | None = None) -> GPU:
    """The CPU as a 'device' for the built-in tiny model: system RAM, no tensor cores."""
    if ram_gib is None:
        ram_gib = _system_ram_gib()
    return GPU(
        key="cpu", name="CPU", vram_mib=int(ram_gib * 1024), bf16=False, tflops_16bit=0.2,
        mem_bw_gbs=20.0, price_usd_hr=0.0, price_source="your own machine",
        spec_source="budgetreason estimate for a 2-core CI runner (fp32 matmul)", is_cuda=False,
    )


def custom_gpu(vram_gib: float, like: GPU | None = None) -> GPU:
    """A card that is not in the catalog: its memory, with throughput borrowed from `like` (default A40)."""
    if vram_gib <= 0:
        raise BudgetError(f"--vram-gb must be positive, got {vram_gib}.")
    base = like or catalog()["a40"]
    return replace(base, key=f"custom-{vram_gib:g}gb", name=f"GPU with {vram_gib:g} GB",
                   vram_mib=int(vram_gib * 1e9 / MIB), aliases=(),
                   price_source=f"price of {base.name} (no catalog entry)",
                   spec_source=f"throughput of {base.name}; memory from --vram-gb")


def _system_ram_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 8.0


def detect_local_gpu() -> GPU | None:
    """The local CUDA GPU as a catalog entry (its measured memory kept), or None without one.

    torch.cuda is asked when torch is already imported (a notebook), else nvidia-smi (fast,
    and keeps the CLI free of a torch import), else torch.cuda when torch is installed.
    """
    found = None
    if "torch" in sys.modules:
        found = _from_torch()
    if found is None and shutil.which("nvidia-smi"):
        found = _from_nvidia_smi()
    if found is None and "torch" not in sys.modules and _torch_installed():
        found = _from_torch()
    if found is None:
        return None
    name, total_mib = found
    g = find_gpu(name)
    if g is None:
        return replace(custom_gpu(total_mib * MIB / 1e9), name=name, key=_norm(name).replace(" ", "-"))
    return replace(g, vram_mib=int(total_mib))


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _from_torch() -> tuple[str, float] | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return props.name, props.total_memory / MIB
    except Exception:  # a broken driver is the same as no GPU for planning
        return None


def _from_nvidia_smi() -> tuple[str, float] | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits", f"--id={visible}"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, mib = (p.strip() for p in out[0].rsplit(",", 1))
    return name, float(mib)


def resolve_gpu(gpu: str | None = None, vram_gb: float | None = None) -> GPU:
    """Turn the user's ``--gpu`` / ``--vram-gb`` into a GPU, or raise one clear line.

    ``auto`` (the default) reads the local GPU and falls back to the CPU device.
    ``--vram-gb`` alone describes an uncatalogued card; with ``--gpu`` it overrides memory.
    """
    if vram_gb is not None and vram_gb <= 0:
        raise BudgetError(f"--vram-gb must be positive, got {vram_gb:g}.")
    if gpu in (None, "", "auto"):
        if vram_gb is not None and gpu in (None, ""):
            return custom_gpu(vram_gb)
        local = detect_local_gpu()
        base = local or cpu_device()
        return replace(base, vram_mib=int(vram_gb * 1e9 / MIB)) if vram_gb else base
    if gpu.lower() == "cpu":
        return cpu_device(vram_gb)
    g = find_gpu(gpu)
    if g is None:
        keys = ", ".join(catalog())
        raise BudgetError(
            f"Unknown GPU '{gpu}'. Known: {keys}, cpu, auto. For another card pass --vram-gb N (its memory in GB)."
        )
    return replace(g, vram_mib=int(vram_gb * 1e9 / MIB)) if vram_gb else g
