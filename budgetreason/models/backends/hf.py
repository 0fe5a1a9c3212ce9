"""transformers + PEFT: the CPU path, and the plain-GPU path under TRL's own vLLM colocation."""

from __future__ import annotations

from budgetreason.errors import BudgetError
from budgetreason.models.backends import Loaded, model_path, quiet_progress_bars

#: Set to a whole number to fix torch's CPU threads (OMP_NUM_THREADS, when set, is respected as well).
THREADS_ENV = "BUDGETREASON_THREADS"


def cpu_threads(cpus: int | None = None, load: float | None = None) -> int:
    """torch's intra-op threads for a CPU run: the cores this process may use that are not already busy.

    torch starts one OpenMP thread per core, and OpenMP threads spin while they wait for each
    other; when other processes hold some of the cores, every matrix product waits for a thread
    that is not running, and a run becomes many times slower. The one-minute load average
    (other processes, as this one has not started working yet) says how many cores are busy.
    Verifier workers run between generation and the update, not during them, so they need no
    cores of their own here.

    >>> cpu_threads(cpus=2, load=0.1), cpu_threads(cpus=2, load=1.2), cpu_threads(cpus=16, load=40.0)
    (2, 1, 1)
    """
    import os

    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cpus, int(cpus - load + 0.5)))


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
