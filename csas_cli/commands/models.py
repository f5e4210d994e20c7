"""`csas models` and `csas config show`: the registry and the finetune-all table, and the settings a file comes to."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ..progress import print_json, table_console
from ..registry import FINETUNE_ALL_TABLE, REGISTRY, split_keys


def run(*, as_json: bool = False) -> None:
    """`csas models`: the registry with each model's finetune-all row, as a table (or JSON)."""
    rows = [
        {
            "index": i,
            "key": key,
            "hub_id": spec.hub_id,
            "family": spec.family.name,
            "source_langs": list(spec.source_langs),
            "batch_size": FINETUNE_ALL_TABLE[key].batch_size,
            "lr": FINETUNE_ALL_TABLE[key].learning_rate,
        }
        for i, (key, spec) in enumerate(REGISTRY.items())
    ]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("#", "key", "base model", "family", "trains on", "batch", "lr")
    for r in rows:
        table.add_row(
            str(r["index"]), r["key"], r["hub_id"], r["family"], "+".join(r["source_langs"]) + " sources",
            str(r["batch_size"]), f"{r['lr']:g}",
        )  # fmt: skip
    table_console().print(table)


def show_config(which: Sequence[str] | None = None, config: Path | None = None) -> None:
    """`csas config show`: the effective settings as TOML, the finetune-all table (and `config`'s file over it)."""
    from ..config import read_config, render_toml
    from ..training.batch import all_settings

    loaded = None if config is None else read_config(config)
    settings_list = all_settings(data=Path("data.jsonl"), output_dir=Path("outputs"), only=split_keys(which),
                                 config=loaded)  # fmt: skip
    sys.stdout.write(render_toml(settings_list, source=None if config is None else str(config)))


__all__ = ["run", "show_config"]
