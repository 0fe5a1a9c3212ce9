"""Model catalog: the architecture numbers the planner needs, without downloading weights.

Known models live in ``catalog/models.json``. Any other Hugging Face id or local folder is
read from its ``config.json`` (local folder, then the local Hugging Face cache, then the hub).
Parameter counts are computed from the numbers here and tested against transformers models
built on the meta device, so LoRA sizes in a plan equal what PEFT reports.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from budgetreason import catalog as catalog_file
from budgetreason.errors import BudgetError

#: The seven linear projections of a Llama/Qwen/Gemma decoder layer, in PEFT's names.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Shorthands accepted by ``--targets``.
TARGET_GROUPS = {
    "all": ALL_LINEAR,
    "all-linear": ALL_LINEAR,
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
    "qv": ("q_proj", "v_proj"),
}
#: Built-in model shipped with the package (see budgetreason.models.tiny).
TINY_MODEL_ID = "tiny-arith"

_FAMILIES = {"qwen2": "qwen2", "qwen3": "qwen3", "llama": "llama", "mistral": "llama",
             "gemma3": "gemma3", "gemma3_text": "gemma3"}


@dataclass(frozen=True)
class ModelArch:
    """Architecture numbers of a decoder-only model (the fields of its config.json we use)."""

    id: str
    family: str
    """qwen2 (q/k/v bias), qwen3 (q/k norm), llama, gemma3 (q/k norm, four norms per layer)."""
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    max_context: int
    """max_position_embeddings: prompt + completion must fit in it."""
    attention_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    """Gemma 3's local layers keep only this many tokens of KV cache."""
    sliding_window_pattern: int | None = None
    """Every n-th Gemma 3 layer is global; the others use the sliding window."""
    source: str = ""
    verified: bool = True

    # ---- exact parameter counts -------------------------------------------------------
    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection in one decoder layer."""
        h, hd = self.hidden_size, self.head_dim
        q, kv = self.num_heads * hd, self.num_kv_heads * hd
        i = self.intermediate_size
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Weights of all decoder-layer projections (what 4-bit quantisation shrinks)."""
        return self.num_layers * sum(a * b for a, b in self.linear_shapes().values())

    def embedding_params(self) -> int:
        """Input embedding plus an untied LM head (kept in 16-bit even in 4-bit mode)."""
        e = self.vocab_size * self.hidden_size
        return e if self.tie_word_embeddings else 2 * e

    def small_params(self) -> int:
        """Norms and biases: everything that is neither a projection nor an embedding."""
        h, hd = self.hidden_size, self.head_dim
        norms_per_layer = 4 if self.family == "gemma3" else 2
        per_layer = norms_per_layer * h
        if self.qk_norm:
            per_layer += 2 * hd
        if self.attention_bias:
            per_layer += (self.num_heads + 2 * self.num_kv_heads) * hd
        return self.num_layers * per_layer + h  # + final norm

    def param_count(self) -> int:
        """Total parameters, exactly as ``model.num_parameters()`` counts them."""
        return self.linear_params() + self.embedding_params() + self.small_params()

    def lora_params(self, rank: int, targets: tuple[str, ...] = ALL_LINEAR) -> int:
        """Trainable LoRA parameters: r·(d_in + d_out) per targeted projection and layer (PEFT's A and B)."""
        shapes = self.linear_shapes()
        unknown = [t for t in targets if t not in shapes]
        if unknown:
            raise BudgetError(f"Unknown LoRA target(s) {', '.join(unknown)}; use names from {', '.join(ALL_LINEAR)}.")
        return self.num_layers * rank * sum(sum(shapes[t]) for t in targets)

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV cache bytes for one token across all layers: 2 (K and V) · layers · kv_heads · head_dim · bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes

    def kv_bytes(self, tokens: int, dtype_bytes: int = 2) -> int:
        """KV cache for one sequence of `tokens`, honouring Gemma 3's sliding-window layers."""
        per_layer = 2 * self.num_kv_heads * self.head_dim * dtype_bytes
        if self.sliding_window and self.sliding_window_pattern:
            n_global = self.num_layers // self.sliding_window_pattern
            n_local = self.num_layers - n_global
            return per_layer * (n_global * tokens + n_local * min(tokens, self.sliding_window))
        return per_layer * self.num_layers * tokens

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = self.param_count()
        return d


def parse_targets(targets: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"all"``, ``"attn"``, ``"q_proj,v_proj"`` or a list -> a tuple of projection names."""
    if targets is None:
        return ALL_LINEAR
    if isinstance(targets, str):
        if targets.strip().lower() in TARGET_GROUPS:
            return TARGET_GROUPS[targets.strip().lower()]
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    out: list[str] = []
    for t in targets:
        for name in TARGET_GROUPS.get(t.lower(), (t,)):
            if name not in ALL_LINEAR:
                raise BudgetError(f"Unknown LoRA target '{name}'; use {', '.join(ALL_LINEAR)} or all, attn, mlp.")
            if name not in out:
                out.append(name)
    if not out:
        raise BudgetError("--targets is empty; use all, attn, mlp or a comma list such as q_proj,v_proj.")
    return tuple(out)


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelArch]:
    """Catalog models by Hugging Face id, in catalog order."""
    raw = catalog_file.load("models")
    return {m["id"]: ModelArch(**m) for m in raw["models"]}


def from_config(config: dict, model_id: str, source: str = "") -> ModelArch:
    """Build a ModelArch from a config.json dict (text configs of multimodal models included)."""
    cfg = config.get("text_config") or config
    mtype = cfg.get("model_type") or config.get("model_type", "")
    family = _FAMILIES.get(mtype)
    try:
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        arch = ModelArch(
            id=model_id,
            family=family or "llama",
            num_layers=int(cfg["num_hidden_layers"]),
            hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]),
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab_size=int(cfg["vocab_size"]),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            max_context=int(cfg.get("max_position_embeddings") or 4096),
            attention_bias=family == "qwen2" or bool(cfg.get("attention_bias", False)),
            qk_norm=family in ("qwen3", "gemma3"),
            sliding_window=cfg.get("sliding_window") if family == "gemma3" else None,
            sliding_window_pattern=cfg.get("sliding_window_pattern") if family == "gemma3" else None,
            source=source or f"config.json of {model_id}",
            verified=family is not None,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BudgetError(f"config.json of '{model_id}' lacks a decoder field ({e}); is it a causal language model?") from e
    return arch


def tiny_model_dir() -> Path:
    """Folder of the built-in tiny-arith model (weights, tokenizer, config)."""
    return Path(str(resources.files("budgetreason").joinpath("assets", TINY_MODEL_ID)))


def _find_catalog(name: str) -> ModelArch | None:
    cat = catalog()
    if name in cat:
        return cat[name]
    low = name.lower()
    for mid, arch in cat.items():
        if low in (mid.lower(), mid.split("/")[-1].lower()):
            return arch
    return None


def canonical_model_id(name: str) -> str:
    """The catalog id for a short or differently cased name; other names unchanged."""
    arch = _find_catalog(name)
    return arch.id if arch else name


def resolve_model(name: str) -> ModelArch:
    """Architecture of a catalog model, a local folder, or a hub id (cache first). One clear line on failure."""
    if name == TINY_MODEL_ID:
        cfg = json.loads((tiny_model_dir() / "config.json").read_text())
        return from_config(cfg, TINY_MODEL_ID, source="built-in tiny model (budgetreason/assets/tiny-arith)")
    arch = _find_catalog(name)
    if arch:
        return arch
    path = Path(name).expanduser()
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise BudgetError(f"Folder '{name}' has no config.json; point --model at a model folder or a hub id.")
        return from_config(json.loads(cfg_file.read_text()), name, source=str(cfg_file))
    if looks_like_path(name):
        raise BudgetError(f"--model {name}: no such folder. Give the folder that holds config.json, or a hub id (org/name).")
    if "/" not in name:
        raise BudgetError(f"Unknown model '{name}'. See `budgetreason models`, or pass a hub id (org/name) or a local folder.")
    cfg_file = _config_from_hub(name)
    return from_config(json.loads(Path(cfg_file).read_text()), name, source=f"config.json of {name} (hub)")


#: Weights in one file, or an index that names every shard (what transformers loads, in its order).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def weights_cached(model_id: str, cache_dir: str | Path | None = None) -> bool:
    """config.json and the weights (one file, or every shard its index names) are in the hub cache."""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> str | None:
        try:
            found = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
        except Exception:  # an id the hub would reject (bad characters): not cached
            return None
        return found if isinstance(found, str) else None

    if not cached("config.json"):
        return False
    if any(cached(name) for name in WEIGHT_FILES):
        return True
    for index in filter(None, map(cached, WEIGHT_INDEXES)):
        try:
            shards = set(json.loads(Path(index).read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if shards and all(cached(shard) for shard in shards):
            return True
    return False


def require_weights_reachable(model_id: str, cache_dir: str | Path | None = None) -> None:
    """Fail in one line, before any heavy import, when a hub model is neither cached nor downloadable.

    Catalog models are planned from the catalog without the hub; training needs the weights, and
    offline the loader would only fail after torch and transformers have loaded (seconds, then a
    tokenizer error). "Cached" means config.json and the weights (weights_cached): `plan` with a
    hub id fetches config.json alone, which is no sign that the weights were ever downloaded.
    """
    if model_id == TINY_MODEL_ID or Path(model_id).expanduser().is_dir():
        return
    from budgetreason.online import offline_reason

    if weights_cached(model_id, cache_dir):
        return
    reason = offline_reason()
    if reason:
        try:
            from huggingface_hub import try_to_load_from_cache

            config_only = isinstance(try_to_load_from_cache(model_id, "config.json", cache_dir=cache_dir), str)
        except Exception:
            config_only = False
        what = ("'s weights are not in the local cache (only its config.json, which `plan` fetches)" if config_only
                else " is not in the local cache")
        raise BudgetError(f"Model '{model_id}'{what} and the hub is out of reach ({reason}). "
                          f"Download it where the hub can be reached (hf download {model_id}), or pass a local folder "
                          "with --model.")


def looks_like_path(name: str) -> bool:
    """A name no hub id can be (./x, /x, ~/x, a/b/c): the user meant a local folder."""
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name


def _config_from_hub(repo_id: str) -> str:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from budgetreason.online import offline_reason

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub would reject (bad characters): treat as not cached
        cached = None
    if isinstance(cached, str):
        return cached
    reason = offline_reason()
    if reason:
        raise BudgetError(f"Model '{repo_id}' is neither in the catalog nor in the local cache, and the hub is out of "
                          f"reach ({reason}). Pass a local folder with config.json, or pick one from `budgetreason models`.")
    try:
        return hf_hub_download(repo_id, "config.json", etag_timeout=5)
    except Exception as e:  # missing, gated, a bad id: all the same to the user
        kind = type(e).__name__
        raise BudgetError(
            f"Model '{repo_id}' is not in the catalog and the hub gives no config.json for it ({kind}: missing, "
            "gated or misspelt?). Pass a local folder with config.json, or pick one from `budgetreason models`."
        ) from None
