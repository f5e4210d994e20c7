"""csas_cli.memory.PeakMemory on the CPU: the peak resident set since start(), and how far it rose above the start."""

from __future__ import annotations

import gc

import pytest
import torch

from csas_cli import memory
from csas_cli.memory import Peak, PeakMemory, release_memory

SIZE = 128 * 2**20
"""A tensor of 128 MiB: far above what the test's own bookkeeping allocates."""


def allocate() -> torch.Tensor:
    return torch.ones(SIZE // 4, dtype=torch.float32)  # written, so every page is resident


def test_a_measurement_without_allocations_rises_by_little():
    peak = PeakMemory("cpu")
    peak.start(release=True)
    read = peak.read()
    assert isinstance(read, Peak)
    assert read.rise is not None
    assert read.bytes >= read.rise >= 0
    assert read.rise < SIZE // 8
    assert read.bytes > 0 and read.device == "cpu"


def test_a_large_tensor_between_start_and_read_raises_the_rise_by_about_its_size():
    peak = PeakMemory("cpu")
    peak.start(release=True)
    tensor = allocate()
    read = peak.read()
    assert float(tensor[-1]) == 1.0
    assert read.rise is not None and read.bytes >= read.rise
    assert 0.9 * SIZE <= read.rise <= 1.25 * SIZE
    del tensor


@pytest.mark.slow
def test_the_peak_outlives_the_memory_that_made_it():
    """Freed before read(): the rise is still the tensor's, since it is the high-water mark."""
    peak = PeakMemory("cpu")
    peak.start(release=True)
    tensor = allocate()
    del tensor
    release_memory("cpu")
    assert peak.read().rise >= 0.9 * SIZE
    # A fresh start forgets it.
    gc.collect()
    peak.start(release=True)
    assert peak.read().rise < SIZE // 8


def test_start_resets_the_peak_to_what_is_held_now():
    peak = PeakMemory("cpu")
    held = allocate()
    peak.start()  # after the allocation: what is held is the base, not a rise
    read = peak.read()
    assert read.rise is not None and read.rise < SIZE // 8
    assert read.bytes >= SIZE  # ... but it is part of the peak
    del held


def test_the_record_run_json_keeps():
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    record = peak.read().record()
    assert set(record) == {"bytes", "measure", "device"}
    assert record["device"] == "cpu" and record["bytes"] > 0
    assert record["measure"] == "peak resident set (VmHWM after /proc/self/clear_refs)"


def test_the_measure_names_the_counter_of_each_device_type():
    assert PeakMemory("cuda").measure == "torch.cuda.max_memory_allocated"
    assert PeakMemory(torch.device("cuda", 0)).device_type == "cuda"
    assert PeakMemory(torch.device("cuda", 0)).device == "cuda:0"
    assert "VmHWM" in PeakMemory("cpu").measure


def test_without_the_proc_reset_the_lifetime_peak_stands_in(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise PermissionError("/proc/self/clear_refs")

    monkeypatch.setattr(memory, "open", refuse, raising=False)
    peak = PeakMemory("cpu")
    peak.start()
    read = peak.read()
    assert read.rise is None
    assert read.measure == "peak resident set size (ru_maxrss)"
    assert read.bytes > 0 and read.record()["measure"] == "peak resident set size (ru_maxrss)"
