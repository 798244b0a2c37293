"""Whether the Hugging Face hub can be used: asked once per process, and fast.

`datasets` and `huggingface_hub` retry an unreachable hub for about 25 seconds (five retries
with back-off) before they fail, and then fail with a raw ``ConnectionError``. evalkit asks the
endpoint once, with a short timeout; when it cannot be reached, it switches both libraries
offline for the rest of the process, exactly as ``HF_HUB_OFFLINE=1`` does, and says so in one
line. Every task then reads its offline source (a shipped file, a package's data, or
``--data-dir``) or fails naming ``--data-dir``.
"""

from __future__ import annotations

import functools
import os
import sys

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0  # override with EVALKIT_HUB_TIMEOUT (seconds)


def switched_off(*variables: str) -> bool:
    """Whether the user switched the hub off (HF_HUB_OFFLINE by default)."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in variables or ("HF_HUB_OFFLINE",))


def hub_offline(*variables: str) -> bool:
    """The hub is switched off by one of these variables, or cannot be reached (asked once)."""
    if switched_off(*variables):
        return True
    reason = unreachable_reason()
    if reason is None:
        return False
    _switch_offline(reason)
    return True


@functools.cache
def unreachable_reason() -> str | None:
    """None when the endpoint answers at all (any HTTP status); else why it could not be reached."""
    import requests  # only when a hub source is about to be used

    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    try:
        timeout = float(os.environ.get("EVALKIT_HUB_TIMEOUT", PROBE_TIMEOUT_S))
    except ValueError:
        timeout = PROBE_TIMEOUT_S
    try:
        requests.head(endpoint, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return f"{endpoint} cannot be reached ({type(exc).__name__})"
    return None


def _switch_offline(reason: str) -> None:
    """HF_HUB_OFFLINE=1 for this process and its children, also in libraries already imported
    (they read the variables once, at import)."""
    if switched_off(*OFFLINE_VARIABLES[:2]):
        return
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True
        datasets_config.HF_DATASETS_OFFLINE = True
    print(f"evalkit: the hub is offline: {reason}; using local and shipped data only", file=sys.stderr)
