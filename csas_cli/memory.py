"""Peak memory, measured one way for training runs (run.json) and benchmarks (csas bench, bench_vs_hf.py).

`PeakMemory.start()` resets the device's peak counter and notes what is held at that moment; `read()` returns the
peak since then (what a job on this hardware must fit) and how far it rose above the start (what one engine
added, for comparing two engines in one process):

- CUDA: torch.cuda.max_memory_allocated (tensors, not the allocator's cache), reset by start().
- CPU: the peak resident set VmHWM, reset to the current resident set through /proc/self/clear_refs; this counts
  every allocation (weights, activations, allocator slack). Where /proc does not allow the reset (not Linux), the
  process's lifetime peak (ru_maxrss) stands in and the rise is unknown.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def release_memory(device: str) -> None:
    """Return freed memory to the device (CUDA cache) or to the OS (glibc heap), so the next peak starts clean."""
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    else:
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_bytes(field_name: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return None


def _lifetime_peak() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


@dataclass(frozen=True)
class Peak:
    """The peak since `PeakMemory.start()`, in bytes."""

    bytes: int
    rise: int | None
    """bytes minus what was held at start (None where the start could not be read)."""
    measure: str
    device: str

    def record(self) -> dict[str, Any]:
        """What run.json keeps."""
        return {"bytes": self.bytes, "measure": self.measure, "device": self.device}


class PeakMemory:
    """The peak memory of what runs between `start()` and `read()` on one device type (cuda or cpu)."""

    def __init__(self, device: Any) -> None:
        self.device_type = getattr(device, "type", str(device))
        self.device = str(device)
        self.base: int | None = None
        self.reset = False
        self.started = False

    @property
    def measure(self) -> str:
        if self.device_type == "cuda":
            return "torch.cuda.max_memory_allocated"
        return "peak resident set (VmHWM after /proc/self/clear_refs)"

    def start(self, release: bool = False) -> None:
        """Reset the peak; `release` first returns freed memory, so a benchmark's measurement starts clean."""
        if release:
            release_memory(self.device_type)
        self.started = True
        if self.device_type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.base, self.reset = int(torch.cuda.memory_allocated(self.device)), True
            return
        self.base, self.reset = None, False
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # 5: reset the peak resident set size to the current one
            self.base, self.reset = _status_bytes("VmRSS"), True

    def read(self) -> Peak:
        if self.device_type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            peak = int(torch.cuda.max_memory_allocated(self.device))
            return Peak(peak, None if self.base is None else max(0, peak - self.base), self.measure, self.device)
        high = _status_bytes("VmHWM") if self.reset else None
        if high is None:
            return Peak(_lifetime_peak(), None, "peak resident set size (ru_maxrss)", self.device)
        return Peak(high, None if self.base is None else max(0, high - self.base), self.measure, self.device)
