"""The training core: one LoRA fine-tuning run as a recipe, setup -> train -> finish.

A recipe is built from a plan and the tokenized pairs (run.py prepares both for `csas finetune`, finetune-all and
sweep; `csas bench` builds one on its own workload), with the engine's parts as explicit arguments: the batching
strategy, the padding multiple, the loss, the attention kernels, and a callback after every optimizer step. `setup` loads the
model and builds what trains it, `train` is the whole loop, written out, and `finish` writes the adapter; every
write to the run directory goes through its `RunDirectory`.

Under torchrun each process holds one recipe: it trains on its share of every optimizer step, and only rank 0
writes the run directory and reports progress.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from ..data.batches import (
    IGNORE_INDEX,
    Batching,
    StepPlan,
    batching_for,
    collate,
    epoch_batch_counts,
    epoch_fraction,
    optimizer_steps,
    plan_steps,
    rank_share,
    target_tokens,
)
from ..data.features import TokenizedPair, TokenizedSplit
from ..data.glossary import Glossary
from ..data.pairs import ReadCounts, ReadOptions, pairs_sha256
from ..errors import CsasError, ModelError, TrainingError
from ..files import library_versions, now_iso
from ..inference.generation import GenerationSettings, LoadedModel
from ..layout import ADAPTER_DIR, BEST_DIR, CHECKPOINTS_DIR
from ..memory import PeakMemory
from ..modeling import Precision, Weights
from ..progress import Reporter, counted, use_progress_bar
from ..registry import REGISTRY, other_language
from ..settings import LABEL_SMOOTHING, Plan, TrainingSettings
from .checkpoints import CheckpointError, restore_checkpoint, step_dir_name
from .distributed import ProcessGroup
from .evaluation import BestTracker, Evaluator, chrf_sample, evaluations_in
from .preemption import StopRequest
from .rundir import RunDirectory
from .step import build_optimizer, optimizer_step


@dataclass(frozen=True)
class Hardware:
    """Where this process trains, and in which precision (checked before anything loads)."""

    device: Any
    precision: Precision


def check_hardware(plan: Plan) -> Hardware:
    """This process's device and the plan's precision on it; a precision or a --device-map GPU the hardware lacks is
    refused here, so a wrong flag costs nothing."""
    import torch

    from ..device_map import check_device_map
    from ..modeling import check_precision
    from .distributed import training_device

    check_device_map(plan.resolved.device_map_requested, torch.cuda.device_count())
    device = training_device(plan.resolved.local_rank)
    return Hardware(device, check_precision(plan.resolved.precision, device))


def micro_batch_size(batch_size: int, train_rows: int) -> int:
    """--batch-size, clamped to the training pairs: a micro-batch cannot hold more pairs than there are (prepare_run
    says so when it clamps)."""
    return max(1, min(batch_size, train_rows))


def schedule(
    training: TrainingSettings, batching: Batching, lengths: Sequence[int], world_size: int
) -> tuple[list[int], StepPlan, int]:
    """(micro-batches of each epoch the run reaches, the step plan, warm-up steps) of pairs of these lengths: what
    the recipe trains by and --dry-run shows (with fixed-size batches the lengths only count the pairs)."""
    epochs = max(1, math.ceil(training.epochs))
    batch_counts = epoch_batch_counts(lengths, batching, training.seed, epochs)
    steps = plan_steps(
        batch_counts, training.grad_accum, training.epochs, training.max_steps, world_size,
        fixed_size=batching.fixed_size,
    )  # fmt: skip
    return batch_counts, steps, math.ceil(training.warmup_ratio * steps.total_steps)


@dataclass(frozen=True)
class Base:
    """The base model's config and tokenizer: cheap to load, and loaded before any weights, so that a checkpoint of
    the wrong family or a length it cannot hold is refused first."""

    config: Any
    tokenizer: Any
    commit: str | None = None
    """The hub commit the base's revision resolved to (None for a local snapshot): what run.json records, so that a
    resumed run, and translate or merge of the run, use the same weights even after the repository moves on."""


def load_base(plan: Plan, *, standin_tokenizer: bool = False) -> Base:
    """`standin_tokenizer`: the base is a benchmark's random-weight checkpoint, whose tokenizer is a stand-in of
    another class (its pairs come tokenized)."""
    from ..modeling import check_lengths, load_config, load_tokenizer, quiet_libraries, snapshot_commit

    quiet_libraries()  # before transformers is imported: some of the chatter comes at import time
    family = REGISTRY[plan.which].family
    revision = plan.model.revision
    config = load_config(plan.model_id, family, plan.which, revision)
    check_lengths(config, family, plan.corpus.max_source_len, plan.corpus.max_target_len)
    tokenizer = load_tokenizer(plan.model_id, None if standin_tokenizer else family, revision)
    return Base(config, tokenizer, snapshot_commit(plan.model_id, revision))


@dataclass(frozen=True)
class StepReport:
    """What the `on_step` callback hears after every optimizer step (it returns after the step's host sync)."""

    step: int
    epoch: int
    micro_batches: Sequence[Sequence[TokenizedPair]]
    """The step's micro-batches, over every process."""
    step_tokens: int
    """Target tokens of the whole step."""
    loss: float
    grad_norm: float
    learning_rate: float


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    seconds: float


LossFactory = Callable[[Any, float, Any], Any]
"""(LoRA model, label smoothing, autocast dtype or None) -> a module: batch in, summed target-token loss out."""


class FinetuneRecipe:
    """One run: `setup` builds everything in dependency order, `train` runs the loop, `finish` writes the adapter."""

    def __init__(
        self,
        plan: Plan,
        data: TokenizedSplit,
        base: Base,
        hardware: Hardware,
        *,
        run_dir: RunDirectory | None = None,
        group: ProcessGroup | None = None,
        stop: StopRequest | None = None,
        resume_from: Path | None = None,
        reporter: Reporter | None = None,
        batching: Batching | None = None,
        pad_to_multiple_of: int = 1,
        loss: LossFactory | None = None,
        cudnn_attention: bool = False,
        on_step: Callable[[StepReport], None] | None = None,
        memory: PeakMemory | None = None,
        notes: Sequence[str] = (),
        glossary: Glossary | None = None,
    ) -> None:
        self.plan = plan
        self.data = data
        self.config = base.config
        self.tokenizer = base.tokenizer
        self.base_commit = base.commit
        self.notes = tuple(notes)
        """Warnings about the data (prepare_run's), logged after the set-up line."""
        self.glossary = glossary if plan.evaluation.eval_chrf else None
        """--glossary, for eval_term_success (evaluations that score chrF)."""
        self.weights: Weights | None = None
        """The base's weight files (known once loaded; None when a hub cache cannot tell)."""
        self.device = hardware.device
        self.precision = hardware.precision
        self.group = group if group is not None else ProcessGroup.current()
        if self.group.world_size != plan.resolved.world_size:
            raise CsasError(
                f"WORLD_SIZE={plan.resolved.world_size}, but the process group has {self.group.world_size} processes"
            )
        main = self.group.is_main
        self.run_dir = run_dir if run_dir is not None else RunDirectory(plan.run_dir if main else None)
        self.reporter = reporter or Reporter(
            self.run_dir.write_log, bar=main and use_progress_bar(plan.output.disable_tqdm), quiet=not main
        )
        self.stop = stop if stop is not None else StopRequest()
        self.resume_from = resume_from
        # The engine's parts (csas bench and scripts/bench_vs_hf.py measure variants of them).
        training = plan.training
        # A batch larger than every split is clamped (prepare_run notes it); one split's rows stay one batch.
        micro_batch = micro_batch_size(training.batch_size, max(len(data.train), len(data.eval)))
        self.batching = batching or batching_for(micro_batch, training.max_tokens)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.make_loss = loss
        self.cudnn_attention = cudnn_attention
        self.on_step = on_step

        # The steps, from the pairs (a pure function of the seed): micro-batches of each epoch so far, extended as
        # epochs are reached; token-budget epochs differ by a few, and the plan counts each one's own steps.
        self.lengths = [p.length for p in data.train]
        self.batch_counts, self.steps, self.warmup_steps = schedule(
            training, self.batching, self.lengths, self.group.world_size
        )
        evaluation = plan.evaluation
        chrf_rows = []
        if evaluation.eval_chrf:
            chrf_rows = chrf_sample(len(data.eval), evaluation.eval_chrf_samples, training.seed)
        # Labels hold the language code and </s> too, so max_target_len new tokens fit the longest trained target.
        generation = GenerationSettings(evaluation.eval_num_beams, plan.corpus.max_target_len, micro_batch)
        self.evaluator = Evaluator(data, self.batching, self.group, chrf_rows=chrf_rows, generation=generation)
        self.memory = memory if memory is not None else PeakMemory(self.device)
        """The run's peak memory (run.json); set-up starts it unless the caller did (csas bench, before the base)."""

        # Built by setup().
        self.model: Any = None
        """The base with its LoRA adapters."""
        self.objective: Any = None
        """The model and its loss in one module (loss.py)."""
        self.wrapped: Any = None
        """What the loop calls: the objective, or under torchrun the objective in DistributedDataParallel."""
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.scaler: Any = None
        self.batch_device: Any = self.device
        self.pad_id = self.decoder_start_id = 0

        # The run's state, checkpointed so that a resumed run goes on as an uninterrupted one would.
        self.steps_done = 0
        self.window = [0.0, 0]
        """Training loss sum and target tokens since the last logged step."""
        self.best = BestTracker(evaluation.best_metric, evaluation.patience)
        self.last_train_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.last_eval_chrf: float | None = None
        self.stopped_early = False
        self.started = time.monotonic()

    # -- setup ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load the model and build what trains it; then, everything loaded, open the run directory."""
        from transformers import set_seed

        if not self.memory.started:
            self.memory.start()
        set_seed(self.plan.training.seed)
        self.model = self.setup_model()
        self.objective = self.setup_loss(self.model)
        self.optimizer, self.scheduler, self.scaler = build_optimizer(
            self.model, self.plan.training.learning_rate, self.warmup_steps, self.steps.total_steps, self.precision
        )
        if self.resume_from is not None:
            # Last, so the restored RNG states are not consumed by anything above.
            self.restore(self.resume_from)
        # Under torchrun the loop calls the model through DDP, whose constructor hands rank 0's weights to all.
        self.wrapped = self.group.data_parallel(self.objective)
        # Outputs are touched only now that everything loaded, on every process: a bad model id leaves a previous
        # run as it was. Rank 0 alone writes them.
        self.group.barrier()
        self.open_run_dir()
        self.report_setup()

    def setup_model(self) -> Any:
        """The base, once, quantized and checkpointed when QLoRA asks; LoRA after, so the adapters sit on the
        prepared base. Seeding again right before LoRA makes the adapters' initialisation independent of loading."""
        from transformers import set_seed

        from ..device_map import on_cpu
        from ..modeling import add_lora, check_precision, input_device, load_model

        plan = self.plan
        device_map = on_cpu(plan.resolved.device_map) if self.device.type == "cpu" else plan.resolved.device_map
        model, self.weights = load_model(
            plan.model_id, self.config, self.precision, self.device, device_map=device_map, qlora=plan.lora.qlora,
            revision=plan.model.revision,
        )  # fmt: skip
        set_seed(plan.training.seed)
        model = add_lora(model, plan.lora, plan.model_id)
        self.batch_device = input_device(model)
        if self.batch_device.type != self.device.type:
            # --device-map placed the model elsewhere (cpu on a GPU node): compute, and measure memory, there. The
            # CPU peak was not reset at the start, so run.json gets the process's peak resident set.
            self.device = self.batch_device
            self.precision = check_precision(plan.resolved.precision, self.device)
            self.memory = PeakMemory(self.device)
        config = model.get_base_model().config
        if config.pad_token_id is None or config.decoder_start_token_id is None:
            raise ModelError(f"--model-id {plan.model_id}: its config has no pad_token_id or decoder_start_token_id")
        self.pad_id, self.decoder_start_id = config.pad_token_id, config.decoder_start_token_id
        return model

    def setup_loss(self, model: Any) -> Any:
        """The model and its loss on target tokens in one module: loss.py's sliced output layer by default."""
        make_loss = self.make_loss
        if make_loss is None:
            from .loss import TargetTokenLoss

            make_loss = TargetTokenLoss
        autocast_dtype = self.precision.weight_dtype if self.precision.autocast else None
        return make_loss(model, LABEL_SMOOTHING, autocast_dtype)

    def restore(self, checkpoint: Path) -> None:
        """Load `checkpoint` into this process's model, optimizer, scheduler, scaler and RNGs, and the run's state."""
        try:
            state = restore_checkpoint(
                checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                scaler=self.scaler,
            )  # fmt: skip
        except CheckpointError as exc:
            raise CsasError(f"--resume: {exc}; remove that folder to resume from the one before") from None
        self.steps_done = int(state["step"])
        self.window = list(state.get("window", [0.0, 0]))
        self.last_train_loss = state.get("last_train_loss")
        self.last_eval_loss = state.get("last_eval_loss")
        self.last_eval_chrf = state.get("last_eval_chrf")
        self.best.restore(state.get("best"))

    def open_run_dir(self) -> None:
        """A fresh run clears the directory and writes run.json; a resumed one rewinds it to its checkpoint."""
        if not self.run_dir.writes:
            return
        if self.resume_from is not None:
            note = {"from_step": self.steps_done, "at": now_iso(), "device": str(self.device)}
            self.run_dir.rewind(self.resume_from, self.steps_done, note)
        else:
            self.run_dir.create(self.run_record())

    def run_record(self) -> dict[str, Any]:
        eval_data = self.plan.corpus.eval_data
        return {
            "plan": self.plan.to_dict(),
            "total_steps": self.steps.total_steps,
            "steps_per_epoch": self.steps.steps_per_epoch,
            "warmup_steps": self.warmup_steps,
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "device": str(self.device),
            "data_sha256": pairs_sha256(self.plan.corpus.data),
            "eval_data_sha256": None if eval_data is None else pairs_sha256(eval_data),
            "cut": self.data.cut_counts(),
            "base_weights": None if self.weights is None else self.weights.to_dict(),
            "base_commit": self.base_commit,
            "versions": library_versions(),
            "started": now_iso(),
        }

    def report_setup(self) -> None:
        plan, reporter = self.plan, self.reporter
        if self.resume_from is not None:
            reporter.line(f"resuming from {self.resume_from} (step {self.steps_done})")
        n_trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n_total = sum(p.numel() for p in self.model.parameters())
        lora = plan.lora
        reporter.line(
            f"{plan.which}: {plan.model_id} on {self.device} ({plan.resolved.precision}"
            f"{', QLoRA 4-bit' if lora.qlora else ''}); {len(self.data.train)} train / {len(self.data.eval)} eval "
            f"pairs ({self.data_note()}); {counted(self.steps.total_steps, 'step')} of {self.step_size()}; LoRA "
            f"r={lora.lora_r} "
            f"on {','.join(lora.lora_targets)}: {n_trainable:,} of {n_total:,} parameters trained"
        )
        notice = None if self.weights is None else self.weights.notice(plan.model_id)
        for line in (*([notice] if notice else []), *self.notes):
            reporter.line(line)
        if lora.qlora and self.device.type == "cpu":
            reporter.line(
                "note: QLoRA on the CPU: bitsandbytes' 4-bit layers run slower than plain LoRA here (they save memory, "
                "and test the GPU path); --no-qlora trains faster on a CPU"
            )
        if not self.data.eval and plan.corpus.val_ratio > 0 and plan.corpus.eval_data is None:
            reporter.line(
                "warning: the validation split is empty (too few rows or publications for --val-ratio "
                f"{plan.corpus.val_ratio}): no evaluation loss and no best/ adapter; pass --eval-data FILE or more data"
            )
        evaluation = plan.evaluation
        if self.data.eval and evaluation.eval_chrf:
            beams = evaluation.eval_num_beams
            reporter.line(
                f"evaluations also score chrF on {len(self.evaluator.chrf_rows)} validation rows "
                f"({'greedy' if beams == 1 else f'beam {beams}'}); the best evaluation is the highest eval_chrf"
            )
        evaluations = evaluations_in(self.steps.total_steps, evaluation.eval_steps)
        if evaluation.patience is not None and evaluations <= evaluation.patience:
            reporter.line(
                f"warning: --patience {evaluation.patience} cannot stop this run: it evaluates {evaluations} times "
                f"(every {evaluation.eval_steps} of {self.steps.total_steps} steps); lower --eval-steps"
            )

    def data_note(self) -> str:
        """What the data lost on its way in: pairs cut at the max lengths, rows skipped as empty, TMX units skipped
        or with variants chosen between."""
        cut, corpus, resolved = self.data.cut_counts(), self.plan.corpus, self.plan.resolved
        read = ReadCounts(resolved.units_skipped or 0, resolved.units_with_variants or 0,
                          resolved.lines_one_sided or 0, resolved.units_without_publication or 0)  # fmt: skip
        units = read.describe(ReadOptions.of(corpus))
        reversed_note = (f"; {counted(resolved.rows_reversed, 'pair')} reversed to serve the other direction "
                         "(--both-directions)" if resolved.rows_reversed else "")  # fmt: skip
        other = resolved.rows_other_language or 0
        others = " and ".join(f"{other_language(s)}->{s}" for s in resolved.source_langs)
        return (
            f"{cut['sources']} sources cut at --max-source-len {corpus.max_source_len}, {cut['targets']} targets at "
            f"--max-target-len {corpus.max_target_len}; {resolved.rows_skipped or 0} empty rows skipped"
            + (f"; {counted(other, 'row')} of the other direction ({others}) left out" if other else "")
            + (f"; {units}" if units else "") + reversed_note
        )

    def step_size(self) -> str:
        """What one optimizer step holds, for the set-up line."""
        training, world_size = self.plan.training, self.group.world_size
        processes = f"{world_size} processes x " if world_size > 1 else ""
        if training.max_tokens:
            return f"{processes}{training.grad_accum} micro-batches of {self.batching.describe()}"
        parts = f" ({processes}{training.batch_size} x {training.grad_accum})" if world_size > 1 else ""
        return f"{self.plan.resolved.global_batch} samples{parts}"

    # -- the loop ------------------------------------------------------------------------------------------------
    def attention(self) -> ContextManager[Any]:
        """The attention kernels the loop computes with (modeling.attention_kernels)."""
        from ..modeling import attention_kernels

        return attention_kernels(self.device, cudnn=self.cudnn_attention)

    def autocast(self) -> ContextManager[Any]:
        import torch

        precision = self.precision
        return torch.autocast(precision.device_type, dtype=precision.weight_dtype, enabled=precision.autocast)

    def to_device(self, pairs: Sequence[TokenizedPair]) -> dict[str, Any]:
        """A micro-batch's tensors (batches.collate, padded to the padding multiple) on the model's input device."""
        batch = collate(pairs, self.pad_id, self.decoder_start_id, self.pad_to_multiple_of)
        pin = self.batch_device.type == "cuda"
        return {k: (v.pin_memory() if pin else v).to(self.batch_device, non_blocking=True) for k, v in batch.items()}

    def loss_sum(self, pairs: Sequence[TokenizedPair]) -> Any:
        """Label-smoothed cross-entropy summed over the target tokens of `pairs` (the caller divides)."""
        batch = self.to_device(pairs)
        with self.autocast():
            return self.wrapped(**batch, ignore_index=IGNORE_INDEX)

    def optimizer_step(
        self, groups: Sequence[Sequence[TokenizedPair]], step_tokens: int, idle: bool = False
    ) -> tuple[float, float, float]:
        """One optimizer step on this process's micro-batches `groups` (step.optimizer_step)."""
        return optimizer_step(
            groups, step_tokens, loss_sum=self.loss_sum, wrapped=self.wrapped, model=self.model,
            optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler, group=self.group,
            device=self.batch_device, idle=idle,
        )  # fmt: skip

    def train(self) -> None:
        with self.stop, self.attention():
            self.stop.training = True
            try:
                self.train_loop()
            finally:
                self.stop.training = False

    def train_loop(self) -> None:
        import torch

        plan, steps, reporter, group = self.plan, self.steps, self.reporter, self.group
        training = plan.training
        if group.any(self.stop.requested):
            # The signal came while the run was loading: no step of this invocation has run, so there is nothing
            # to save (a resumed run's checkpoint is still the newest, and a fresh run starts over).
            raise self.stop.stopped(
                f"{self.stop.signal_name or 'a signal to another process'} before step {self.steps_done + 1} of "
                f"{steps.total_steps}; no checkpoint written"
            )
        reporter.start(steps.total_steps)
        self.model.train()
        # Throughput since the last log; evaluation and checkpoint time is not training time.
        window_start, paused, samples, tokens = time.monotonic(), 0.0, 0, 0
        for step, epoch, micro_batches in optimizer_steps(
            self.lengths, self.batching, training.grad_accum, training.seed, steps.total_steps,
            start_step=self.steps_done, world_size=group.world_size,
        ):  # fmt: skip
            # Every process knows the whole step (the batch order is a pure function of the seed), so the token
            # count that every process divides by needs no communication.
            groups = [[self.data.train[i] for i in mb] for mb in micro_batches]
            step_tokens = sum(target_tokens(g) for g in groups)
            mine = rank_share(groups, group.world_size, group.rank)
            if group.distributed:
                # Dropout masks from (seed, step, rank): a resumed run draws what the uninterrupted one drew, without
                # a checkpoint holding every process's RNG state.
                torch.manual_seed(random.Random(f"{training.seed}:{step}:{group.rank}").getrandbits(63))
            try:
                loss_value, grad_norm, lr = self.optimizer_step(mine or groups[:1], step_tokens, idle=not mine)
            except torch.OutOfMemoryError:
                size, flag_name = (
                    (f"micro-batches of up to {training.max_tokens} tokens", "--max-tokens")
                    if training.max_tokens
                    else (f"{training.batch_size} pairs per micro-batch", "--batch-size")
                )
                raise TrainingError(
                    f"step {step}: out of memory with {size}, pairs of up to "
                    f"{max(p.length for g in groups for p in g)} tokens; lower {flag_name} (raising --grad-accum "
                    "keeps the step's size) or --max-source-len/--max-target-len"
                ) from None
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"step {step}: the training loss is {loss_value}; lower --lr, or use --bf16 instead of --fp16"
                )
            if self.on_step is not None:
                self.on_step(StepReport(step, epoch, groups, step_tokens, loss_value, grad_norm, lr))
            self.steps_done = step
            self.window[0] += loss_value * step_tokens
            self.window[1] += step_tokens
            samples += sum(len(g) for g in groups)
            tokens += step_tokens
            elapsed = max(time.monotonic() - window_start - paused, 1e-9)
            samples_per_second = samples / elapsed
            reporter.step(step, {"loss": loss_value, "learning_rate": lr, "samples_per_second": samples_per_second})

            last = step == steps.total_steps
            rates = {"learning_rate": lr, "grad_norm": grad_norm, "samples_per_second": samples_per_second,
                     "tokens_per_second": tokens / elapsed}  # fmt: skip
            if step == 1 or step % plan.output.logging_steps == 0 or last:
                self.log_training(step, epoch, rates)
                window_start, paused, samples, tokens = time.monotonic(), 0.0, 0, 0
            pause_start = time.monotonic()
            if self.data.eval and (step % plan.evaluation.eval_steps == 0 or last):
                self.evaluate_and_select(step)
                if self.best.exhausted and not last:
                    # Every process holds the same tracker (rank 0's numbers), so all of them stop here. The run
                    # ends as if this were its last step: the loss since the last log is logged, finish() follows.
                    self.stopped_early = True
                    if self.window[1]:
                        self.log_training(step, epoch, rates)
                    reporter.line(
                        f"early stop after step {step} of {steps.total_steps}: {self.best.metric} has not improved "
                        f"for {plan.evaluation.patience} evaluations (best: {self.best.describe()})"
                    )
                    break
            # Every process must stop after the same step, whichever of them the signal reached.
            stop = group.any(self.stop.requested)
            if not last and (step % plan.output.save_steps == 0 or stop):
                self.save_checkpoint(step, epoch)
            if stop and not last:
                raise self.stop.stopped(
                    f"{self.stop.signal_name or 'a signal to another process'} after step {step} of "
                    f"{steps.total_steps}; checkpoint {CHECKPOINTS_DIR}/{step_dir_name(step)} written"
                )
            paused += time.monotonic() - pause_start

    def log_training(self, step: int, epoch: int, rates: dict[str, float]) -> None:
        """Log the training loss averaged over the target tokens since the last log, and the step's `rates`."""
        if len(self.batch_counts) < epoch + 1:  # max_steps reached an epoch the plan did not count
            training = self.plan.training
            self.batch_counts = epoch_batch_counts(self.lengths, self.batching, training.seed, epoch + 1)
        fraction = epoch_fraction(step, epoch, self.batch_counts, self.steps.micro_batches_per_step)
        record = {"step": step, "epoch": round(epoch + fraction, 4), "loss": self.window[0] / self.window[1], **rates}
        self.run_dir.write_metrics(record)
        self.reporter.metrics(step, record)
        self.last_train_loss = record["loss"]
        self.window = [0.0, 0]

    def evaluate_and_select(self, step: int) -> None:
        """Evaluate after `step`, log it, and keep the adapter in best/ when it is the best evaluation so far."""
        self.model.eval()
        try:
            record: dict[str, Any] = {"step": step, "eval_loss": self.evaluator.loss(self.loss_sum, self.batch_device)}
            if self.plan.evaluation.eval_chrf:
                generator = LoadedModel(self.model, self.tokenizer, REGISTRY[self.plan.which].family, self.batch_device)
                # The precision the model trains in: under --bf16/--fp16 the frozen weights are half, norms fp32.
                record["eval_chrf"] = self.evaluator.chrf(generator, self.autocast(), step)
                if self.glossary is not None:
                    record["eval_term_success"] = self.group.from_main(
                        lambda: self.evaluator.term_success(self.glossary))
        finally:
            self.model.train()
        # Rank 0's numbers are every process's, so that the best step and an early stop are decided alike everywhere.
        record = self.group.from_main(lambda: record)
        self.last_eval_loss = record["eval_loss"]
        self.last_eval_chrf = record.get("eval_chrf")
        self.run_dir.write_metrics(record)
        self.reporter.metrics(step, record)
        if self.best.update(step, record[self.best.metric]):  # on every process: all of them track the best
            best = {"step": step, "metric": self.best.metric, "value": record[self.best.metric],
                    **{k: v for k, v in record.items() if k != "step"}}  # fmt: skip
            self.run_dir.save_best(self.model, best)

    def save_checkpoint(self, step: int, epoch: int) -> None:
        """Rank 0 writes the checkpoint (every process holds the same state); the others wait until it is complete,
        because a process that exits first (preemption) makes torchrun stop the rest, rank 0 mid-save included."""
        state = {
            "epoch": epoch,
            "total_steps": self.steps.total_steps,
            "window": self.window,
            "last_train_loss": self.last_train_loss,
            "last_eval_loss": self.last_eval_loss,
            "last_eval_chrf": self.last_eval_chrf,
            "best": self.best.state(),
        }
        saved = self.run_dir.save_checkpoint(
            step, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
            state=state, keep=self.plan.output.save_total_limit,
        )  # fmt: skip
        if saved is not None:
            self.reporter.line(f"checkpoint saved: {CHECKPOINTS_DIR}/{step_dir_name(step)}")
        self.group.barrier()

    # -- the end -------------------------------------------------------------------------------------------------
    def finish(self) -> RunResult:
        """The last step's adapter, the tokenizer, the peak memory and finished.json (rank 0); every process waits."""
        seconds = time.monotonic() - self.started
        result = RunResult(str(self.plan.run_dir), self.steps_done, self.last_train_loss, self.last_eval_loss, seconds)
        best = self.best
        evaluated = best.best_step is not None
        record: dict[str, Any] = {
            "status": "ok",
            "steps": result.steps,
            "stopped_early": self.stopped_early,
            "train_loss": result.train_loss,
            "eval_loss": result.eval_loss,
            **({"eval_chrf": self.last_eval_chrf} if self.plan.evaluation.eval_chrf else {}),
            "seconds": round(seconds, 1),
            "adapter": ADAPTER_DIR,
            # lora/ is the last step's adapter; best/ the best evaluation's (the same weights when best_step is the
            # last step). None of these without an evaluation.
            "best": BEST_DIR if evaluated else None,
            "best_step": best.best_step,
            "best_metric": best.metric if evaluated else None,
            "best_value": best.best_value,
            "finished": now_iso(),
        }
        self.run_dir.finish(self.model, self.tokenizer, self.memory.read().record(), record)
        if self.run_dir.writes:
            self.reporter.line(
                f"adapter saved to {self.plan.run_dir / ADAPTER_DIR} ({result.steps} steps, {seconds:.0f} s)"
                f"{self.best.note(self.steps_done, self.plan.run_dir / BEST_DIR)}"
            )
        self.group.barrier()  # the other processes return once rank 0 has written everything
        return result

    def cleanup(self) -> None:
        self.reporter.close()
        self.run_dir.close()
