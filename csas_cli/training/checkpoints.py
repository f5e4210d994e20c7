"""Checkpoints: zero-padded step folders, written under a temporary name and renamed only when complete.

A checkpoint holds everything needed to continue exactly: the adapter, optimizer, scheduler, loss scaler, every RNG
state and the step (batch order is a pure function of seed and epoch, so the step locates the data position), and a
copy of the run's best/ adapter as it was at that step. best/ itself is written the same way: complete, then renamed.
"""

from __future__ import annotations

import json
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import OutputError
from ..files import follow_umask
from ..layout import BEST_RECORD, CHECKPOINT_ADAPTER, STEP_DIR
from ..progress import say

STATE_FILE = "trainer_state.json"
BEST_COPY = "best"
"""The checkpoint's copy of the run's best/ folder."""


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted saves are not listed)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


REQUIRED_FILES = ("adapter/adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", STATE_FILE)


class CheckpointError(Exception):
    """A checkpoint folder is incomplete or unreadable."""


def rng_state() -> dict[str, Any]:
    """Every RNG csas's training touches, as tensors and plain values (loadable with weights_only=True)."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_state(path: Path) -> dict[str, Any]:
    """The checkpoint's trainer state, after checking that every file of a complete checkpoint is there."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable {STATE_FILE} ({exc})") from None
    return state


def newest_usable_checkpoint(root: Path, warn: Callable[[str], None] = say) -> Path | None:
    """The newest checkpoint whose files are complete; damaged newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(root)):
        try:
            read_state(path)
        except CheckpointError as exc:
            warn(f"warning: skipping damaged checkpoint: {exc}")
            continue
        return path
    return None


def restore_checkpoint(path: Path, *, model: Any, optimizer: Any, scheduler: Any, scaler: Any | None) -> dict[str, Any]:
    """Load a checkpoint into a freshly set-up run; returns its trainer state. Raises CheckpointError if damaged."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = read_state(path)
    try:
        weights = load_file(str(path / CHECKPOINT_ADAPTER / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model, weights)
        if getattr(result, "unexpected_keys", None):
            raise CheckpointError(f"{path}: adapter does not fit the model ({len(result.unexpected_keys)} unknown keys)")
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        if scaler is not None and (path / "scaler.pt").is_file():
            scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
        set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file means this checkpoint cannot be used
        raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    return state


def failure_reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:200]


def is_write_failure(exc: BaseException) -> bool:
    # torch.save reports a failed write as a RuntimeError, safetensors as a SafetensorError.
    return isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError"


def save_failure(root: Path, final: Path, exc: BaseException) -> str:
    """One line: what failed, what survived, how much room is left, what to do."""
    reason = failure_reason(exc)
    kept = latest_checkpoint(root)
    try:
        free = f"; {shutil.disk_usage(root).free / 1e6:,.0f} MB free there"
    except OSError:
        free = ""
    return (
        f"cannot write checkpoint {final} ({reason}{free}); "
        f"{f'the previous checkpoint {kept.name} is intact' if kept else 'no earlier checkpoint exists'}; "
        "free some space and rerun the same command with --resume auto"
    )


def save_adapter(model: Any, directory: Path) -> None:
    """The LoRA adapter alone (adapter_model.safetensors + adapter_config.json). csas never trains the embeddings,
    so peft is told not to save them rather than left to find out, which makes it look the base up on the hub (a
    warning on an offline node, a request on every save elsewhere)."""
    model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    follow_umask(directory)


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    scaler: Any | None,
    state: dict[str, Any],
    keep: int,
    best: Path | None = None,
) -> Path:
    """Write checkpoint `step` and keep only the newest `keep`; an interrupted save leaves the older ones intact.

    `best`: the run's best/ folder, copied in when it exists (see `restore_best`). A save that fails (a full disk, a
    quota) removes its half-written folder and raises OutputError in one line.
    """
    import torch

    if keep < 1:
        raise ValueError(f"save_checkpoint: keep must be at least 1, got {keep}")
    final = root / step_dir_name(step)
    with staged(root / (final.name + ".tmp"), lambda exc: save_failure(root, final, exc)) as tmp:
        save_adapter(model, tmp / CHECKPOINT_ADAPTER)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        if best is not None and best.is_dir():
            shutil.copytree(best, tmp / BEST_COPY)
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old)
    return final


@contextmanager
def staged(tmp: Path, failure: Callable[[BaseException], str]) -> Iterator[Path]:
    """An empty folder `tmp` (and its parents) to write a checkpoint or best/ into before it is renamed in place.

    If the writing fails, `tmp` is removed; a write failure (a full disk, a quota) becomes OutputError(failure(exc)),
    one line, and anything else propagates as it is.
    """
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(exc):
            raise OutputError(failure(exc)) from None
        raise


# -- the best adapter ------------------------------------------------------------------------------------------


def swap_in(tmp: Path, final: Path) -> None:
    """Put the complete folder `tmp` in place of `final`. The old folder is renamed aside before the new one is
    renamed in, so `final` is never half-written; a crash between the two renames leaves the old one as `<final>.old`.
    """
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save_best(best_dir: Path, model: Any, record: dict[str, Any]) -> None:
    """Write the adapter and best.json (`record`) to `best_dir`, complete under a temporary name, then swap it in.

    A failed write (a full disk) removes the temporary folder, keeps the previous best and raises OutputError.
    """
    def failure(exc: BaseException) -> str:
        return (
            f"cannot write the best adapter {best_dir} ({failure_reason(exc)}); free some space and rerun the same "
            "command with --resume auto"
        )

    with staged(best_dir.with_name(best_dir.name + ".tmp"), failure) as tmp:
        save_adapter(model, tmp)
        (tmp / BEST_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    swap_in(tmp, best_dir)


def restore_best(checkpoint: Path, best_dir: Path) -> None:
    """Make `best_dir` what it was when `checkpoint` was written: its copy, or nothing when it has none.

    An evaluation after the checkpoint may have replaced best/ before the run stopped; the resumed run evaluates that
    step again, and must compare against the best the checkpoint knew.
    """
    saved = checkpoint / BEST_COPY
    if saved.is_dir():
        tmp = best_dir.with_name(best_dir.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(saved, tmp)
        swap_in(tmp, best_dir)
    elif best_dir.exists():
        shutil.rmtree(best_dir)
