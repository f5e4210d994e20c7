"""The device-map resolver: finetune.py's table, as a pure function, with one fix for distributed QLoRA; and the
check of a --device-map value against its form and against the GPUs this machine has.

    QLoRA on:  None for families that cannot be sharded (OPUS/Marian), else --device-map;
               under distributed training (WORLD_SIZE > 1) {"": LOCAL_RANK} instead, because 4-bit layers are
               trained on the process's own GPU and "auto" would spread one rank's model over every GPU.
    QLoRA off: None under distributed training (each rank holds a whole copy), None for OPUS models,
               else --device-map.
"""

from __future__ import annotations

import re

from .errors import HardwareError, SettingsError

DeviceMap = None | str | dict[str, int | str]

PLACEMENTS = ("auto", "balanced", "balanced_low_0", "sequential", "cpu", "none")
"""The named --device-map values: accelerate's strategies, the CPU, and none (no map)."""

GPU_PLACEMENT = re.compile(r"^cuda(?::(\d+))?$")
"""A --device-map value that places the whole model on one GPU: cuda or cuda:N."""


def check_device_map_form(requested: str) -> None:
    """--device-map is a named placement or one GPU (pure)."""
    value = requested.strip().lower()
    if value not in PLACEMENTS and not GPU_PLACEMENT.match(value):
        raise SettingsError(
            f"--device-map {requested}: not a placement csas knows; use one of {', '.join(PLACEMENTS)}, or cuda:N"
        )


def gpu_index(requested: str) -> int | None:
    """The GPU a --device-map value names (cuda: 0), None for a named placement."""
    match = GPU_PLACEMENT.match(requested.strip().lower())
    if match is None:
        return None
    return int(match.group(1) or 0)


def check_device_map(requested: str, cuda_devices: int) -> None:
    """--device-map against the GPUs torch sees on this machine (pure: the count is given), so that a map naming a
    GPU that is not there is refused naming the flag, before anything loads."""
    index = gpu_index(requested)
    if index is None:
        return
    if cuda_devices == 0:
        raise HardwareError(
            f"--device-map {requested}: torch sees no CUDA GPU on this machine (a CPU-only torch build, no GPU "
            "allocated, or CUDA_VISIBLE_DEVICES empty); use --device-map auto or cpu"
        )
    if index >= cuda_devices:
        raise HardwareError(
            f"--device-map {requested}: torch sees {cuda_devices} CUDA GPU{'s' if cuda_devices > 1 else ''} here "
            f"(cuda:0 to cuda:{cuda_devices - 1})"
        )


def resolve_device_map(
    *, qlora: bool, shardable: bool, requested: str | None, world_size: int, local_rank: int
) -> DeviceMap:
    """The device map to load the base model with.

    `requested` is the --device-map value ("auto", "cpu", "cuda:0", ...; None or "none" means no map).
    """
    if requested is not None and requested.lower() == "none":
        requested = None
    distributed = world_size > 1
    if qlora:
        if distributed:
            return {"": local_rank}
        return requested if shardable else None
    if distributed or not shardable:
        return None
    return requested


def on_cpu(device_map: DeviceMap) -> DeviceMap:
    """The map for a machine without a GPU: a pinned map ({"": LOCAL_RANK} under torchrun) names the CPU instead."""
    if isinstance(device_map, dict):
        return {module: "cpu" for module in device_map}
    return device_map
