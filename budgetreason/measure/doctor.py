"""``budgetreason doctor``: check a machine before an hour of GPU time is paid for.

CUDA and the driver, bfloat16, free GPU memory, free disk for checkpoints, and that every
library of the version matrix (``budgetreason.measure.versions``) imports and matches its pin. One
line per check; a problem says how to fix it. ``ok`` is False (the CLI exits 1) when training
on the GPU path would fail here; a CPU-only machine is such a case, and the report says what
still works there.

Imports are tried in a subprocess: importing TRL here would stop Unsloth from patching it later
in the same process (a notebook runs doctor first, then trains).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from budgetreason.measure import versions

GIB = 1024**3
#: Libraries checked, by distribution name, with the module to import and whether it needs CUDA to import.
LIBRARIES = {
    "torch": ("torch", False), "transformers": ("transformers", False), "trl": ("trl", False),
    "peft": ("peft", False), "math-verify": ("math_verify", False), "unsloth": ("unsloth", True),
    "vllm": ("vllm", True), "bitsandbytes": ("bitsandbytes", True),
}
#: What a CPU-only machine can still do.
CPU_WORKS = ("plan any GPU (budgetreason plan --gpu a40)", "train and evaluate the tiny model (budgetreason demo)",
             "report and compare run folders", "score answers with the rewards and Math-Verify")
#: Below this much free GPU memory nothing the planner proposes starts.
MIN_FREE_GPU_GIB = 4.0
IMPORT_TIMEOUT_S = 300


@dataclass
class Check:
    """One check: name (stable, for --json), status ok / warn / fail / skip, what was found, how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        tag = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[self.status]
        return f"{tag} {self.name}: {self.detail}" + (f" — fix: {self.fix}" if self.fix else "")


def doctor(output: str | Path = ".", model: str = "Qwen/Qwen2.5-1.5B-Instruct", show: bool = True) -> dict:
    """Run every check; print one line each (if `show`) and return {"ok", "checks", "still_works"}.

    >>> report = doctor(show=False)  # doctest: +SKIP
    >>> report["ok"], [c["name"] for c in report["checks"]][:3]  # doctest: +SKIP
    (False, ['python', 'cuda', 'driver'])
    """
    checks = run_checks(output, model)
    ok = not any(c.status == "fail" for c in checks)
    cuda = next(c for c in checks if c.name == "cuda").status == "ok"
    report = {"ok": ok, "checks": [asdict(c) for c in checks], "still_works": [] if cuda else list(CPU_WORKS)}
    if show:
        print(format_report(report))
    return report


def format_report(report: dict) -> str:
    lines = [Check(**c).line() for c in report["checks"]]
    problems = sum(c["status"] == "fail" for c in report["checks"])
    if report["still_works"]:
        lines.append("no CUDA GPU is present; what still works here: " + "; ".join(report["still_works"]) + ".")
    lines.append("ready: GPU training should work here." if report["ok"] else
                 f"not ready: {problems} problem(s) above would stop GPU training.")
    return "\n".join(lines)


def run_checks(output: str | Path = ".", model: str = "Qwen/Qwen2.5-1.5B-Instruct") -> list[Check]:
    checks = [_python()]
    torch_check, cuda = _cuda()
    checks += [torch_check, _driver(cuda), _bf16(cuda), _gpu_memory(cuda), _disk(output, model, cuda)]
    checks += _libraries(cuda)
    return checks


def _python() -> Check:
    v = sys.version_info
    if v < (3, 10):
        return Check("python", "fail", f"Python {v.major}.{v.minor}", "use Python 3.10 or newer")
    return Check("python", "ok", f"Python {v.major}.{v.minor}.{v.micro}")


def _cuda() -> tuple[Check, bool]:
    try:
        import torch
    except ImportError:
        return Check("cuda", "fail", "torch is not installed", "pip install -e '.[gpu]'"), False
    if not torch.cuda.is_available():
        built = f"torch {torch.__version__} built without CUDA" if torch.version.cuda is None else \
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
        return Check("cuda", "fail", f"no CUDA GPU is present ({built})",
                     "run on a machine with an NVIDIA GPU and a CUDA build of torch; on a CPU, use --gpu cpu "
                     "with the tiny model"), False
    name = torch.cuda.get_device_name()
    cap = ".".join(map(str, torch.cuda.get_device_capability()))
    return Check("cuda", "ok", f"{name}, compute capability {cap}, CUDA {torch.version.cuda}"), True


def _driver(cuda: bool) -> Check:
    if shutil.which("nvidia-smi") is None:
        return Check("driver", "fail" if cuda else "skip", "nvidia-smi not found",
                     "install the NVIDIA driver (nvidia-smi comes with it)" if cuda else "")
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return Check("driver", "fail", f"nvidia-smi failed: {e}", "check the NVIDIA driver installation")
    if out.returncode != 0:
        return Check("driver", "fail", (out.stderr or out.stdout).strip()[:200] or "nvidia-smi failed",
                     "check the NVIDIA driver installation (a reboot after a driver update)")
    return Check("driver", "ok", "driver " + "; ".join(x.strip() for x in out.stdout.strip().splitlines()))


def _bf16(cuda: bool) -> Check:
    if not cuda:
        return Check("bf16", "skip", "no CUDA GPU")
    import torch

    if torch.cuda.is_bf16_supported():
        return Check("bf16", "ok", "bfloat16 supported")
    return Check("bf16", "warn", "no bfloat16 (pre-Ampere GPU): training runs in float16 with loss scaling",
                 "an Ampere or newer GPU (A10, A40, L4, A100, H100) trains in bfloat16")


def _gpu_memory(cuda: bool) -> Check:
    if not cuda:
        return Check("gpu_memory", "skip", "no CUDA GPU")
    import torch

    free, total = torch.cuda.mem_get_info()
    detail = f"{free / GIB:.1f} of {total / GIB:.1f} GiB free"
    if free < MIN_FREE_GPU_GIB * GIB:
        return Check("gpu_memory", "fail", detail, "stop the other processes on this GPU (nvidia-smi lists them)")
    if free < 0.9 * total:
        return Check("gpu_memory", "warn", detail + "; the planner assumes the whole GPU",
                     "stop the other processes on this GPU, or plan with --vram-gb set to the free memory")
    return Check("gpu_memory", "ok", detail)


def _disk(output: str | Path, model: str, cuda: bool) -> Check:
    """Checkpoints hold the adapter (fp32) and two AdamW moments: 12 bytes per LoRA parameter, kept 3 at a time."""
    from budgetreason.plan.architectures import resolve_model
    from budgetreason.plan.memory import lora_param_count
    from budgetreason.plan.shape import Shape

    target = Path(output).resolve()
    while not target.exists():
        target = target.parent
    free = shutil.disk_usage(target).free
    try:
        arch = resolve_model(model)
    except Exception:  # an unknown model id: size the default model's checkpoints
        arch = resolve_model("Qwen/Qwen2.5-1.5B-Instruct")
    per_checkpoint = lora_param_count(arch, Shape()) * 12
    need = 4 * per_checkpoint  # save_total_limit 3, plus the one being written
    detail = f"{free / GIB:.1f} GiB free in {target}; checkpoints of {arch.id} at rank 256 need about {need / GIB:.1f} GiB"
    if free < need:
        return Check("disk", "fail" if cuda else "warn", detail, "free disk space or pass --output on a larger disk")
    return Check("disk", "ok", detail)


_IMPORT_SCRIPT = """
import importlib, json, sys
out = {}
for mod in sys.argv[1:]:
    try:
        importlib.import_module(mod)
        out[mod] = None
    except BaseException as e:
        out[mod] = (type(e).__name__ + ": " + str(e).strip().splitlines()[0][:200]) if str(e).strip() else type(e).__name__
print("DOCTOR-IMPORTS " + json.dumps(out))
"""


def _try_imports(modules: list[str]) -> dict[str, str | None]:
    """Import each module in one fresh interpreter (in order: unsloth first, as training does)."""
    if not modules:
        return {}
    try:
        r = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT, *modules], capture_output=True, text=True,
                           timeout=IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return dict.fromkeys(modules, f"importing took over {IMPORT_TIMEOUT_S} s")
    for line in r.stdout.splitlines():
        if line.startswith("DOCTOR-IMPORTS "):
            return json.loads(line.split(" ", 1)[1])
    tail = (r.stderr.strip().splitlines() or ["the import process crashed"])[-1][:200]
    return dict.fromkeys(modules, tail)


def _libraries(cuda: bool) -> list[Check]:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    wanted = {**{versions._dist(k): v for k, v in versions.CORE.items()}, **versions.GPU}
    found = {name: versions.installed(name) for name in LIBRARIES}
    importable = [mod for name, (mod, needs_cuda) in LIBRARIES.items() if found[name] and (cuda or not needs_cuda)]
    order = sorted(importable, key=lambda m: m != "unsloth")  # Unsloth before TRL, as in training
    errors = _try_imports(order)
    checks = []
    for name, (mod, needs_cuda) in LIBRARIES.items():
        v, spec = found[name], wanted[name]
        pin = f"'{name}{spec}'"
        if v is None:
            checks.append(_missing(name, cuda, pin))
            continue
        if Version(v) not in SpecifierSet(spec):
            checks.append(Check(name, "fail", f"{v} installed, the matrix wants {spec}", f"pip install {pin}"))
            continue
        if needs_cuda and not cuda:
            checks.append(Check(name, "skip", f"{v} installed; importing it needs a CUDA GPU"))
            continue
        if errors.get(mod):
            checks.append(Check(name, "fail", f"{v} installed but does not import ({errors[mod]})",
                                f"pip install --force-reinstall {pin}"))
            continue
        checks.append(Check(name, "ok", f"{v} imports, matches {spec}"))
    if cuda and found["unsloth"] and not found["bitsandbytes"]:
        for c in checks:
            if c.name == "bitsandbytes":
                c.status, c.detail = "fail", "not installed; Unsloth's from_pretrained imports it even for 16-bit LoRA"
    return checks


def _missing(name: str, cuda: bool, pin: str) -> Check:
    if name in ("torch", "transformers", "trl", "peft", "math-verify"):
        return Check(name, "fail", "not installed", f"pip install {pin}")
    if not cuda:
        return Check(name, "skip", "not installed (the [gpu] extra; needs a CUDA GPU)")
    what = {"unsloth": "the hf back-end trains instead (slower, more memory)",
            "vllm": "generation falls back to transformers' generate (Unsloth's kernels still train: --generation hf)",
            "bitsandbytes": "no 4-bit weights and no 8-bit AdamW"}[name]
    return Check(name, "warn", f"not installed: {what}", f"pip install {pin}")
