"""Tests for csas_cli.device_map (finetune.py's device-map table, with csas's fix) and for what csas_cli.training.distributed reads from
torchrun's environment: distributed_env, main_process and training_device. (Those live here rather than in
test_distributed.py, which tests the process group.)"""

from __future__ import annotations

import itertools

import pytest

from csas_cli.device_map import on_cpu, resolve_device_map
from csas_cli.errors import CsasError, SettingsError
from csas_cli.plan import build_plan
from csas_cli.registry import M2M100, MARIAN, MBART50, REGISTRY
from csas_cli.progress import main_process
from csas_cli.settings import FinetuneSettings
from csas_cli.training.distributed import ProcessGroup, distributed_env, training_device

REQUESTS = ("auto", "cpu", "cuda:0", "none", "None", "NONE", None)
WORLD_SIZES = (1, 2, 4)


def expected(qlora: bool, shardable: bool, requested: str | None, world_size: int, local_rank: int):
    """The table, written independently of the implementation."""
    req = None if requested is None or requested.lower() == "none" else requested
    if qlora:
        if world_size > 1:
            # csas's fix of finetune.py's defect: a QLoRA rank is pinned to its own GPU, never spread with "auto".
            return {"": local_rank}
        return req if shardable else None
    if world_size > 1 or not shardable:
        return None
    return req


def ranks(world_size: int) -> range:
    return range(world_size)


CASES = [
    (qlora, shardable, requested, world_size, local_rank)
    for qlora, shardable, requested, world_size in itertools.product(
        (True, False), (True, False), REQUESTS, WORLD_SIZES
    )
    for local_rank in ranks(world_size)
]


@pytest.mark.parametrize("qlora,shardable,requested,world_size,local_rank", CASES)
def test_resolve_device_map_table(qlora, shardable, requested, world_size, local_rank) -> None:
    got = resolve_device_map(
        qlora=qlora, shardable=shardable, requested=requested, world_size=world_size, local_rank=local_rank
    )
    assert got == expected(qlora, shardable, requested, world_size, local_rank)


def test_case_count_is_exhaustive() -> None:
    # 2 qlora x 2 shardable x 7 requests x (1 + 2 + 4 ranks)
    assert len(CASES) == 2 * 2 * len(REQUESTS) * 7


@pytest.mark.parametrize("requested", ["auto", "cpu", "cuda:1"])
def test_qlora_single_process_passes_request_for_shardable(requested: str) -> None:
    assert resolve_device_map(qlora=True, shardable=True, requested=requested, world_size=1, local_rank=0) == requested


@pytest.mark.parametrize("requested", ["auto", "cpu", "cuda:1"])
def test_opus_single_process_is_none_in_both_modes(requested: str) -> None:
    for qlora in (True, False):
        assert resolve_device_map(qlora=qlora, shardable=False, requested=requested, world_size=1, local_rank=0) is None


@pytest.mark.parametrize("world_size,local_rank", [(2, 0), (2, 1), (4, 3)])
def test_qlora_distributed_pins_to_local_rank_never_auto(world_size: int, local_rank: int) -> None:
    for shardable in (True, False):
        got = resolve_device_map(
            qlora=True, shardable=shardable, requested="auto", world_size=world_size, local_rank=local_rank
        )
        assert got == {"": local_rank}
        assert got != "auto"


@pytest.mark.parametrize("world_size", [2, 4])
def test_plain_lora_distributed_is_none(world_size: int) -> None:
    for shardable in (True, False):
        assert resolve_device_map(
            qlora=False, shardable=shardable, requested="auto", world_size=world_size, local_rank=1
        ) is None


def test_pinned_map_is_a_fresh_dict() -> None:
    a = resolve_device_map(qlora=True, shardable=True, requested="auto", world_size=2, local_rank=0)
    b = resolve_device_map(qlora=True, shardable=True, requested="auto", world_size=2, local_rank=0)
    assert a == b and a is not b


def test_shardable_flags_follow_the_is_opus_rule() -> None:
    assert MARIAN.shardable is False
    assert M2M100.shardable is True and MBART50.shardable is True
    for key, spec in REGISTRY.items():
        assert spec.family.shardable is ("opus_mt" not in key), key


# --- torchrun's environment (csas_cli.training.distributed) ---------------------------------------------------


@pytest.mark.parametrize(
    "environ,want",
    [
        ({}, (1, 0)),
        ({"WORLD_SIZE": "", "LOCAL_RANK": ""}, (1, 0)),
        ({"WORLD_SIZE": "  ", "LOCAL_RANK": " "}, (1, 0)),
        ({"WORLD_SIZE": "1"}, (1, 0)),
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (2, 1)),
        ({"WORLD_SIZE": " 4 ", "LOCAL_RANK": "3"}, (4, 3)),
        ({"LOCAL_RANK": "0", "RANK": "7"}, (1, 0)),
        ({"RANK": "x"}, (1, 0)),  # RANK means nothing without a launch
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, (4, 1)),  # the second process of a second node
    ],
)
def test_distributed_env_parses(environ: dict, want: tuple[int, int]) -> None:
    assert distributed_env(environ) == want


@pytest.mark.parametrize(
    "environ,name",
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2.0"}, "WORLD_SIZE"),
        ({"LOCAL_RANK": "x"}, "LOCAL_RANK"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "-1"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "-1"}, "LOCAL_RANK"),
        ({"WORLD_SIZE": "2", "RANK": "one"}, "RANK"),
        ({"WORLD_SIZE": "4", "RANK": "4", "LOCAL_RANK": "0"}, "RANK"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK"),
    ],
)
def test_distributed_env_errors_name_the_variable(environ: dict, name: str) -> None:
    with pytest.raises(SettingsError) as info:
        distributed_env(environ)
    assert isinstance(info.value, CsasError)
    message = str(info.value)
    assert name in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    "device_map,want",
    [({"": 1}, {"": "cpu"}), ({"": 0}, {"": "cpu"}), ("auto", "auto"), ("cpu", "cpu"), (None, None)],
)
def test_on_cpu_a_rank_pinned_map_names_the_cpu(device_map, want) -> None:
    # QLoRA under torchrun pins each rank's model to {"": LOCAL_RANK}; without a GPU that device is the CPU.
    assert on_cpu(device_map) == want
    assert on_cpu(resolve_device_map(qlora=True, shardable=True, requested="auto", world_size=2, local_rank=1)) == {
        "": "cpu"
    }


@pytest.mark.parametrize(
    "environ,want",
    [({}, True), ({"RANK": ""}, True), ({"RANK": "0"}, True), ({"RANK": " 0 "}, True), ({"RANK": "1"}, False),
     ({"RANK": "7", "LOCAL_RANK": "0"}, False)],
)  # fmt: skip
def test_main_process_is_rank_0_or_no_launch(environ: dict, want: bool) -> None:
    assert main_process(environ) is want


def test_training_device_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device(0) == training_device(3) == torch.device("cpu")


def test_training_device_is_the_ranks_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [training_device(rank) for rank in range(4)] == [torch.device("cuda", r) for r in (0, 1, 0, 1)]


@pytest.mark.parametrize("rank,local_rank", [(0, 0), (1, 1), (2, 0), (3, 1)])
def test_on_two_nodes_the_local_rank_picks_the_gpu_and_the_global_rank_the_writer(
    monkeypatch: pytest.MonkeyPatch, rank: int, local_rank: int
) -> None:
    """Two nodes of two GPUs (torchrun --nnodes 2 --nproc-per-node 2): RANK 2 and 3 are the second node's LOCAL_RANK
    0 and 1. The local rank chooses the GPU and QLoRA's placement; the global rank alone says who writes and talks."""
    import torch

    environ = {"WORLD_SIZE": "4", "RANK": str(rank), "LOCAL_RANK": str(local_rank)}
    world_size, got_local = distributed_env(environ)
    assert (world_size, got_local) == (4, local_rank)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert training_device(got_local) == torch.device("cuda", local_rank)
    settings = FinetuneSettings.create(which="m2m100_418m", batch_size=8, grad_accum=2)
    plan = build_plan(settings, world_size=world_size, local_rank=got_local)
    assert plan.resolved.device_map == {"": local_rank} and plan.resolved.global_batch == 4 * 8 * 2
    # The second node's LOCAL_RANK 0 is not the main process: one writer of the run, one console.
    assert main_process(environ) is (rank == 0)
    assert ProcessGroup(world_size, rank, torch.device("cuda", local_rank)).is_main is (rank == 0)
