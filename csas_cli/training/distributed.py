"""Several processes, one run: the torch.distributed set-up and the few collectives the training loop needs.

Under `torchrun --nproc_per_node N -m csas_cli finetune ...` every process runs the same recipe on its share of each
optimizer step (`batches.rank_share`), DistributedDataParallel averages the gradients, and only rank 0 writes the
run directory. A single process gets the same object with world size 1, where every collective is the identity, so
the recipe reads the same either way and a single process computes exactly what it computed before.

On several nodes (`torchrun --nnodes N --rdzv-backend c10d ...` on each) every node has its own LOCAL_RANK 0: the
local rank only chooses the process's GPU; the global rank (`ProcessGroup.rank`) chooses everything else, so the run
is the same as that many processes on one node.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Mapping, TypeVar

from ..errors import CsasError, SettingsError

T = TypeVar("T")


def distributed_env(environ: Mapping[str, str]) -> tuple[int, int]:
    """(world_size, local_rank) from torchrun's environment variables; (1, 0) outside a distributed launch.

    LOCAL_RANK is the process's place on its node and picks its GPU (and a QLoRA model's placement); RANK, its place
    in the whole run, decides everything else (who writes the run, its share of each step, its dropout masks), and
    is read from the process group once joined. On one node the two are equal; on several they are not, so RANK is
    only checked here: an integer from 0 to WORLD_SIZE - 1 under a launch."""
    world_size, local_rank = env_int(environ, "WORLD_SIZE", 1), env_int(environ, "LOCAL_RANK", 0)
    if world_size < 1:
        raise SettingsError(f"environment variable WORLD_SIZE={world_size} must be at least 1")
    if local_rank < 0:
        raise SettingsError(f"environment variable LOCAL_RANK={local_rank} must not be negative")
    if world_size > 1:
        rank = env_int(environ, "RANK", 0)
        if not 0 <= rank < world_size:
            raise SettingsError(f"environment variable RANK={rank} must be from 0 to WORLD_SIZE - 1 ({world_size - 1})")
    return world_size, local_rank


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SettingsError(f"environment variable {name}={raw!r} is not an integer") from None


def training_device(local_rank: int) -> Any:
    """The process's own device: its GPU under torchrun, else the first GPU, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


class ProcessGroup:
    """This process's place in the run: world size, global rank, and where collectives' tensors live."""

    def __init__(self, world_size: int = 1, rank: int = 0, device: Any = None) -> None:
        self.world_size = world_size
        self.rank = rank
        self.device = device
        """cuda:LOCAL_RANK under nccl, cpu under gloo; None for a single process."""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes outputs and talks to the user."""
        return self.rank == 0

    # -- life cycle ----------------------------------------------------------------------------------------------
    @classmethod
    def join(cls, world_size: int, local_rank: int) -> "ProcessGroup":
        """Join torchrun's process group (nccl on GPUs, gloo on CPUs) unless this process already has; a no-op for a
        single process.

        The group lives until the process exits: finetune-all and sweeps train several runs in one process, and
        torch.distributed does not reliably join again after leaving.
        """
        if world_size == 1:
            return cls()
        import atexit

        import torch
        import torch.distributed as dist

        if dist.is_initialized():
            return cls.current()
        device = training_device(local_rank)
        try:
            if device.type == "cuda":
                # Before the group exists, so that nccl's communicator and every later collective use this GPU.
                torch.cuda.set_device(device)
                dist.init_process_group("nccl", device_id=device)
            else:
                dist.init_process_group("gloo")
        except ValueError as exc:  # a WORLD_SIZE without torchrun's other variables (RANK, MASTER_ADDR, ...)
            raise SettingsError(
                f"WORLD_SIZE={world_size}: cannot join the process group ({exc}); launch with torchrun"
            ) from None
        atexit.register(leave)
        return cls.current()

    @classmethod
    def current(cls) -> "ProcessGroup":
        """The process group this process has joined, or a single process when there is none."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        nccl = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        return cls(dist.get_world_size(), dist.get_rank(), device)

    # -- collectives ---------------------------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensor: Any) -> Any:
        """Sum `tensor` over every process, in place; returns it."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on at least one (a stop request, for instance)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def gather_objects(self, obj: T) -> list[T]:
        """Every process's `obj` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only and hand its result, or the CsasError it raised, to every process.

        For decisions that read shared state (the output directory): every process must act on the same answer.
        """
        if not self.distributed:
            return fn()
        import torch.distributed as dist

        payload: list[Any] = [None]
        if self.is_main:
            try:
                payload[0] = ("ok", fn())
            except CsasError as exc:
                payload[0] = ("error", exc)
        dist.broadcast_object_list(payload, src=0)
        kind, value = payload[0]
        if kind == "error":
            raise value
        return value

    # -- the model -----------------------------------------------------------------------------------------------
    def data_parallel(self, model: Any) -> Any:
        """The model as the training loop calls it: wrapped in DistributedDataParallel, or itself."""
        if not self.distributed:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        on_gpu = self.device is not None and self.device.type == "cuda"
        # The only buffers are constant (sinusoidal positions): broadcasting them before every forward is waste.
        # Newer torch releases rename the flag; older ones that pyproject.toml still allows know only the old name.
        params = inspect.signature(DistributedDataParallel).parameters
        no_buffer_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        return DistributedDataParallel(
            model,
            device_ids=[self.device.index] if on_gpu else None,
            # Every LoRA weight gets a gradient in every step: searching the graph for unused ones is pure cost.
            find_unused_parameters=False,
            **{no_buffer_sync: False},
        )

    def accumulating(self, model: Any, sync: bool) -> ContextManager[Any]:
        """Around a micro-batch's forward and backward: all-reduce gradients only when `sync` (the step's last)."""
        if self.distributed and not sync:
            return model.no_sync()
        return nullcontext()


def leave() -> None:
    """Destroy the process group (at exit), so that nccl releases its communicators cleanly."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
