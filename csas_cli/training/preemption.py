"""Stopping cleanly when the scheduler asks: SIGTERM (preemption, scancel) or SIGUSR1 (SLURM's --signal warning).

The handler only records the request; the training loop finishes its optimizer step, writes a checkpoint and raises
errors.Preempted (exit code 75), so that a requeued job running the same command with --resume auto continues
exactly.
Under torchrun the processes agree after every step whether any of them was asked to stop, so all of them stop
after the same step and rank 0 writes one checkpoint.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class StopRequest:
    """Records SIGTERM/SIGUSR1 while installed (a context manager); restores the previous handlers on exit.

    It nests: `run_finetune` installs it before the model loads and the training loop enters it again; the handlers
    are installed by the outermost `with` and restored when that one exits.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        self._depth += 1
        # Signal handlers can only be installed from the main thread (tests may drive the loop from others).
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
