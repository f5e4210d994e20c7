"""The device-map resolver: the seed's table, as a pure function.

    QLoRA on:  None for families that cannot be sharded (OPUS/Marian), else --device-map;
               under distributed training (WORLD_SIZE > 1) {"": LOCAL_RANK} instead, because 4-bit layers are
               trained on the process's own GPU and "auto" would spread one rank's model over every GPU.
    QLoRA off: None under distributed training (each rank holds a whole copy), None for OPUS models,
               else --device-map.
"""

from __future__ import annotations

from typing import Mapping

from .errors import SettingsError

DeviceMap = None | str | dict[str, int | str]


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


def distributed_env(environ: Mapping[str, str]) -> tuple[int, int]:
    """(world_size, local_rank) from torchrun's environment variables; (1, 0) outside a distributed launch."""
    values = []
    for name, default in (("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        raw = environ.get(name, "")
        try:
            values.append(int(raw) if raw.strip() else default)
        except ValueError:
            raise SettingsError(f"environment variable {name}={raw!r} is not an integer") from None
    world_size, local_rank = values
    if world_size < 1:
        raise SettingsError(f"environment variable WORLD_SIZE={world_size} must be at least 1")
    if local_rank < 0:
        raise SettingsError(f"environment variable LOCAL_RANK={local_rank} must not be negative")
    return world_size, local_rank
