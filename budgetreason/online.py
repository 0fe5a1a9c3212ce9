"""Is the Hugging Face hub reachable? Answered in about a second, asked again after a minute.

Offline, huggingface_hub and datasets retry every request for half a minute and print a
warning per retry before failing. Before the first hub request budgetreason probes the hub
endpoint with one short TCP connection; when it cannot be reached (or ``HF_HUB_OFFLINE`` is
set) it switches the process to offline mode, so every later load reads the local cache only
and a miss fails at once with budgetreason's one-line error.

Behind a proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, either case, as huggingface_hub
reads them) the hub host is often unreachable directly; then the proxy is probed instead, and
when a proxy variable is set that the endpoint would not use, nothing is probed (huggingface_hub
decides). An offline answer from the probe holds for RETRY_S: a long-lived process (a notebook
kernel) that saw one network blip probes again on a later load and, when the hub answers,
gets back the offline settings it had. ``HF_HUB_OFFLINE`` set by the user is never undone.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from urllib.parse import urlparse

#: Seconds the probe waits for a TCP connection to the hub endpoint (or its proxy).
PROBE_TIMEOUT_S = 1.0
#: Seconds a probe's answer holds before the next hub load probes again.
RETRY_S = 60.0
_TRUE = {"1", "on", "yes", "true"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_PROXY_VARS = tuple(f"{s}_proxy" for s in ("https", "http", "all"))
_state: dict = {}
#: The user's values of _OFFLINE_VARS from before go_offline() changed them (None: unset).
_saved: dict[str, str | None] = {}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def offline_reason(now: float | None = None) -> str | None:
    """Why the hub cannot be used (a few words), or None when it answers. The answer holds for RETRY_S."""
    now = time.monotonic() if now is None else now
    if _state and now - _state["at"] < RETRY_S:
        return _state["reason"]
    if _true(os.environ.get("HF_HUB_OFFLINE")) and not _saved:
        reason = "offline: HF_HUB_OFFLINE is set"  # the user's own setting: no probe, never undone
    else:
        reason = _probe()
        if reason:
            reason += f"; the hub is probed again after {RETRY_S:.0f} s"
            go_offline()
        else:
            go_online()
    _state.update(reason=reason, at=now)
    return reason


def _probe() -> str | None:
    """One TCP connection to where huggingface_hub's requests go first: the endpoint, or its proxy."""
    url = urlparse(endpoint())
    scheme = url.scheme or "https"
    host, port = url.hostname or "huggingface.co", url.port or (80 if scheme == "http" else 443)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(host, proxies):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or "", p.port or {"https": 443, "socks5": 1080, "socks5h": 1080}.get(p.scheme, 80)
        what = f"the proxy {host}:{port}"
    elif any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return None  # a proxy setting this endpoint does not use (or bypasses): let huggingface_hub decide
    else:
        what = host
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return f"offline: {what} cannot be reached"
    return None


def go_offline() -> None:
    """Make huggingface_hub, datasets and transformers read the local cache only (no retries)."""
    if not _saved:
        _saved.update({name: os.environ.get(name) for name in _OFFLINE_VARS})
    for name in _OFFLINE_VARS:
        os.environ[name] = "1"
    _sync_modules()


def go_online() -> None:
    """Undo go_offline(): the user's own values of the offline variables come back."""
    if not _saved:
        return
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved.clear()
    _sync_modules()


def _sync_modules() -> None:
    """Modules imported earlier read the variables at import time; give their copies the same values."""
    hub = _true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))
    data = os.environ.get("HF_DATASETS_OFFLINE")
    values = {"huggingface_hub.constants": {"HF_HUB_OFFLINE": hub},
              "datasets.config": dict.fromkeys(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"),
                                               hub if data is None else _true(data))}
    for module, names in values.items():
        mod = sys.modules.get(module)
        for name, value in names.items():
            if mod is not None and hasattr(mod, name):
                setattr(mod, name, value)


def reset() -> None:
    """Forget the probe's answer and undo its offline switch (tests)."""
    go_online()
    _state.clear()
