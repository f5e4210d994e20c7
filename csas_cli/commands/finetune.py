"""`csas finetune`: one run, with finetune.py's flags and defaults (training/run.py trains it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from ..layout import ADAPTER_DIR
from ..progress import main_process, print_json
from ..settings import FinetuneSettings


def run(values: Mapping[str, Any], given: frozenset[str] = frozenset(), *, dry_run: bool = False) -> None:
    """Train one run from its settings by flat name (`given`: those the command line gave, over a settings file's
    `config`), or print its plan (`dry_run`); rank 0 ends with the adapter's path."""
    if values.get("config") is not None:
        from ..config import over_file, read_config

        values = over_file(values, given, read_config(values["config"]))
    settings = FinetuneSettings.create(**values)
    if dry_run:
        from ..training.run import dry_run_record

        print_json(dry_run_record(settings))
        return
    from ..training.run import run_finetune

    result = run_finetune(settings)
    if main_process():
        sys.stdout.write(f"adapter: {Path(result.run_dir) / ADAPTER_DIR}\n")


__all__ = ["run"]
