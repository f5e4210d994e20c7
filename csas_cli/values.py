"""Setting values given as text, and checks across settings: what settings.py's fields parse and check their values
with (`--lora-targets`, `--report-to`, the --max-tokens budget). Pure functions, each tested."""

from __future__ import annotations

from typing import Sequence

from .errors import SettingsError
from .registry import ALL_LINEAR_TARGETS


def parse_lora_targets(value: str) -> tuple[str, ...]:
    """`--lora-targets`: a comma-separated list of module-name suffixes, or `all-linear`."""
    value = value.strip()
    if value.lower() in ("all-linear", "all_linear"):
        return ALL_LINEAR_TARGETS
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names or any(not n.replace("_", "").replace(".", "").isalnum() for n in names):
        raise SettingsError(f"--lora-targets: expected module names like q_proj,v_proj or all-linear, got {value!r}")
    return names


REPORT_TO = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb"),
             "mlflow": ("mlflow", "mlflow")}  # fmt: skip
"""--report-to's trackers -> (the module each needs, the csas extra that installs it)."""


def parse_report_to(value: str | Sequence[str]) -> str:
    """--report-to as the plan records it: "none", or known tracker names in REPORT_TO's order, comma-separated. A
    tracker whose package is not installed is refused here, before anything loads, naming the extra."""
    import importlib.util

    parts = value.split(",") if isinstance(value, str) else list(value)
    names = {p.strip().lower() for p in parts if p.strip()} - {"none"}
    unknown = sorted(names - set(REPORT_TO))
    if unknown:
        raise SettingsError(f"--report-to: unknown tracker {', '.join(unknown)}; choose from "
                            f"{', '.join(REPORT_TO)} or none")  # fmt: skip
    for name in sorted(names, key=list(REPORT_TO).index):
        module, extra = REPORT_TO[name]
        if importlib.util.find_spec(module) is None:
            raise SettingsError(f"--report-to {name} needs {module}: pip install 'csas[{extra}]'")
    return ",".join(n for n in REPORT_TO if n in names) or "none"


def check_token_budget(max_tokens: int | None, max_source_len: int, max_target_len: int) -> None:
    """A --max-tokens budget must hold the longest pair the length limits let through."""
    longest = max(max_source_len, max_target_len)
    if max_tokens is not None and max_tokens < longest:
        raise SettingsError(
            f"--max-tokens {max_tokens} is below the longest pair a batch may have to hold ({longest} tokens: "
            f"--max-source-len {max_source_len}, --max-target-len {max_target_len}); raise --max-tokens or lower "
            "those limits"
        )


__all__ = ["REPORT_TO", "check_token_budget", "parse_lora_targets", "parse_report_to"]
