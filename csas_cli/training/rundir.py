"""The run directory: guarding it before a run, and `RunDirectory`, the one writer of it.

Every write during a run goes through one `RunDirectory`, so "what does a run directory contain, and when" has one
answer: `create` (a fresh run) or `rewind` (a resumed one), then metrics, log lines, checkpoints and best/ as the
run goes, then `finish`. A `RunDirectory(None)` writes nothing (the processes other than rank 0, benchmarks).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence, TextIO

from .. import layout
from ..errors import OutputError
from ..files import now_iso, write_json_atomic, write_text_atomic
from ..progress import say
from . import checkpoints


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
    state = layout.run_state(run_dir)
    if state == "empty" and ((run_dir / "config.json").exists() or any(run_dir.glob("*.safetensors"))):
        raise OutputError(f"--output-dir: {run_dir} holds a model, not a csas run; choose another --output-dir")
    if overwrite:
        return state
    if state == "finished":
        raise OutputError(f"--output-dir: {run_dir} holds a finished run; pass --overwrite to replace it")
    if state == "unfinished":
        raise OutputError(
            f"--output-dir: {run_dir} holds an unfinished run (no {layout.FINISHED}); pass --resume auto to continue "
            "it or --overwrite to start it over"
        )
    return state


class RunLock:
    """One csas process per run directory: an exclusive OS lock (flock) on RUN_DIR/.csas.lock, which names its
    holder (pid, host, start). The kernel releases it when the process ends, however it ends, so a killed job
    never blocks its rerun; a second csas on a locked run is refused before it reads or writes anything else.

    `acquire` creates the run directory when it is absent, and `release` removes it again if nothing else was
    written into it (a run that failed while loading leaves no trace). Under torchrun rank 0 alone takes it, on one
    node or several. A shared file system mounted without locks gets a warning, and the run goes on unguarded."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / layout.LOCK_FILE
        self.fd: int | None = None
        self.created = False

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            return self
        self.created = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--output-dir: cannot create {self.run_dir} ({exc.strerror or exc})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError(f"--output-dir: cannot create {self.path} ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(fd)
                os.close(fd)
                raise OutputError(
                    f"--output-dir: {self.run_dir} is in use by another csas ({holder}); wait for it to end, or "
                    "choose another --output-dir"
                ) from None
            except OSError as exc:  # a shared file system mounted without locks (Lustre's noflock, NFS's nolock)
                os.close(fd)
                self.path.unlink(missing_ok=True)
                say(f"warning: --output-dir {self.run_dir}: its file system does not lock files "
                    f"({exc.strerror or exc}); csas cannot refuse a second process training this run")  # fmt: skip
                return self
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the holder removed the file as it released it: lock the new one
                break
            os.close(fd)
        import socket

        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {now_iso()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None
        if self.created:
            try:
                self.run_dir.rmdir()  # only if empty: nothing was written
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def lock_holder(run_dir: Path) -> str | None:
    """Who trains into `run_dir` now (its lock file's line), or None when no process holds its lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None
    try:
        fd = os.open(Path(run_dir) / layout.LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(fd)
    except OSError:  # no locks on this file system: nobody can be said to hold it
        return None
    finally:
        os.close(fd)
    return None


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's artifacts (only csas's own), finished.json first so no stale marker survives."""
    for name in layout.RUN_ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class RunDirectory:
    """The one writer of a run directory; with `path` None every write is skipped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._metrics: TextIO | None = None
        self._log: TextIO | None = None
        self._trackers: Any = None

    @property
    def writes(self) -> bool:
        return self.path is not None

    # -- the start of a run -------------------------------------------------------------------------------------
    def create(self, record: dict[str, Any]) -> None:
        """A fresh run: clear a previous run's artifacts, then write run.json."""
        if self.path is None:
            return
        clear_run_dir(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / layout.RUN_JSON, record)

    def rewind(self, checkpoint: Path, step: int, note: dict[str, Any], evaluated: bool = True) -> None:
        """A resumed run: put best/ back as `checkpoint` knew it, drop the metrics logged after its `step` (they
        will be logged again), and add `note` to run.json's list of resumes. `evaluated`: False when the checkpoint
        was written during the evaluation after its step, which is done again: an evaluation logged at that step
        by an earlier resume is dropped too."""
        if self.path is None:
            return
        checkpoints.restore_best(checkpoint, self.path / layout.BEST_DIR)
        metrics = self.path / layout.METRICS
        if metrics.exists():
            kept = [r for r in layout.read_metrics(metrics)
                    if r.get("step", 0) < step or (r.get("step", 0) == step and (evaluated or "eval_loss" not in r))]
            write_text_atomic(metrics, "".join(json.dumps(r) + "\n" for r in kept))
        self.update_record(lambda record: record.setdefault("resumed", []).append(note))

    def update_record(self, change: Any) -> None:
        """Apply `change(record)` to run.json in place."""
        if self.path is None:
            return
        record = json.loads((self.path / layout.RUN_JSON).read_text(encoding="utf-8"))
        change(record)
        write_json_atomic(self.path / layout.RUN_JSON, record)

    def open_trackers(self, names: Sequence[str], plan: dict[str, Any]) -> None:
        """Open --report-to's trackers (training/tracking.py) with the metrics kept so far, and keep their run ids in
        trackers.json, so that a resumed run continues the same tracker runs."""
        if self.path is None or not names:
            return
        from .tracking import open_trackers

        metrics = self.path / layout.METRICS
        history = layout.read_metrics(metrics) if metrics.exists() else []
        self._trackers, ids = open_trackers(names, self.path, plan, history)
        if ids:
            write_json_atomic(self.path / layout.TRACKER_IDS, ids)

    # -- during the run -----------------------------------------------------------------------------------------
    def write_metrics(self, record: dict[str, Any]) -> None:
        """One line of metrics.jsonl, flushed so that a crashed run keeps its curve; then the same to the trackers."""
        if self.path is None:
            return
        if self._metrics is None:
            self._metrics = open(self.path / layout.METRICS, "a", encoding="utf-8")
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._trackers is not None:
            self._trackers.log(record)

    def write_log(self, line: str) -> None:
        """One line of train.log (the Reporter's copy of the console)."""
        if self.path is None:
            return
        if self._log is None:
            self._log = open(self.path / layout.LOG, "a", encoding="utf-8")
        self._log.write(line + "\n")
        self._log.flush()

    def save_checkpoint(self, step: int, **state: Any) -> Path | None:
        """checkpoints/step-NNNNNN, with a copy of best/ (see checkpoints.save_checkpoint for `state`)."""
        if self.path is None:
            return None
        root, best = self.path / layout.CHECKPOINTS_DIR, self.path / layout.BEST_DIR
        return checkpoints.save_checkpoint(root, step, best=best, **state)

    def save_best(self, model: Any, record: dict[str, Any]) -> None:
        if self.path is not None:
            checkpoints.save_best(self.path / layout.BEST_DIR, model, record)

    # -- the end ------------------------------------------------------------------------------------------------
    def finish(self, model: Any, tokenizer: Any, peak_memory: dict[str, Any], record: dict[str, Any]) -> None:
        """The final adapter, the tokenizer, the peak memory in run.json, and finished.json last: its presence is
        the promise that everything else is complete."""
        if self.path is None:
            return
        checkpoints.save_adapter(model, self.path / layout.ADAPTER_DIR)
        tokenizer.save_pretrained(str(self.path))
        self.update_record(lambda run: run.__setitem__("peak_memory", peak_memory))
        write_json_atomic(self.path / layout.FINISHED, record)

    def close(self) -> None:
        if self._trackers is not None:
            self._trackers.close()
            self._trackers = None
        for handle in (self._metrics, self._log):
            if handle is not None:
                handle.close()
        self._metrics = self._log = None
