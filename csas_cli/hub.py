"""The model hub as a cluster node sees it: before a hub id loads, one quick request says whether the hub can be
reached, so that a machine without internet fails (or falls back to its cache) in seconds, not after the hub
client's half-minute of retries.

With HF_HUB_OFFLINE set nothing is asked (the hub client reads its cache only). Without it, an unreachable hub
makes a cached model load from the cache, in offline mode for the rest of the process (said once), and an uncached
one is refused in one line naming --model-id and HF_HUB_OFFLINE.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import ModelError
from .progress import say

PROBE_TIMEOUT_S = 5.0
"""How long the reachability request may take: a DNS failure or a refused connection answer at once, a firewall
that drops packets takes the whole timeout."""


def offline() -> bool:
    """Whether the hub client is in offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE, or set by go_offline)."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@functools.cache
def unreachable() -> str | None:
    """Why the hub cannot be reached (one line), None when it answers: one HEAD request to the endpoint through the
    hub client's own session (its proxies, HF_ENDPOINT, certificates), without retries. Asked once per process."""
    from huggingface_hub.utils import get_session

    try:
        response = get_session().head(endpoint(), timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timed out, TLS, proxy: all mean "not reachable"
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text if len(text) <= 120 else text[:117] + "..."
    if response.status_code == 407 or response.status_code >= 500:
        # A cluster's HTTP proxy answers for a hub it cannot reach (or will not let through).
        return f"HTTP {response.status_code} from {'the proxy' if response.status_code == 407 else 'the endpoint'}"
    return None


def cached(model_id: str, revision: str | None) -> bool:
    """Whether this machine's hub cache holds `model_id`'s config at `revision` (the default branch when None)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str)


def go_offline() -> None:
    """Offline mode for the rest of this process, as HF_HUB_OFFLINE=1 would have set it (and for its children)."""
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"


def download_hint(model_id: str, revision: str | None) -> str:
    return f"`hf download {model_id}{'' if revision is None else f' --revision {revision}'}`"


def check_hub(model_id: str, revision: str | None = None) -> None:
    """Before `model_id` loads: nothing for a local snapshot or in offline mode; else the hub must answer, or the
    model come from the cache."""
    if Path(model_id).expanduser().exists() or offline():
        return
    why = unreachable()
    if why is None:
        return
    if cached(model_id, revision):
        go_offline()
        say(
            f"note: the hub ({endpoint()}) cannot be reached ({why}); --model-id {model_id} loads from this "
            "machine's hub cache (set HF_HUB_OFFLINE=1 to skip this check)"
        )
        return
    raise ModelError(
        f"--model-id {model_id}: the hub ({endpoint()}) cannot be reached from this machine ({why}) and the model "
        f"is not in its hub cache; download it where there is internet ({download_hint(model_id, revision)}) and set "
        "HF_HUB_OFFLINE=1 on machines without it, or pass --model-id a local snapshot"
    )


def hub_notes(model_id: str, revision: str | None = None) -> tuple[str, ...]:
    """What --dry-run warns about a hub id that a run here could not load (the job may run on another machine, so a
    warning, not an error)."""
    if Path(model_id).expanduser().exists() or cached(model_id, revision):
        return ()
    if offline():
        why = "HF_HUB_OFFLINE is set"
    else:
        reason = unreachable()
        if reason is None:
            return ()
        why = f"the hub ({endpoint()}) cannot be reached: {reason}"
    return (
        f"warning: --model-id {model_id} is not in this machine's hub cache and {why}, so a run here would fail; "
        f"download it where there is internet ({download_hint(model_id, revision)}) or pass --model-id a local "
        "snapshot",
    )


__all__ = ["check_hub", "hub_notes", "offline", "unreachable"]
