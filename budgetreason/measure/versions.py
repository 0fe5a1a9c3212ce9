"""The version matrix: one set of libraries that installs together on a GPU machine.

The newest releases do not all fit. Read from each wheel's Requires-Dist (November 2026):
unsloth 2026.10.9 caps trl at 1.15.0, transformers at 5.17.0 and datasets below 5;
vllm 0.33.0 pins torch 2.14.0 and wants transformers >=5.16.1,<5.21. CPU installs (CI) use
the same trl/transformers/peft so tests exercise what GPU users run; only torch differs
(2.13.0 CPU build in CI, 2.14.0 with CUDA under the [gpu] extra).
"""

from __future__ import annotations

from importlib import metadata

#: Core requirements as pinned in pyproject.toml (a test keeps the two equal).
CORE = {
    "torch": ">=2.6,<2.15",
    "transformers": "==5.17.0",
    "trl": "==1.15.0",
    "peft": "==0.21.2",
    "accelerate": "==1.15.0",
    "datasets": "==4.8.5",
    "tokenizers": ">=0.23.2,<0.24",
    "huggingface-hub": ">=1.31,<2",
    "math-verify[antlr4_13_2]": "==0.9.0",
    "typer": "==0.29.2",
    "rich": ">=13.8",
    "pyyaml": ">=6.0",
    "matplotlib": ">=3.8",
    "safetensors": ">=0.6.2",
}
#: The [gpu] extra.
GPU = {
    "unsloth": "==2026.10.9",
    "unsloth-zoo": "==2026.10.9",
    "vllm": "==0.33.0",
    "bitsandbytes": ">=0.45.5,!=0.46.0,!=0.48.0",
}
#: torch as the [gpu] extra resolves it (vllm's exact pin).
GPU_TORCH = "2.14.0"
#: Constraints the GPU packages put on the rest, copied from their wheels' Requires-Dist.
UPSTREAM = {
    "unsloth 2026.10.9": {"torch": ">=2.4.0,<2.15.0", "trl": "!=0.19.0,<=1.15.0,>=0.18.2",
                          "transformers": "!=5.0.0,!=5.1.0,<=5.17.0,>=4.52.4", "peft": "!=0.11.0,>=0.18.0",
                          "datasets": "!=4.0.*,!=4.1.0,!=4.4.*,!=4.5.0,<5.0.0,>=3.4.1", "accelerate": ">=0.34.1",
                          "huggingface-hub": ">=0.34.0"},
    "unsloth-zoo 2026.10.9": {"torch": ">=2.4.0,<2.15.0", "trl": "!=0.19.0,<=1.15.0,>=0.18.2",
                              "transformers": "!=5.0.0,!=5.1.0,<=5.17.0,>=4.52.4", "peft": "!=0.11.0,>=0.18.0",
                              "datasets": "!=4.0.*,!=4.1.0,!=4.4.*,!=4.5.0,<5.0.0,>=3.4.1"},
    "vllm 0.33.0": {"torch": "==2.14.0", "transformers": ">=5.16.1,<5.21.0", "huggingface-hub": ">=1.31.0",
                    "tokenizers": ">=0.23.2", "safetensors": ">=0.6.2"},
    "trl 1.15.0": {"transformers": ">=4.56.2", "datasets": ">=4.7.0", "accelerate": ">=1.4.0"},
    "transformers 5.17.0": {"huggingface-hub": "<2.0,>=1.5.0", "tokenizers": "<0.24.0,>=0.23.1",
                            "safetensors": ">=0.8.0"},
    "datasets 4.8.5": {"huggingface-hub": ">=0.25.0"},
}


def _dist(name: str) -> str:
    return name.split("[")[0]


def installed(name: str) -> str | None:
    try:
        return metadata.version(_dist(name))
    except metadata.PackageNotFoundError:
        return None


def check_installed(include_gpu: bool = False) -> list[str]:
    """Lines describing every installed core (and, if asked, GPU) package that breaks the matrix."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    problems = []
    wanted = dict(CORE, **(GPU if include_gpu else {}))
    for name, spec in wanted.items():
        v = installed(name)
        if v is None:
            problems.append(f"{_dist(name)} is not installed (wants {spec})")
        elif Version(v) not in SpecifierSet(spec):
            problems.append(f"{_dist(name)} {v} is installed, budgetreason wants {spec}")
    return problems


def format_report() -> str:
    lines = ["package            installed      wanted"]
    for name, spec in {**CORE, **GPU}.items():
        lines.append(f"{_dist(name):18} {installed(name) or '-':14} {spec}")
    problems = check_installed()
    lines.append("ok: the core matrix holds" if not problems else "problems:\n  " + "\n  ".join(problems))
    return "\n".join(lines)
