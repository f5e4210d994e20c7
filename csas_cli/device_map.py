"""The device-map resolver: finetune.py's table, as a pure function, with one fix for distributed QLoRA.

    QLoRA on:  None for families that cannot be sharded (OPUS/Marian), else --device-map;
               under distributed training (WORLD_SIZE > 1) {"": LOCAL_RANK} instead, because 4-bit layers are
               trained on the process's own GPU and "auto" would spread one rank's model over every GPU.
    QLoRA off: None under distributed training (each rank holds a whole copy), None for OPUS models,
               else --device-map.
"""

from __future__ import annotations

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
