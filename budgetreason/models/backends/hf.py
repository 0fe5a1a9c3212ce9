"""transformers + PEFT: the CPU path, and the plain-GPU path under TRL's own vLLM colocation."""

from __future__ import annotations

from pathlib import Path

from budgetreason.errors import BudgetError
from budgetreason.models.backends import Loaded, model_path, quiet_progress_bars

#: Set to a whole number to fix torch's CPU threads (OMP_NUM_THREADS, when set, is respected as well).
THREADS_ENV = "BUDGETREASON_THREADS"


CGROUP_ROOT = "/sys/fs/cgroup"
SELF_CGROUP = "/proc/self/cgroup"


def cgroup_cpus(root: str | Path = CGROUP_ROOT, self_cgroup: str | Path = SELF_CGROUP) -> float | None:
    """Cores the cgroup CPU quota allows this process (quota / period), or None when nothing limits it.

    cgroup v2: ``cpu.max`` ("max 100000" or "400000 100000") in the process's cgroup and each parent
    up to the mount; v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: no limit). Inside a
    container the mount is the container's own cgroup, so a path from /proc/self/cgroup that is not
    under it falls back to the mount itself. The tightest limit wins.
    """
    root = Path(root)
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    paths = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2].strip("/")

    def chain(base: Path, rel: str) -> list[Path]:
        here = base / rel if rel and (base / rel).is_dir() else base
        return [d for d in [here, *here.parents] if d == base or base in d.parents]

    def v2(d: Path) -> float | None:
        quota, _, period = (d / "cpu.max").read_text().strip().partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100000)

    def v1(d: Path) -> float | None:
        quota = int((d / "cpu.cfs_quota_us").read_text())
        return None if quota <= 0 else quota / int((d / "cpu.cfs_period_us").read_text())

    limits = []
    mounts = [(root, paths.get(""), v2)] + [(root / m, paths.get("cpu"), v1) for m in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
    for base, rel, read in mounts:
        if rel is None or not base.is_dir():
            continue
        for d in chain(base, rel):
            try:
                limit = read(d)
            except (OSError, ValueError):
                continue
            if limit:
                limits.append(limit)
    return min(limits) if limits else None


def threads_for(cores: int, host_cpus: int, load: float) -> int:
    """The rule: all of `cores`, less the busy ones only when they are the whole machine the load measures.

    The one-minute load average is machine-wide. When this process may use every core the kernel
    has (a shared box, a VM: Colab), it says how many of them other processes hold. When it may use
    fewer (a cpuset, a CPU quota: docker --cpus, CI runners), the load is the host's and says
    nothing about this container's own cores, so it is not used.

    >>> threads_for(2, 2, load=0.1), threads_for(2, 2, load=1.2), threads_for(16, 16, load=40.0)
    (2, 1, 1)
    >>> threads_for(16, 64, load=40.0)  # 16 of a 64-core host's cores: the host's load is not ours
    16
    """
    if cores < host_cpus:
        return max(1, cores)
    return max(1, min(cores, int(cores - load + 0.5)))


def cpu_threads(cpus: int | None = None, load: float | None = None, host_cpus: int | None = None,
                cgroup_root: str | Path = CGROUP_ROOT, self_cgroup: str | Path = SELF_CGROUP) -> int:
    """torch's intra-op threads for a CPU run: the cores this process may use that are not already busy.

    torch starts one OpenMP thread per core, and OpenMP threads spin while they wait for each
    other; when other processes hold some of the cores, every matrix product waits for a thread
    that is not running, and a run becomes many times slower. The cores are the CPU affinity
    (`cpus`) capped by the cgroup quota (cgroup_cpus, at least one); threads_for decides whether
    the one-minute load average (`load`; the kernel's CPU count is `host_cpus`) applies to them.
    Verifier workers run between generation and the update, not during them, so they need no
    cores of their own here. Arguments left as None are read from this machine.
    """
    import os

    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    host_cpus = host_cpus or os.cpu_count() or cpus
    quota = cgroup_cpus(cgroup_root, self_cgroup)
    cores = min(cpus, max(1, int(quota))) if quota else cpus
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return threads_for(cores, host_cpus, load)


def set_cpu_threads() -> int:
    """Apply cpu_threads() to torch unless the user fixed the count; returns the count in use."""
    import os

    import torch

    fixed = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    if fixed and fixed.strip().isdigit() and int(fixed) > 0:
        torch.set_num_threads(int(fixed))
    else:
        torch.set_num_threads(cpu_threads())
    return torch.get_num_threads()


def torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def load_tokenizer(model_id: str):
    from transformers import AutoTokenizer

    path = model_path(model_id)
    quiet_progress_bars()
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise BudgetError(f"Cannot load the tokenizer of '{model_id}' ({str(e).splitlines()[0][:120]}); "
                          "offline? Pass a local folder with --model.") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load(model_id: str, *, dtype: str, load_in_4bit: bool, lora: dict, seed: int) -> Loaded:
    """Load the base model and describe the adapter; GRPOTrainer wraps the model with it."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    if not torch.cuda.is_available():
        set_cpu_threads()
    tok = load_tokenizer(model_id)
    kwargs = {"dtype": torch_dtype(dtype)}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(dtype))
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path(model_id), **kwargs)
    except OSError as e:
        raise BudgetError(f"Cannot load '{model_id}' ({str(e).splitlines()[0][:120]}); offline? "
                          "Pass a local folder with --model.") from None
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                             target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM")
    return Loaded(model=model, tokenizer=tok, peft_config=peft_config)
