"""`csas bench`: throughput and peak memory of csas's own training loop, to size a batch before booking GPU hours.

What runs is the real loop: a `FinetuneRecipe` built as `csas finetune` builds one (the same loading, quantization,
LoRA and optimizer code) from the benchmark's plan and pairs (training/workloads.py), which trains for warm-up plus
timed optimizer steps. Two things differ from a training run: the pairs are the benchmark's, tokenized once before any
clock runs, and nothing is written (the recipe's run directory is `RunDirectory(None)`). A callback after every
optimizer step times the steps. scripts/bench_vs_hf.py runs the same measurement next to transformers'
Seq2SeqTrainer, handing the recipe other engine parts (batching, padding, loss, attention kernels) to measure them.

torch and transformers are imported inside the functions, so importing this module (and `csas --help`) stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import HardwareError
from ..memory import release_memory
from ..progress import print_json
from ..progress import say as say_line
from ..training.workloads import BenchSettings, Workload, padded_tokens, pair_tokens, prepare_workload

# --- devices -----------------------------------------------------------------------------------------------------


def use_device(name: str) -> str:
    """The device csas will train on for the requested one ("auto", "cpu" or "cuda", as BenchSettings checks).

    csas trains on the GPU whenever one is visible, so "cpu" on a GPU machine hides the GPUs from this process;
    that works only before CUDA is initialised, which is why commands call this first.
    """
    if name == "cpu":
        torch_module = sys.modules.get("torch")
        if torch_module is None or not torch_module.cuda.is_initialized():
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise HardwareError("--device cuda: no CUDA GPU is visible to this process")
    if name == "cpu" and available:
        raise HardwareError("--device cpu: CUDA is already initialised in this process; run with CUDA_VISIBLE_DEVICES=")
    return "cuda" if available else "cpu"


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"


# --- one measurement -----------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One engine's timed steps."""

    engine: str
    steps: int
    samples: int
    tokens: int
    """Real source + target tokens in the timed steps."""
    seconds: float
    loss: float | None
    """Training loss over the timed steps."""
    peak_memory: int | None
    """Bytes the measurement added (memory.PeakMemory's rise)."""
    padding: float | None = None
    """Share of padded positions in the timed micro-batches (None where the engine's batches are not visible)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def measure_csas(
    settings: BenchSettings,
    workload: Workload,
    device: str,
    round_index: int = 0,
    probe_longest: bool = False,
    **engine: Any,
) -> Measurement:
    """Build a fresh recipe on the workload, run warm-up + timed steps through `FinetuneRecipe.train()`, and tear it
    down.

    `probe_longest`: afterwards, one more optimizer step on the longest pairs, for the worst-case peak memory.
    `engine`: the recipe's engine arguments (batching, pad_to_multiple_of, loss, cudnn_attention) for a variant.
    """
    import torch

    from ..data.batches import fill_token_budget, target_tokens
    from ..data.features import TokenizedSplit
    from ..memory import PeakMemory
    from ..progress import Reporter
    from ..plan import build_plan
    from ..training.groundwork import check_hardware, load_base
    from ..training.recipe import FinetuneRecipe, StepReport
    from ..training.rundir import RunDirectory

    run = settings.finetune.updated(
        model_id=workload.model_dir, revision=None if settings.uses_random_weights else settings.revision,
        seed=settings.seed + round_index,
        max_steps=settings.warmup_steps + settings.steps, disable_tqdm=True,
    )  # fmt: skip
    plan = build_plan(run)
    steps: list[tuple[float, int, int, int, int, float]] = []
    """Per step: end time, samples, real tokens, padded positions, target tokens, loss."""

    def timed(report: StepReport) -> None:
        groups = report.micro_batches
        steps.append((time.perf_counter(), sum(len(g) for g in groups), sum(pair_tokens(g) for g in groups),
                      sum(padded_tokens(g) for g in groups), report.step_tokens, report.loss))  # fmt: skip

    hardware = check_hardware(plan)
    memory = PeakMemory(hardware.device)
    memory.start(release=True)  # before the base's tokenizer loads, as the HF side measures it
    base = load_base(plan, standin_tokenizer=settings.uses_random_weights)
    recipe = FinetuneRecipe(
        plan, TokenizedSplit(train=list(workload.pairs), eval=[], eval_examples=[]), base, hardware,
        run_dir=RunDirectory(None), reporter=Reporter(None, bar=False, quiet=True), on_step=timed, memory=memory,
        **engine,
    )  # fmt: skip
    extra: dict[str, Any] = {}
    try:
        recipe.setup()
        started = time.perf_counter()
        recipe.train()
        peak = recipe.memory.read().rise
        if probe_longest:
            # The longest pairs in one micro-batch bound what any step of an epoch on these pairs needs.
            longest = sorted(recipe.data.train, key=lambda p: p.length, reverse=True)
            n = settings.micro_batch
            if settings.max_tokens:
                cut = fill_token_budget(range(len(longest)), [p.length for p in longest], settings.max_tokens)
                groups = [[longest[i] for i in batch] for batch in cut[: settings.grad_accum]]
            else:
                groups = [longest[i * n : (i + 1) * n] for i in range(settings.grad_accum)]
            extra["longest_pair_tokens"] = len(longest[0].input_ids) + len(longest[0].labels)
            recipe.memory.start()
            try:
                with recipe.attention():  # as inside train()
                    recipe.optimizer_step(groups, sum(target_tokens(g) for g in groups))
                extra["peak_memory_longest"] = recipe.memory.read().rise
            except torch.OutOfMemoryError:
                extra["longest_out_of_memory"] = True
    finally:
        recipe.cleanup()
        del recipe
        release_memory(device)

    warm = settings.warmup_steps
    timed_steps = steps[warm:]
    t0 = steps[warm - 1][0] if warm else started
    real = sum(s[2] for s in timed_steps)
    target = sum(s[4] for s in timed_steps)
    return Measurement(
        engine="csas",
        steps=len(timed_steps),
        samples=sum(s[1] for s in timed_steps),
        tokens=real,
        seconds=steps[-1][0] - t0,
        loss=sum(s[5] * s[4] for s in timed_steps) / target,  # token-averaged, as the loop logs it
        peak_memory=peak,
        padding=1 - real / sum(s[3] for s in timed_steps),
        extra=extra,
    )


# --- `csas bench` --------------------------------------------------------------------------------------------------


def gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def run_bench(
    settings: BenchSettings, workdir: Path | None = None, say: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """Measure csas's loop once (warm-up + timed steps) and return the record `csas bench` prints."""
    import tempfile

    import torch

    from ..files import library_versions
    from ..memory import PeakMemory
    from ..modeling import check_precision, quiet_libraries

    device = use_device(settings.device)
    check_precision(settings.precision, torch.device(device))  # before any preparation, as `csas finetune` does
    quiet_libraries()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="csas-bench-")))
        say(f"{settings.which}: preparing the model and the pairs")
        workload = prepare_workload(settings, workdir, device)
        say(
            f"{settings.which}: {settings.warmup_steps} warm-up + {settings.steps} timed steps of "
            f"{step_shape(settings)} on {device}, then one step of the longest pairs"
        )
        m = measure_csas(settings, workload, device, probe_longest=True)
    lora = settings.finetune.lora
    return {
        "which": settings.which,
        "model": workload.description,
        "parameters": workload.parameters,
        "data": workload.data,
        "pairs": len(workload.pairs),
        "device": device,
        "device_name": device_name(device),
        "precision": settings.precision,
        "qlora": lora.qlora,
        "lora": {"r": lora.lora_r, "alpha": lora.lora_alpha, "targets": list(lora.lora_targets)},
        "batch_size": None if settings.max_tokens else settings.micro_batch,
        "max_tokens": settings.max_tokens,
        "grad_accum": settings.grad_accum,
        "samples_per_step": round(m.samples / m.steps, 2) if m.steps else None,
        "warmup_steps": settings.warmup_steps,
        "steps": m.steps,
        "seconds": round(m.seconds, 3),
        "samples_per_second": round(m.samples_per_second, 2),
        "tokens_per_second": round(m.tokens_per_second, 1),
        "padding": round(m.padding, 4) if m.padding is not None else None,
        "final_loss": m.loss,
        "peak_memory_gib": gib(m.peak_memory),
        "peak_memory_longest_gib": gib(m.extra.get("peak_memory_longest")),
        "longest_out_of_memory": m.extra.get("longest_out_of_memory", False),
        "longest_pair_tokens": m.extra.get("longest_pair_tokens"),
        "peak_memory_measure": f"{PeakMemory(device).measure}, the rise over the measurement",
        "versions": library_versions(),
    }


def step_shape(settings: BenchSettings) -> str:
    if settings.max_tokens:
        return f"{settings.grad_accum} micro-batches of up to {settings.max_tokens} tokens"
    return f"{settings.micro_batch} x {settings.grad_accum} pairs"


def record_step_shape(record: dict[str, Any]) -> str:
    if record["max_tokens"]:
        return (
            f"{record['grad_accum']} micro-batches of up to {record['max_tokens']} tokens per step "
            f"({record['samples_per_step']:.1f} samples on average)"
        )
    return f"{record['batch_size']} x {record['grad_accum']} samples per step"


def format_record(record: dict[str, Any]) -> str:
    """The human-readable form of `run_bench`'s record."""
    mem = record["peak_memory_gib"]
    longest = record["peak_memory_longest_gib"]
    lines = [
        f"{record['which']}: {record['model']} ({record['parameters'] / 1e6:.1f}M parameters), {record['data']} pairs",
        f"on {record['device_name']}, {record['precision']}{', QLoRA 4-bit' if record['qlora'] else ''}, "
        f"LoRA r={record['lora']['r']}; {record_step_shape(record)}",
        f"{record['samples_per_second']:.1f} samples/s, {record['tokens_per_second']:.0f} tokens/s "
        f"over {record['steps']} steps after {record['warmup_steps']} warm-up ({record['padding']:.1%} padding)",
        f"peak memory {'n/a' if mem is None else f'{mem:.2f} GiB'}; one step of the longest pairs "
        f"(the longest: {record['longest_pair_tokens']} tokens): "
        + ("out of memory" if record["longest_out_of_memory"] else "n/a" if longest is None else f"{longest:.2f} GiB"),
        f"final loss {record['final_loss']:.4f}",
    ]
    return "\n".join(lines)


def run(settings: BenchSettings, *, as_json: bool = False) -> None:
    """`csas bench`: measure, then print the record (as JSON with `as_json`)."""
    record = run_bench(settings, say=say_line)
    if as_json:
        print_json(record)
    else:
        sys.stdout.write(format_record(record) + "\n")
