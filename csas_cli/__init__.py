"""csas: LoRA/QLoRA fine-tuning of English<->French translation models on a domain's own translations.

From Python: `finetune_model`, `finetuning_pipeline` and their `FinetuneResult` (csas_cli.api), the errors they raise
(csas_cli.errors.CsasError and its subclasses). They are imported on first use, so that `import csas_cli` (and
`csas --help`) stays instant.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

API = {"finetune_model": "api", "finetuning_pipeline": "api", "FinetuneResult": "api", "CsasError": "errors",
       "ConfigError": "config"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in API:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])


__all__ = ["ConfigError", "CsasError", "FinetuneResult", "__version__", "finetune_model", "finetuning_pipeline"]
