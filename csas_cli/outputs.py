"""The run directory: guarding what is there, and writing run.json, metrics.jsonl, the log and finished.json.

Layout of <output_dir>/<which>/:
    run.json          the resolved plan, library versions, data fingerprint (written first)
    metrics.jsonl     one object per logged training step and per evaluation
    train.log         a copy of the console log
    checkpoints/      step-000200/ ... (the newest few)
    best/             the adapter of the best evaluation so far, with best.json (step, metric, value)
    lora/             the final adapter (safetensors): the last step's, which need not be the best
    tokenizer files   so the run directory works as a model directory with its adapter
    finished.json     written last; its presence means the run completed
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .errors import OutputError

FINISHED = "finished.json"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
LOG = "train.log"
ADAPTER_DIR = "lora"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
# best.tmp and best.old: what an interrupted replacement of best/ can leave (see checkpoints.swap_in).
RUN_ARTIFACTS = (FINISHED, RUN_JSON, METRICS, LOG, ADAPTER_DIR, BEST_DIR, f"{BEST_DIR}.tmp", f"{BEST_DIR}.old",
                 CHECKPOINTS_DIR)  # fmt: skip


def run_state(run_dir: Path) -> str:
    """'finished', 'unfinished' (a csas run that did not complete), 'empty' or 'absent'."""
    if not run_dir.exists():
        return "absent"
    if (run_dir / FINISHED).exists():
        return "finished"
    if (run_dir / RUN_JSON).exists() or (run_dir / CHECKPOINTS_DIR).exists():
        return "unfinished"
    return "empty"


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_run_dir(run_dir: Path, overwrite: bool) -> str:
    """Refuse, before anything is loaded or written, to replace a run the user did not ask to replace."""
    existing = nearest_existing(run_dir)
    if not existing.is_dir():
        raise OutputError(f"--output-dir: {existing} exists and is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--output-dir: {existing} is not writable")
    state = run_state(run_dir)
    if state == "empty" and ((run_dir / "config.json").exists() or any(run_dir.glob("*.safetensors"))):
        raise OutputError(f"--output-dir: {run_dir} holds a model, not a csas run; choose another --output-dir")
    if overwrite:
        return state
    if state == "finished":
        raise OutputError(f"--output-dir: {run_dir} holds a finished run; pass --overwrite to replace it")
    if state == "unfinished":
        raise OutputError(
            f"--output-dir: {run_dir} holds an unfinished run (no {FINISHED}); pass --resume auto to continue it "
            "or --overwrite to start it over"
        )
    return state


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's artifacts (only csas's own), finished.json first so no stale marker survives."""
    for name in RUN_ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` as it is (no newline translation) so that a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that a reader never sees a half-written file."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json_record(path: Path) -> dict[str, Any]:
    """A JSON object written by csas (run.json, finished.json, csas_merge.json), or {} when it is missing, unreadable
    or not an object: for reports that go on without it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("csas", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "sentencepiece", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl, flushed so a crashed run keeps its curve.

    With no path it discards every record (the processes other than rank 0 under torchrun).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: TextIO | None = open(path, "a", encoding="utf-8") if path is not None else None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
