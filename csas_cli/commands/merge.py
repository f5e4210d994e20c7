"""`csas merge-all`: every finished run of a finetune-all output root, merged (training/merging.py folds one run's
adapter into its base): best/ where the run has one, else lora/ (`--adapter best|last`), said in one line per run;
runs already merged from the adapter chosen are skipped."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ModelError, batch_exit_code, describe_failure
from ..files import read_json_record
from ..inference.source import MERGE_RECORD
from ..layout import ADAPTER_DIR, RUN_JSON, run_state
from ..modeling import SAVE_DTYPE
from ..progress import say as stderr_line
from ..registry import MODEL_KEYS, REGISTRY, check_model_root, model_id_under
from ..training.merging import (
    AdapterChoice,
    MergeResult,
    adapter_sha256,
    check_adapter,
    check_dtype,
    choose_adapter,
    merge_run,
)


@dataclass(frozen=True)
class MergeOutcome:
    name: str
    status: str
    """ok, skipped (unfinished run, or already merged from the same adapter) or failed."""
    message: str = ""
    out_dir: Path | None = None
    adapter: str | None = None
    """The adapter merged (or found merged): best or last."""


def run_folders(runs_dir: Path) -> list[Path]:
    """Subfolders of a finetune-all output root that hold csas runs, in the registry's order, then by name."""
    if not runs_dir.is_dir():
        raise ModelError(f"RUNS_DIR {runs_dir}: no such directory")
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and run_state(p) in ("finished", "unfinished")]
    if not runs:
        raise ModelError(f"RUNS_DIR {runs_dir}: no csas runs in it (subfolders with run.json or finished.json)")
    order = {key: i for i, key in enumerate(MODEL_KEYS)}
    return sorted(runs, key=lambda p: (order.get(p.name, len(order)), p.name))


def already_merged(adapter: Path, out_dir: Path) -> bool:
    """OUT_DIR holds a merge of this very adapter folder's weights (a rerun of merge-all has nothing to do for it).
    `adapter`: the adapter folder chosen (RUN/best or RUN/lora; a run directory means its lora/)."""
    record = read_json_record(out_dir / MERGE_RECORD)
    folder = adapter if (adapter / "adapter_config.json").is_file() else adapter / ADAPTER_DIR
    sha = adapter_sha256(folder) if record else None
    return sha is not None and record.get("adapter_sha256") == sha


def chosen_adapter(run_dir: Path, adapter: str | None) -> AdapterChoice:
    """The adapter of a finished run that merge-all merges (training.merging.choose_adapter); the merge checks it."""
    return choose_adapter(run_dir, run_dir, run_dir / ADAPTER_DIR, adapter)


def merge_all(
    runs_dir: Path,
    out_root: Path,
    *,
    dtype: str = SAVE_DTYPE,
    overwrite: bool = False,
    model_root: Path | None = None,
    adapter: str | None = None,
    say: Callable[[str], None] = stderr_line,
    merge_one: Callable[..., MergeResult] = merge_run,
) -> list[MergeOutcome]:
    """Merge every finished run under RUNS_DIR into OUT_DIR/<name>, each its best/ adapter where it has one (or
    `adapter` best|last for every run); one failure does not stop the others."""
    check_dtype(dtype)
    check_adapter(adapter)
    check_model_root(model_root)
    outcomes = []
    for run_dir in run_folders(Path(runs_dir)):
        name, out_dir = run_dir.name, Path(out_root) / run_dir.name
        if run_state(run_dir) != "finished":
            say(f"{name}: unfinished run (no finished.json), skipped")
            outcomes.append(MergeOutcome(name, "skipped", "unfinished"))
            continue
        try:
            choice = chosen_adapter(run_dir, adapter)
        except Exception as exc:  # noqa: BLE001 - --adapter best of a run without best/, no lora/: this run fails
            logged, summary = describe_failure(exc)
            say(f"{name}: {logged}")
            outcomes.append(MergeOutcome(name, "failed", summary))
            continue
        if not overwrite and already_merged(choice.path, out_dir):
            say(f"{name}: {out_dir} already holds this adapter merged ({choice.path.name}/), skipped (--overwrite "
                "merges again)")  # fmt: skip
            outcomes.append(MergeOutcome(name, "skipped", "already merged", out_dir, choice.kind))
            continue
        if not overwrite and out_dir.is_dir() and any(out_dir.iterdir()):
            held = read_json_record(out_dir / MERGE_RECORD).get("adapter_choice")
            of = f" (of its {held} adapter)" if held else ""
            say(f"{name}: {out_dir} holds another merge{of}, skipped (--overwrite replaces it with "
                f"{choice.path.name}/)")  # fmt: skip
            outcomes.append(MergeOutcome(name, "skipped", "holds another merge", out_dir, held))
            continue
        which = run_which(run_dir)
        model_id = model_id_under(model_root, which) if which is not None else None
        say(f"{name}: merging into {out_dir}: {choice.describe()}")
        try:
            merge_one(run_dir, out_dir, dtype=dtype, overwrite=overwrite, model_id=model_id, adapter=choice.kind,
                      say=say)  # fmt: skip
            outcomes.append(MergeOutcome(name, "ok", "", out_dir, choice.kind))
        except Exception as exc:  # noqa: BLE001 - one run's failure, even a bug, must not cost the others their merge
            logged, summary = describe_failure(exc)
            say(f"{name}: {logged}")
            outcomes.append(MergeOutcome(name, "failed", summary))
    return outcomes


def run_which(run_dir: Path) -> str | None:
    plan = read_json_record(run_dir / RUN_JSON).get("plan")
    which = plan.get("which") if isinstance(plan, dict) else None
    return which if which in REGISTRY else None


def print_merge_summary(outcomes: Sequence[MergeOutcome], stream: Any = None) -> None:
    import sys

    from rich.table import Table

    from ..progress import table_console
    from ..progress import status_cell

    table = Table("run", "status", "adapter", "merged model", "note", title="merge-all")
    for o in outcomes:
        folder = {"best": "best/", "last": "lora/"}.get(o.adapter or "", "-")
        table.add_row(o.name, status_cell(o.status), folder, str(o.out_dir or "-"), o.message)
    table_console(stream or sys.stderr).print(table)


def run(run_dir: Path, out_dir: Path, *, dtype: str = SAVE_DTYPE, model_id: str | None = None,
        revision: str | None = None, overwrite: bool = False, adapter: str | None = None) -> None:  # fmt: skip
    """`csas merge`: merge one run, then say where (and, for a model of both directions, how to use it)."""
    result = merge_run(run_dir, out_dir, dtype=dtype, overwrite=overwrite, model_id=model_id, revision=revision,
                       adapter=adapter, say=stderr_line)  # fmt: skip
    if result.both_directions:
        sys.stderr.write(
            f"{result.which} translates both ways, so no target language is forced: `csas translate` needs "
            "--source-lang, and transformers users pass forced_bos_token_id=tokenizer.get_lang_id(target)\n"
        )
    sys.stdout.write(f"merged: {result.out_dir}\n")


def run_all(runs_dir: Path, out_dir: Path, *, dtype: str = SAVE_DTYPE, model_root: Path | None = None,
            overwrite: bool = False, adapter: str | None = None) -> int:  # fmt: skip
    """`csas merge-all`: merge every finished run, print the table; the exit code (errors.batch_exit_code)."""
    outcomes = merge_all(runs_dir, out_dir, dtype=dtype, overwrite=overwrite, model_root=model_root, adapter=adapter,
                         say=stderr_line)  # fmt: skip
    print_merge_summary(outcomes)
    return batch_exit_code([o.status for o in outcomes])


__all__ = [
    "run",
    "run_all",
    "MergeOutcome",
    "already_merged",
    "merge_all",
    "print_merge_summary",
    "run_folders",
]
