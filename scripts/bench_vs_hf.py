#!/usr/bin/env python
"""csas's training loop against transformers' Seq2SeqTrainer configured as finetune.py configured it.

Both engines train the same model (same base weights, same LoRA initialisation: r, alpha, dropout, target modules),
in the same precision, on the same pairs, with the same samples per optimizer step. They alternate within one run
(csas, HF, csas, HF, ... for --rounds rounds); each measurement builds its engine afresh, runs --warmup-steps
optimizer steps, then times --steps more. The medians over rounds are reported, and last a line
`speedup: X.XXx` (csas samples/s over HF samples/s; with --which all, the smallest over the architectures).

The HF side is finetune.py's configuration in transformers 5's names: Seq2SeqTrainingArguments with the batch size,
gradient accumulation, learning rate of the finetune-all table, warmup_steps=0.03 (a ratio; warmup_ratio is gone),
a linear schedule, weight_decay 0.01, label_smoothing_factor 0.1, 2 data-loader workers, the default random sampler
(random-order batches) and DataCollatorForSeq2Seq padding each batch to its longest pair. Evaluation and checkpoints
are off (finetune.py's every-1000-steps would not fall in the timed steps anyway). Weights are loaded in the
benchmark's precision for both engines (finetune.py loaded fp16 whenever --bf16 was absent: a defect, not a setting).
For M2M100 the collator also builds the decoder inputs (see DecoderInputsFromLabels).

What is measured (see also csas_cli/commands/bench.py):
- samples/s: samples in the timed steps over their wall time (end of the last warm-up step to the end of the last
  timed step; on CUDA synchronised at both ends);
- tokens/s: real (unpadded) source + target tokens per second; HF's random batches are not visible, so its count is
  the samples times the data's mean tokens per pair (its sampler draws uniformly);
- peak memory: CUDA torch.cuda.max_memory_allocated (reset per measurement, so it covers loading and training);
  CPU the rise of the peak resident set over the measurement (VmHWM reset through /proc/self/clear_refs);
- loss: the training loss over the timed steps (csas: averaged over target tokens; HF: its logged loss, the mean
  of its micro-batch means).

Examples:
    python scripts/bench_vs_hf.py --device cpu                                   # the CPU preset, 2-5 minutes
    python scripts/bench_vs_hf.py --device cuda --random-init --which all       # real architectures on a GPU
    python scripts/bench_vs_hf.py --which opus_mt_en_fr --model-id DIR --data pairs.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

# Idle OpenMP threads sleep instead of spinning. On a machine shared with other jobs, spinning threads fight those
# jobs for the cores and one step can take 10x another (measured here: 3-16 s against 0.8 s for the same forward and
# backward on 2 busy cores). It applies to both engines; export OMP_WAIT_POLICY=ACTIVE to measure with spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csas_cli.commands.bench import (  # noqa: E402 - after the path set-up
    BenchSettings,
    Measurement,
    device_name,
    measure_csas,
    use_device,
)
from csas_cli.training.workloads import (  # noqa: E402
    PRESET_KEY,
    PRESETS,
    SYNTHETIC_PAIRS,
    Workload,
    architecture_dict,
    pair_tokens,
    prepare_workload,
    random_batch_padding,
)
from csas_cli.data.batches import LengthGrouped  # noqa: E402
from csas_cli.errors import CsasError  # noqa: E402
from csas_cli.memory import PeakMemory, release_memory  # noqa: E402
from csas_cli.registry import MODEL_KEYS, REGISTRY  # noqa: E402
from csas_cli.settings import FIELDS, LABEL_SMOOTHING, WEIGHT_DECAY  # noqa: E402

CPU_DEFAULTS = {"steps": 8, "warmup_steps": 2, "rounds": 3}
"""Sized for a few minutes on two cores with the CPU preset (the opus table's 16 x 2 samples per step)."""
CUDA_DEFAULTS = {"steps": 30, "warmup_steps": 5, "rounds": 3}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when a GPU is visible, else cpu")
    p.add_argument("--which", help="a registry key, or all; default: the --preset Marian model")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a small random-weight Marian model (default: small)")
    p.add_argument("--random-init", action="store_true", help="the registry models' real architectures, random weights")
    p.add_argument("--model-id", help="a local snapshot or hub id to load instead of the registry's (with one --which)")
    p.add_argument("--data", type=Path, help="JSONL pairs tokenized with the model's tokenizer (default: synthetic)")
    p.add_argument("--batch-size", type=int, help="pairs per micro-batch (default: the finetune-all table's)")
    p.add_argument("--grad-accum", type=int, default=FIELDS["grad_accum"].default)
    p.add_argument("--steps", type=int, help="timed optimizer steps per measurement (default: 8 on cpu, 30 on cuda)")
    p.add_argument("--warmup-steps", type=int, help="untimed steps first (default: 2 on cpu, 5 on cuda)")
    p.add_argument("--rounds", type=int, help="measurements per engine, alternating (default: 3)")
    p.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, help="bf16 weights + autocast (default: on for cuda)"
    )
    p.add_argument("--seed", type=int, default=FIELDS["seed"].default)
    p.add_argument("--num-pairs", type=int, default=SYNTHETIC_PAIRS, help="synthetic pairs (default: %(default)s)")
    p.add_argument(
        "--csas-variant",
        choices=["as-is", "compile", "cudnn-sdpa", "full-logits", "merged", "pad8", "random-batches"],
        default="as-is",
        help="engine experiments, csas side only: compile = torch.compile the model's trunk (dynamic shapes; give "
        "--warmup-steps enough to compile); cudnn-sdpa = let torch pick cuDNN's attention on CUDA, as the HF "
        "path does (modeling.attention_kernels); full-logits = the model's own logits + cross_entropy instead of "
        "the sliced output layer (loss.py); merged = one micro-batch of batch x grad-accum pairs per step; "
        "pad8 = pad lengths up to a multiple of 8 (fewer distinct shapes); random-batches = random-order batches "
        "instead of length-grouped ones (what the loop alone buys)",
    )  # fmt: skip
    p.add_argument(
        "--hf-variant", choices=["as-is", "group-by-length"], default="as-is",
        help="HF side: group-by-length = train_sampling_strategy='group_by_length' (not finetune.py's setting)",
    )
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    args = p.parse_args(argv)
    if args.which is not None and args.preset is not None:
        p.error("--preset is the model when --which is not given; give one of them")
    if args.which not in (None, "all") and args.which not in REGISTRY:
        p.error(f"--which: unknown model {args.which!r}; choose one of {', '.join(MODEL_KEYS)} or all")
    if args.model_id and args.which in (None, "all"):
        p.error("--model-id names one model; give it with one --which")
    if args.which is None and args.data is not None:
        p.error("--data needs a model with a tokenizer: give --which (and --model-id)")
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


# --- the HF side ---------------------------------------------------------------------------------------------------


def measure_hf(
    settings: BenchSettings, workload: Workload, workdir: Path, device: str, round_index: int, variant: str = "as-is"
) -> Measurement:
    """finetune.py's Trainer, built afresh: warm-up steps, then timed steps, timed by a callback."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        PrinterCallback,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        TrainerCallback,
        set_seed,
    )

    seed = settings.seed + round_index
    warm, total = settings.warmup_steps, settings.warmup_steps + settings.steps

    class StepClock(TrainerCallback):
        """Wall time at the end of every optimizer step; asks for a loss log at the end of warm-up and of the run."""

        def __init__(self) -> None:
            self.ends: list[float] = []
            self.started = 0.0

        def sync(self) -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.sync()
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.sync()
            self.ends.append(time.perf_counter())
            if state.global_step in (warm, total):
                control.should_log = True
            return control

    peak = PeakMemory(device)
    peak.start(release=True)
    tokenizer = AutoTokenizer.from_pretrained(workload.model_dir)
    lora, training = settings.finetune.lora, settings.finetune.training
    model = AutoModelForSeq2SeqLM.from_pretrained(workload.model_dir, dtype=settings.weight_dtype)
    model.config.use_cache = False
    set_seed(seed)  # csas seeds right before LoRA too: both engines start from the same adapter weights
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.lora_r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
            target_modules=list(lora.lora_targets), bias="none", task_type=TaskType.SEQ_2_SEQ_LM,
        ),
    )  # fmt: skip
    features = [
        {"input_ids": list(p.input_ids), "attention_mask": [1] * len(p.input_ids), "labels": list(p.labels)}
        for p in workload.pairs
    ]
    args = Seq2SeqTrainingArguments(
        output_dir=str(workdir / "runs" / f"hf-{round_index}"),
        per_device_train_batch_size=settings.micro_batch,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=training.learning_rate,
        max_steps=total,
        warmup_steps=training.warmup_ratio,  # a ratio: transformers 5 took warmup_ratio's place
        lr_scheduler_type="linear",
        weight_decay=WEIGHT_DECAY,
        label_smoothing_factor=LABEL_SMOOTHING,
        logging_steps=50,
        eval_strategy="no",
        save_strategy="no",
        bf16=training.bf16,
        fp16=False,
        dataloader_num_workers=2,
        seed=seed,
        train_sampling_strategy="group_by_length" if variant == "group-by-length" else "random",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
    )
    clock = StepClock()
    collator: Any = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    if not hasattr(model, "prepare_decoder_input_ids_from_labels"):
        config = model.get_base_model().config
        collator = DecoderInputsFromLabels(collator, config.pad_token_id, config.decoder_start_token_id)
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    trainer.remove_callback(PrinterCallback)  # its log lines would interleave with the report
    trainer.train()
    peak_bytes = peak.read().rise
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and h.get("step") == total]
    del trainer, model
    release_memory(device)

    samples = settings.steps * settings.micro_batch * settings.grad_accum
    mean_tokens = pair_tokens(workload.pairs) / len(workload.pairs)
    t0 = clock.ends[warm - 1] if warm else clock.started
    return Measurement(
        engine="hf",
        steps=settings.steps,
        samples=samples,
        tokens=round(samples * mean_tokens),
        seconds=clock.ends[-1] - t0,
        loss=losses[-1] if losses else None,
        peak_memory=peak_bytes,
        padding=random_batch_padding(workload.pairs, settings.micro_batch, seed) if variant == "as-is" else None,
    )


class DecoderInputsFromLabels:
    """M2M100 in transformers 5 has no `prepare_decoder_input_ids_from_labels`, and the Trainer takes the labels away
    from the model to smooth them itself, so without this the model gets no decoder inputs at all. finetune.py built
    M2M100's decoder inputs in its preprocessing (repeating the language code, a defect); these are the labels shifted
    right from decoder_start_token_id, the same shapes and so the same cost."""

    def __init__(self, collator: Any, pad_token_id: int, decoder_start_token_id: int) -> None:
        self.collator = collator
        self.pad_token_id = pad_token_id
        self.decoder_start_token_id = decoder_start_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers.models.m2m_100.modeling_m2m_100 import shift_tokens_right

        batch = self.collator(features)
        batch["decoder_input_ids"] = shift_tokens_right(batch["labels"], self.pad_token_id, self.decoder_start_token_id)
        return batch


# --- csas variants -------------------------------------------------------------------------------------------------


class RandomOrder(LengthGrouped):
    """`LengthGrouped` without the grouping: one epoch's batches in a seeded random order (what the length grouping
    buys, measured against csas's own loop)."""

    def epoch(self, lengths: Sequence[int], seed: int, epoch: int) -> list[list[int]]:
        import random

        order = list(range(len(lengths)))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]


def compiled_trunk_loss(model: Any, smoothing: float, autocast_dtype: Any) -> Any:
    """csas's loss with the model's encoder-decoder trunk through torch.compile, shapes marked dynamic so that
    length-varying batches do not each compile anew (the loss calls the trunk by its attribute)."""
    import torch

    from csas_cli.training.loss import TargetTokenLoss

    objective = TargetTokenLoss(model, smoothing, autocast_dtype)
    seq2seq = objective.seq2seq
    prefix = seq2seq.base_model_prefix
    setattr(seq2seq, prefix, torch.compile(getattr(seq2seq, prefix), dynamic=True))
    return objective


def engine_variant(variant: str, settings: BenchSettings) -> dict[str, Any]:
    """The recipe's engine arguments for one --csas-variant (the recipe takes each as an argument)."""
    if variant == "random-batches":
        return {"batching": RandomOrder(settings.micro_batch)}
    if variant == "full-logits":  # the model's whole logits tensor, as before loss.py's sliced output layer
        from functools import partial

        from csas_cli.training.loss import TargetTokenLoss

        return {"loss": partial(TargetTokenLoss, sliced=False)}
    if variant == "compile":
        return {"loss": compiled_trunk_loss}
    if variant == "cudnn-sdpa":
        return {"cudnn_attention": True}
    if variant == "pad8":  # lengths rounded up to a multiple of 8: fewer distinct shapes for cuDNN or compile
        return {"pad_to_multiple_of": 8}
    return {}


# --- blocks and report ---------------------------------------------------------------------------------------------


def blocks(args: argparse.Namespace) -> list[list[str]]:
    """Registry keys grouped by what they train: one block per distinct architecture (or model)."""
    if args.which is None:
        return [[PRESET_KEY]]
    keys = list(MODEL_KEYS) if args.which == "all" else [args.which]
    groups: dict[str, list[str]] = {}
    for key in keys:
        if args.random_init:
            ident = json.dumps(architecture_dict(REGISTRY[key].hub_id), sort_keys=True)
        else:
            ident = args.model_id or REGISTRY[key].hub_id
        groups.setdefault(ident, []).append(key)
    return list(groups.values())


def block_settings(args: argparse.Namespace, key: str, device: str, engine: str) -> BenchSettings:
    defaults = CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    preset = (args.preset or "small") if args.which is None else None
    settings = BenchSettings.create(
        which=key, model_id=args.model_id, random_init=args.random_init, preset=preset, data=args.data,
        batch_size=args.batch_size, grad_accum=args.grad_accum,
        steps=args.steps if args.steps is not None else defaults["steps"],
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else defaults["warmup_steps"],
        device=device, bf16=args.bf16 if args.bf16 is not None else device == "cuda", qlora=False, seed=args.seed,
        num_pairs=args.num_pairs,
    )  # fmt: skip
    if engine == "csas" and args.csas_variant == "merged":
        return settings.updated(batch_size=settings.micro_batch * settings.grad_accum, grad_accum=1)
    return settings


def describe(m: Measurement) -> str:
    peak = "n/a" if m.peak_memory is None else f"{m.peak_memory / 2**30:.2f} GiB"
    loss = "n/a" if m.loss is None else f"{m.loss:.4f}"
    pad = "" if m.padding is None else f", {m.padding:.0%} padding"
    return (
        f"{m.samples_per_second:8.2f} samples/s {m.tokens_per_second:9.0f} tokens/s  peak {peak}  "
        f"loss {loss}  ({m.steps} steps, {m.seconds:.1f} s{pad})"
    )


def median_line(engine: str, runs: list[Measurement]) -> str:
    peaks = [m.peak_memory for m in runs if m.peak_memory is not None]
    losses = [m.loss for m in runs if m.loss is not None]
    peak = f"{max(peaks) / 2**30:.2f} GiB" if peaks else "n/a"
    loss = f"{statistics.median(losses):.4f}" if losses else "n/a"
    return (
        f"{engine:<4} median of {len(runs)}: {statistics.median(m.samples_per_second for m in runs):.2f} samples/s, "
        f"{statistics.median(m.tokens_per_second for m in runs):.0f} tokens/s, peak memory {peak} (largest), "
        f"final loss {loss}"
    )


def run(args: argparse.Namespace) -> int:
    device = use_device(args.device or "auto")
    from csas_cli.modeling import quiet_libraries

    quiet_libraries()
    import torch
    import transformers

    print(
        f"device: {device_name(device)}; torch {torch.__version__}, transformers {transformers.__version__}; "
        f"peak memory = the rise of {PeakMemory(device).measure} over each measurement"
    )
    speedups: list[float] = []
    records: list[dict[str, Any]] = []
    rounds = args.rounds or (CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS)["rounds"]
    with tempfile.TemporaryDirectory(prefix="csas-bench-vs-hf-") as tmp:
        for keys in blocks(args):
            key = keys[0]
            csas_settings = block_settings(args, key, device, "csas")
            hf_settings = block_settings(args, key, device, "hf")
            workdir = Path(tmp) / key
            workdir.mkdir()
            workload = prepare_workload(hf_settings, workdir, device)
            variant = args.csas_variant
            s, lora = hf_settings, hf_settings.finetune.lora
            print(
                f"\n== {', '.join(keys)}: {workload.description} ({workload.parameters / 1e6:.1f}M parameters); "
                f"{s.precision}, LoRA r={lora.lora_r} alpha={lora.lora_alpha} dropout={lora.lora_dropout} on "
                f"{','.join(lora.lora_targets)}; {s.micro_batch} x {s.grad_accum} samples per step; {workload.data} "
                f"pairs ({len(workload.pairs)}); {rounds} rounds of {s.steps} steps after {s.warmup_steps} "
                f"warm-up{'' if variant == 'as-is' else f'; csas variant: {variant}'}"
                f"{'' if args.hf_variant == 'as-is' else f'; HF variant: {args.hf_variant}'}",
                flush=True,
            )
            def measure(engine: str, r: int, settings: BenchSettings) -> Measurement:
                if engine == "hf":
                    return measure_hf(settings, workload, workdir, device, r, args.hf_variant)
                return measure_csas(settings, workload, device, r, **engine_variant(variant, settings))

            # Kernel caches, lazy initialisation and the page cache are filled once per process: a short run of each
            # engine first, so that neither pays for them inside its first measurement.
            for engine, settings in (("csas", csas_settings), ("hf", hf_settings)):
                measure(engine, rounds, settings.updated(steps=1, warmup_steps=1))  # its own seed and folder
            print("process warm-up: one short untimed run of each engine", flush=True)
            runs: dict[str, list[Measurement]] = {"csas": [], "hf": []}
            for r in range(rounds):
                for engine, settings in (("csas", csas_settings), ("hf", hf_settings)):
                    m = measure(engine, r, settings)
                    runs[engine].append(m)
                    records.append({"keys": keys, "round": r + 1, **m.__dict__})
                    print(f"round {r + 1}/{rounds} {engine:<4} {describe(m)}", flush=True)
            print(median_line("csas", runs["csas"]))
            print(median_line("hf", runs["hf"]))
            speedup = statistics.median(m.samples_per_second for m in runs["csas"]) / statistics.median(
                m.samples_per_second for m in runs["hf"]
            )
            speedups.append(speedup)
            for k in keys:
                print(f"speedup {k}: {speedup:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"speedup: {min(speedups):.2f}x")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CsasError as exc:
        sys.stderr.write(f"bench_vs_hf: error: {' '.join(str(exc).split())}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
