"""transformers + PEFT: the CPU path, and the plain-GPU path under TRL's own vLLM colocation."""

from __future__ import annotations

from budgetreason.backends import Loaded, model_path, quiet_progress_bars
from budgetreason.errors import BudgetError


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
