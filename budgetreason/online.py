"""Is the Hugging Face hub reachable? Asked once per process, answered in about a second.

Offline, huggingface_hub and datasets retry every request for half a minute and print a
warning per retry before failing. Before the first hub request budgetreason probes the hub
endpoint with one short TCP connection; when it cannot be reached (or ``HF_HUB_OFFLINE`` is
set) it switches the process to offline mode, so every later load reads the local cache only
and a miss fails at once with budgetreason's one-line error.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

#: Seconds the probe waits for a TCP connection to the hub endpoint.
PROBE_TIMEOUT_S = 1.0
_TRUE = {"1", "on", "yes", "true"}
_state: dict[str, str | None] = {}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_reason() -> str | None:
    """Why the hub cannot be used (a few words), or None when it answers. Probes once per process."""
    if "reason" in _state:
        return _state["reason"]
    reason = None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        reason = "offline: HF_HUB_OFFLINE is set"
    else:
        url = urlparse(endpoint())
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        except OSError:
            reason = f"offline: {host} cannot be reached"
    _state["reason"] = reason
    if reason:
        go_offline()
    return reason


def go_offline() -> None:
    """Make huggingface_hub, datasets and transformers read the local cache only (no retries)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    # Modules imported before this read the variable at import time; set their copies too.
    for module in ("huggingface_hub.constants", "datasets.config"):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, "HF_HUB_OFFLINE"):
            mod.HF_HUB_OFFLINE = True


def reset() -> None:
    """Forget the probe's answer (tests)."""
    _state.clear()
