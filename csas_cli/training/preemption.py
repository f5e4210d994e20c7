"""Stopping cleanly when the scheduler asks: SIGTERM (preemption, scancel) or SIGUSR1 (SLURM's --signal warning), and
when the user presses Ctrl-C (SIGINT).

The handler only records the request; the training loop finishes its optimizer step (an evaluation is abandoned
between two batches, and done again on resume), writes a checkpoint and raises errors.Preempted (exit code 75), so
that a requeued job running the same command with --resume auto continues exactly; after Ctrl-C during the steps
the same happens with errors.Interrupted (exit code 130). A second Ctrl-C,
or one while the model loads or the adapter is saved, aborts at once (KeyboardInterrupt): the run then resumes from
its last periodic checkpoint.
Under torchrun the processes agree after every step whether any of them was asked to stop, so all of them stop
after the same step and rank 0 writes one checkpoint.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from ..errors import Interrupted, Preempted
from ..progress import say

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class StopRequest:
    """Records SIGTERM/SIGUSR1/SIGINT while installed (a context manager); restores the previous handlers on exit.

    It nests: `run_finetune` installs it before the model loads and the training loop enters it again; the handlers
    are installed by the outermost `with` and restored when that one exits.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.training = False
        """Set by the training loop while it runs steps: only then does Ctrl-C wait for the step to end (while the
        model loads, or the adapter is saved, Ctrl-C interrupts at once, as it always did)."""
        self.evaluating = False
        """Set by the training loop during an evaluation, which a stop request abandons between two batches."""
        self._interrupts = 0
        self._previous: dict[int, object] = {}
        self._depth = 0

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if name == "SIGINT":
            self._interrupts += 1
            if self._interrupts > 1 or not self.training:
                raise KeyboardInterrupt  # a second Ctrl-C, or one with no step to finish: the user wants out now
            now = "this evaluation" if self.evaluating else "after this step"
            say(f"csas: Ctrl-C: stopping {now} and writing a checkpoint (Ctrl-C again aborts at once)")
        if self.signal_name is None:  # the first signal names the stop (torchrun forwards Ctrl-C as SIGTERM)
            self.signal_name = name

    def stopped(self, what: str) -> Preempted:
        """The error that ends the run once the loop has stopped: Interrupted after Ctrl-C (exit 130), else
        Preempted (exit 75); `what` says what was saved."""
        return (Interrupted if self.signal_name == "SIGINT" else Preempted)(what)

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
