"""The shared core: one LoRA fine-tuning run, as a recipe with setup -> train -> finish.

`csas finetune` and `csas finetune-all` both come here. Data and plan are resolved by `prepare_run` (no weights, no
writes: what --dry-run prints); `FinetuneRecipe` then loads, trains and writes the run directory.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .batches import (
    IGNORE_INDEX,
    collate,
    epoch_batch_counts,
    fill_token_budget,
    optimizer_steps,
    plan_steps,
    rank_share,
)
from .checkpoints import (
    CheckpointError,
    restore_best,
    restore_checkpoint,
    save_best,
    save_checkpoint,
    step_dir_name,
)
from .data import Split, load_examples, split_examples
from .device_map import distributed_env, on_cpu
from .distributed import ProcessGroup
from .errors import CsasError, ModelError, SettingsError, TrainingError
from .features import TokenizedPair, tokenize_examples
from .outputs import (
    ADAPTER_DIR,
    BEST_DIR,
    CHECKPOINTS_DIR,
    FINISHED,
    LOG,
    METRICS,
    RUN_JSON,
    MetricsLog,
    check_run_dir,
    read_metrics,
    clear_run_dir,
    file_sha256,
    library_versions,
    now_iso,
    run_state,
    write_json_atomic,
    write_text_atomic,
)
from .preemption import Preempted, StopRequest
from .progress import Reporter, use_progress_bar
from .registry import REGISTRY
from .resume import check_resumable, choose_checkpoint
from .selection import BestTracker, chrf_sample, evaluations_in
from .settings import FinetuneSettings, Plan, build_plan, flag


@dataclass(frozen=True)
class PreparedRun:
    plan: Plan
    split: Split


def prepare_run(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> PreparedRun:
    """Resolve the plan and read, filter and split the data: every check that needs no weights."""
    world_size, local_rank = distributed_env(os.environ if environ is None else environ)
    plan = build_plan(settings, world_size=world_size, local_rank=local_rank)
    if Path(plan.model_id).is_dir():
        # A local snapshot is recorded absolute, so that run.json's base is found from any folder (translate, merge).
        plan = replace(plan, model_id=os.path.abspath(plan.model_id))
    loaded = load_examples(settings.data, plan.source_langs)
    split = split_examples(
        loaded.examples, plan.val_ratio, plan.seed, max_train=plan.max_train_samples, max_eval=plan.max_eval_samples
    )
    plan = plan.with_counts(
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        train_publications=split.train_publications,
        eval_publications=split.eval_publications,
    )
    if not split.eval:
        for name, given in (("patience", plan.patience is not None), ("eval_chrf", plan.eval_chrf)):
            if given:
                raise SettingsError(
                    f"{flag(name)} needs evaluations, but the validation split is empty (the {plan.which} rows come "
                    f"from a single publication, or are too few for --val-ratio {plan.val_ratio}); drop {flag(name)}"
                )
    return PreparedRun(plan, split)


def dry_run_record(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What --dry-run prints: the resolved plan, the split's sizes and the state of the output directory."""
    record = prepare_run(settings, environ).plan.to_dict()
    record["output_state"] = run_state(settings.run_dir)
    return record


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    seconds: float


def run_finetune(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> RunResult:
    """Check the output directory, prepare, train and write one run (or continue one with --resume).

    Under torchrun every process comes here, in the process group it joins on its first run.
    """
    environ = os.environ if environ is None else environ
    group = ProcessGroup.join(*distributed_env(environ))
    # Rank 0 alone reads the output directory and hands its answer (or its error) to the others, so every process
    # starts from the same checkpoint; nothing is written there before setup's barrier.
    if group.from_main(lambda: nothing_left_to_do(settings)):
        return finished_result(settings.run_dir, say=group.is_main)
    # Installed before anything loads: a SIGTERM or SIGUSR1 while the model loads is then a stop request like any
    # other, answered before the first step with exit code 75, instead of a killed process that a requeue script
    # cannot tell from a crash.
    with StopRequest() as stop:
        prepared = prepare_run(settings, environ)
        resume_from = group.from_main(lambda: resume_point(settings, prepared.plan))
        recipe = FinetuneRecipe(prepared.plan, prepared.split, resume_from=resume_from, stop=stop)  # in `group`
        try:
            recipe.setup()
            recipe.train()
            return recipe.finish()
        finally:
            recipe.cleanup()


def nothing_left_to_do(settings: FinetuneSettings) -> bool:
    """With --resume: whether the run is already finished (a requeued job). Without: refuse to replace a run."""
    if settings.resume is None:
        check_run_dir(settings.run_dir, settings.overwrite)
        return False
    return run_state(settings.run_dir) == "finished"


def resume_point(settings: FinetuneSettings, plan: Plan) -> Path | None:
    """The checkpoint --resume continues from (None for a fresh start), after checking the run is the same run."""
    if settings.resume is None:
        return None
    resume_from = choose_checkpoint(settings.run_dir, settings.resume, warn=lambda m: sys.stderr.write(m + "\n"))
    if resume_from is not None:
        check_resumable(settings.run_dir, plan, file_sha256(settings.data))
    return resume_from


def finished_result(run_dir: Path, say: bool = True) -> RunResult:
    record = json.loads((run_dir / FINISHED).read_text(encoding="utf-8"))
    if say:
        sys.stderr.write(f"{run_dir} holds a finished run; nothing to resume\n")
    return RunResult(str(run_dir), record.get("steps", 0), record.get("train_loss"), record.get("eval_loss"), 0.0)


def token_count(pairs: Sequence[TokenizedPair]) -> int:
    return sum(len(p.labels) for p in pairs)


def peak_memory(device: Any) -> dict[str, Any]:
    """The most memory this process held so far: what the next run on this hardware has to fit (rank 0's under DDP).

    CUDA: torch.cuda.max_memory_allocated (tensors, not the allocator's cache). CPU: the peak resident set size.
    """
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "measure": "torch.cuda.max_memory_allocated",
                "device": str(device)}  # fmt: skip
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"bytes": int(kib) * 1024, "measure": "peak resident set size (ru_maxrss)", "device": str(device)}


class FinetuneRecipe:
    """One run. `setup` builds everything in dependency order; `train` is the whole loop, written out.

    Under torchrun each process holds one recipe: it trains on its share of every optimizer step, and only rank 0
    writes the run directory and reports progress.
    """

    def __init__(
        self,
        plan: Plan,
        split: Split,
        resume_from: Path | None = None,
        group: ProcessGroup | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.plan = plan
        self.split = split
        self.run_dir = plan.run_dir
        self.resume_from = resume_from
        self.group = group if group is not None else ProcessGroup.current()
        if self.group.world_size != plan.world_size:
            raise CsasError(
                f"WORLD_SIZE={plan.world_size}, but the process group has {self.group.world_size} processes"
            )
        self.reporter: Reporter | None = None
        self.metrics: MetricsLog | None = None
        self.last_train_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.last_eval_chrf: float | None = None
        self.steps_done = 0
        # Training loss sum and target tokens since the last logged step; checkpointed, so a resumed run logs the
        # same averages as an uninterrupted one.
        self.window = [0.0, 0]
        # The best evaluation and the --patience count; checkpointed like the window.
        self.best = BestTracker(plan.best_metric, plan.patience)
        self.stopped_early = False
        # The validation rows chrF translates (indices into split.eval), chosen once: every evaluation scores them.
        self.chrf_rows = chrf_sample(len(split.eval), plan.eval_chrf_samples, plan.seed) if plan.eval_chrf else []
        self.stop = stop if stop is not None else StopRequest()
        self.started = time.monotonic()
        # The model and its loss as the loop calls them (set up by setup): the objective itself, or under torchrun
        # the objective in DistributedDataParallel.
        self.wrapped: Any = None

    # -- setup ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from .modeling import quiet_libraries

        quiet_libraries()  # before transformers is imported: some of the chatter comes at import time
        import torch
        from transformers import get_linear_schedule_with_warmup, set_seed

        from .modeling import (
            add_lora,
            check_lengths,
            check_precision,
            input_device,
            load_config,
            load_model,
            load_tokenizer,
            training_device,
        )

        plan, group = self.plan, self.group
        # Precision is checked before anything is loaded, so a wrong flag costs nothing.
        self.device = training_device(plan.local_rank)
        self.precision = check_precision(plan.precision, self.device)
        set_seed(plan.seed)

        # The config, then the tokenizer: both are cheap, a checkpoint of the wrong family is refused before any
        # weights load, and the data must be tokenized before the step count is known.
        family = REGISTRY[plan.which].family
        config = load_config(plan.model_id, family, plan.which)
        check_lengths(config, family, plan.max_source_len, plan.max_target_len)
        self.tokenizer = load_tokenizer(plan.model_id)
        lengths = {"max_source_len": plan.max_source_len, "max_target_len": plan.max_target_len}
        self.train_pairs = tokenize_examples(self.tokenizer, family, self.split.train, **lengths)
        self.eval_pairs = tokenize_examples(self.tokenizer, family, self.split.eval, **lengths)
        self.plan_training_steps()

        # The model once; LoRA after quantization and checkpointing, so the adapters sit on the prepared base.
        # Seeding again right before LoRA makes the adapters' initialisation independent of loading details.
        placed = replace(plan, device_map=on_cpu(plan.device_map)) if self.device.type == "cpu" else plan
        model = load_model(placed, config, self.precision, self.device)
        set_seed(plan.seed)
        self.model = add_lora(model, plan)
        self.batch_device = input_device(self.model)
        if self.batch_device.type != self.device.type:
            # --device-map placed the model elsewhere (cpu on a GPU node): compute where the model is.
            self.device = self.batch_device
            self.precision = check_precision(plan.precision, self.device)
        config = self.model.get_base_model().config
        self.pad_id = config.pad_token_id
        self.decoder_start_id = config.decoder_start_token_id
        if self.pad_id is None or self.decoder_start_id is None:
            raise ModelError(f"--model-id {plan.model_id}: its config has no pad_token_id or decoder_start_token_id")

        # What the loop calls: the model and its loss on target tokens in one module (see loss.py).
        from .loss import TargetTokenLoss

        autocast_dtype = self.precision.weight_dtype if self.precision.autocast else None
        self.objective = TargetTokenLoss(self.model, plan.label_smoothing, autocast_dtype)

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable,
            lr=plan.learning_rate,
            weight_decay=plan.weight_decay,
            fused=all(p.device.type == "cuda" for p in trainable),
        )
        warmup = math.ceil(plan.warmup_ratio * self.steps.total_steps)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, self.steps.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.needs_loss_scaler else None

        if self.resume_from is not None:
            # Last, so the restored RNG states are not consumed by anything above.
            self.restore()
        # Under torchrun the loop calls the model through DDP, whose constructor hands rank 0's weights to all.
        self.wrapped = group.data_parallel(self.objective)

        # Outputs are touched only now that everything loaded, on every process: a bad model id leaves a previous
        # run as it was. Rank 0 alone writes them; the others keep no file open in the run directory.
        group.barrier()
        if group.is_main:
            if self.resume_from is not None:
                self.note_resume()
            else:
                clear_run_dir(self.run_dir)
                self.run_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.run_dir / RUN_JSON, self.run_record(trainable))
        self.metrics = MetricsLog(self.run_dir / METRICS if group.is_main else None)
        self.reporter = Reporter(
            self.run_dir / LOG if group.is_main else None,
            bar=group.is_main and use_progress_bar(plan.disable_tqdm),
            quiet=not group.is_main,
        )
        if self.resume_from is not None:
            self.reporter.line(f"resuming from {self.resume_from} (step {self.steps_done})")
        n_trainable = sum(p.numel() for p in trainable)
        n_total = sum(p.numel() for p in self.model.parameters())
        self.reporter.line(
            f"{plan.which}: {plan.model_id} on {self.device} ({plan.precision}{', QLoRA 4-bit' if plan.qlora else ''}); "
            f"{len(self.train_pairs)} train / {len(self.eval_pairs)} eval pairs; "
            f"{self.steps.total_steps} steps of {self.step_size()}; "
            f"LoRA r={plan.lora_r} on {','.join(plan.lora_targets)}: {n_trainable:,} of {n_total:,} parameters trained"
        )
        if self.eval_pairs and plan.eval_chrf:
            self.reporter.line(
                f"evaluations also score chrF on {len(self.chrf_rows)} validation rows "
                f"({'greedy' if plan.eval_num_beams == 1 else f'beam {plan.eval_num_beams}'}); the best evaluation "
                "is the highest eval_chrf"
            )
        evaluations = evaluations_in(self.steps.total_steps, plan.eval_steps)
        if plan.patience is not None and evaluations <= plan.patience:
            self.reporter.line(
                f"warning: --patience {plan.patience} cannot stop this run: it evaluates {evaluations} times "
                f"(every {plan.eval_steps} of {self.steps.total_steps} steps); lower --eval-steps"
            )

    def step_size(self) -> str:
        """What one optimizer step holds, for the set-up line."""
        plan = self.plan
        processes = f"{plan.world_size} processes x " if plan.world_size > 1 else ""
        if plan.max_tokens:
            return f"{processes}{plan.grad_accum} micro-batches of up to {plan.max_tokens} tokens"
        parts = f" ({processes}{plan.batch_size} x {plan.grad_accum})" if plan.world_size > 1 else ""
        return f"{plan.global_batch} samples{parts}"

    def restore(self) -> None:
        """Load the checkpoint into this process's model, optimizer, scheduler, scaler and RNGs."""
        assert self.resume_from is not None
        try:
            state = restore_checkpoint(
                self.resume_from, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
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

    def note_resume(self) -> None:
        """Drop metrics logged after the checkpoint (they will be logged again), put best/ back as the checkpoint
        knew it, and record the resume in run.json."""
        assert self.resume_from is not None
        restore_best(self.resume_from, self.run_dir / BEST_DIR)
        metrics_path = self.run_dir / METRICS
        if metrics_path.exists():
            kept = [r for r in read_metrics(metrics_path) if r.get("step", 0) <= self.steps_done]
            write_text_atomic(metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        record = json.loads((self.run_dir / RUN_JSON).read_text(encoding="utf-8"))
        record.setdefault("resumed", []).append({"from_step": self.steps_done, "at": now_iso(), "device": str(self.device)})
        write_json_atomic(self.run_dir / RUN_JSON, record)

    def run_record(self, trainable: Sequence[Any]) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "total_steps": self.steps.total_steps,
            "steps_per_epoch": self.steps.steps_per_epoch,
            "warmup_steps": math.ceil(self.plan.warmup_ratio * self.steps.total_steps),
            "trainable_parameters": sum(p.numel() for p in trainable),
            "device": str(self.device),
            "data_sha256": file_sha256(Path(self.plan.data)),
            "versions": library_versions(),
            "started": now_iso(),
        }

    # -- the loop ------------------------------------------------------------------------------------------------
    def forward_loss_sum(self, batch: dict[str, Any]) -> Any:
        """Label-smoothed cross-entropy summed over target tokens (the caller divides by the step's token count)."""
        import torch

        with torch.autocast(self.precision.device_type, dtype=self.precision.weight_dtype, enabled=self.precision.autocast):
            return self.wrapped(**batch, ignore_index=IGNORE_INDEX)

    def to_device(self, pairs: Sequence[TokenizedPair]) -> dict[str, Any]:
        batch = collate(pairs, self.pad_id, self.decoder_start_id)
        pin = self.batch_device.type == "cuda"
        return {k: (v.pin_memory() if pin else v).to(self.batch_device, non_blocking=True) for k, v in batch.items()}

    def optimizer_step(
        self, groups: Sequence[Sequence[TokenizedPair]], step_tokens: int, idle: bool = False
    ) -> tuple[float, float, float]:
        """Forward/backward this process's micro-batches, clip, step; returns (token-averaged loss, grad norm, lr).

        `step_tokens` counts the target tokens of the whole step, over every process, and the returned loss averages
        over them too. `idle`: this process has no micro-batch in this step (a short last step of an epoch); it runs
        `groups` with zero weight, because DDP's gradient all-reduce needs every process.
        """
        import torch

        # Dividing every micro-batch by the whole step's target tokens averages the loss over tokens, not over
        # micro-batches of unequal length. DDP averages gradients over processes; multiplying by their number turns
        # that average back into the sum, so N processes compute the gradient one process would with N x grad_accum.
        weight = 0 if idle else self.group.world_size
        step_loss = torch.zeros((), device=self.batch_device)
        last = len(groups) - 1
        for i, pairs in enumerate(groups):
            with self.group.accumulating(self.wrapped, sync=i == last):
                loss_sum = self.forward_loss_sum(self.to_device(pairs))
                loss = loss_sum * weight / step_tokens
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            if not idle:
                step_loss += loss_sum.detach()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.plan.max_grad_norm
        )
        lr = self.scheduler.get_last_lr()[0]
        if self.scaler:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale  # the scaler skips steps with inf/nan gradients
        else:
            self.optimizer.step()
            stepped = True
        if stepped:  # as in the HF Trainer, a skipped step does not advance the schedule
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.group.sum_(step_loss)  # every process logs, and checks, the loss of the whole step
        loss_sum, norm = torch.stack([step_loss.float(), grad_norm.float().to(step_loss.device)]).tolist()
        return loss_sum / step_tokens, norm, lr  # one host sync per optimizer step

    def train(self) -> None:
        from .modeling import attention_kernels

        with self.stop, attention_kernels(self.device):
            self.train_loop()

    def train_loop(self) -> None:
        import torch

        plan, steps, reporter = self.plan, self.steps, self.reporter
        assert reporter is not None and self.metrics is not None
        group = self.group
        if group.any(self.stop.requested):
            # The signal came while the run was loading: no step of this invocation has run, so there is nothing
            # to save (a resumed run's checkpoint is still the newest, and a fresh run starts over).
            raise Preempted(
                f"stopped by {self.stop.signal_name or 'a signal to another process'} before step "
                f"{self.steps_done + 1} of {steps.total_steps}; no checkpoint written; run the same command with "
                "--resume auto"
            )
        lengths = [p.length for p in self.train_pairs]
        reporter.start(steps.total_steps)
        self.model.train()
        # Throughput since the last log; evaluation and checkpoint time is not training time.
        window_start, paused, samples, tokens = time.monotonic(), 0.0, 0, 0
        for step, epoch, micro_batches in optimizer_steps(
            lengths, plan.batch_size, plan.grad_accum, plan.seed, steps.total_steps, start_step=self.steps_done,
            world_size=plan.world_size, max_tokens=plan.max_tokens,
        ):  # fmt: skip
            # Every process knows the whole step (the batch order is a pure function of the seed), so the token
            # count that every process divides by needs no communication.
            groups = [[self.train_pairs[i] for i in mb] for mb in micro_batches]
            step_tokens = sum(token_count(g) for g in groups)
            mine = rank_share(groups, group.world_size, group.rank)
            if group.distributed:
                # Dropout masks from (seed, step, rank): a resumed run draws what the uninterrupted one drew, without
                # a checkpoint holding every process's RNG state.
                torch.manual_seed(random.Random(f"{plan.seed}:{step}:{group.rank}").getrandbits(63))
            try:
                loss_value, grad_norm, lr = self.optimizer_step(mine or groups[:1], step_tokens, idle=not mine)
            except torch.OutOfMemoryError:
                size, flag_name = (
                    (f"micro-batches of up to {plan.max_tokens} tokens", "--max-tokens")
                    if plan.max_tokens
                    else (f"{plan.batch_size} pairs per micro-batch", "--batch-size")
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
            if step == 1 or step % plan.logging_steps == 0 or last:
                self.log_training(step, epoch, rates)
                window_start, paused, samples, tokens = time.monotonic(), 0.0, 0, 0
            pause_start = time.monotonic()
            if self.eval_pairs and (step % plan.eval_steps == 0 or last):
                self.evaluate_and_select(step)
                if self.best.exhausted and not last:
                    # Every process holds the same tracker (rank 0's numbers), so all of them stop here. The run
                    # ends as if this were its last step: the loss since the last log is logged, finish() follows.
                    self.stopped_early = True
                    if self.window[1]:
                        self.log_training(step, epoch, rates)
                    reporter.line(
                        f"early stop after step {step} of {steps.total_steps}: {plan.best_metric} has not improved "
                        f"for {plan.patience} evaluations (best: {self.best.describe()})"
                    )
                    break
            # Every process must stop after the same step, whichever of them the signal reached.
            stop = group.any(self.stop.requested)
            if not last and (step % plan.save_steps == 0 or stop):
                self.save_checkpoint(step, epoch)
            if stop and not last:
                raise Preempted(
                    f"stopped by {self.stop.signal_name or 'a signal to another process'} after step {step} of "
                    f"{steps.total_steps}; checkpoint "
                    f"{CHECKPOINTS_DIR}/{step_dir_name(step)} written; run the same command with --resume auto"
                )
            paused += time.monotonic() - pause_start

    def log_training(self, step: int, epoch: int, rates: dict[str, float]) -> None:
        """Log the training loss averaged over the target tokens since the last log, and the step's `rates`."""
        assert self.metrics is not None and self.reporter is not None
        record = {
            "step": step,
            "epoch": round(epoch + self.epoch_fraction(step, epoch), 4),
            "loss": self.window[0] / self.window[1],
            **rates,
        }
        self.metrics.write(record)
        self.reporter.metrics(step, record)
        self.last_train_loss = record["loss"]
        self.window = [0.0, 0]

    def save_checkpoint(self, step: int, epoch: int) -> None:
        """Rank 0 writes the checkpoint (every process holds the same state); the others wait until it is complete,
        because a process that exits first (preemption) makes torchrun stop the rest, rank 0 mid-save included."""
        assert self.reporter is not None
        if self.group.is_main:
            save_checkpoint(
                self.run_dir / CHECKPOINTS_DIR,
                step,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                state={
                    "epoch": epoch,
                    "total_steps": self.steps.total_steps,
                    "window": self.window,
                    "last_train_loss": self.last_train_loss,
                    "last_eval_loss": self.last_eval_loss,
                    "last_eval_chrf": self.last_eval_chrf,
                    "best": self.best.state(),
                },
                keep=self.plan.keep_checkpoints,
                best=self.run_dir / BEST_DIR,
            )
            self.reporter.line(f"checkpoint saved: {CHECKPOINTS_DIR}/{step_dir_name(step)}")
        self.group.barrier()

    def plan_training_steps(self) -> None:
        """The run's optimizer steps, from the training pairs (csas bench plans again after swapping its own in)."""
        plan = self.plan
        # Micro-batches of each epoch so far (extended by epoch_fraction); token-budget epochs differ by a few, and
        # the plan counts each one's own steps.
        self.batch_counts: list[int] = []
        self.count_batches(max(1, math.ceil(plan.epochs)))
        self.steps = plan_steps(
            len(self.train_pairs), plan.batch_size, plan.grad_accum, plan.epochs, plan.max_steps, plan.world_size,
            batch_counts=self.batch_counts if plan.max_tokens else None,
        )  # fmt: skip

    def count_batches(self, epochs: int) -> None:
        """Make `batch_counts` cover the first `epochs` epochs (a pure function of the seed, counted once)."""
        if len(self.batch_counts) < epochs:
            lengths = [p.length for p in self.train_pairs]
            plan = self.plan
            self.batch_counts = epoch_batch_counts(lengths, plan.batch_size, plan.seed, epochs, plan.max_tokens)

    def epoch_fraction(self, step: int, epoch: int) -> float:
        """How far into `epoch` optimizer step `step` is, in (0, 1]."""
        self.count_batches(epoch + 1)
        per_step = self.steps.micro_batches_per_step
        counts = [math.ceil(b / per_step) for b in self.batch_counts[: epoch + 1]]
        return (step - sum(counts[:epoch])) / counts[epoch]

    def evaluate(self) -> float:
        """Token-averaged validation loss with the training objective, batches sorted by length.

        Under torchrun each process evaluates every world_size-th batch and the sums are added up.
        """
        import torch

        self.model.eval()
        lengths = [p.length for p in self.eval_pairs]
        order = sorted(range(len(self.eval_pairs)), key=lambda i: lengths[i])
        if self.plan.max_tokens:
            batches = fill_token_budget(order, lengths, self.plan.max_tokens)
        else:
            batches = [order[i : i + self.plan.batch_size] for i in range(0, len(order), self.plan.batch_size)]
        total = torch.zeros((), device=self.batch_device, dtype=torch.float64)
        tokens = 0
        with torch.no_grad():
            for batch in batches[self.group.rank :: self.group.world_size]:
                pairs = [self.eval_pairs[i] for i in batch]
                total += self.forward_loss_sum(self.to_device(pairs)).double()
                tokens += token_count(pairs)
        self.model.train()
        total_sum, total_tokens = self.group.sum_(torch.stack([total, total.new_tensor(tokens)])).tolist()
        return total_sum / total_tokens

    def evaluate_chrf(self) -> float:
        """chrF of the fixed sample's translations, scored as `csas evaluate` scores (sacrebleu's defaults).

        Generation goes through inference.py's per-family settings, one direction at a time (m2m100_418m's sample
        holds both), each forced to start with its target language's code. Under torchrun each process translates
        its share of every direction; rank 0 scores the gathered translations and hands the value to every process.
        """
        import torch

        from .evaluate import score
        from .inference import Direction, GenerationSettings, LoadedModel, ModelSource
        from .translate import translate_encoded

        plan, group, tokenizer, precision = self.plan, self.group, self.tokenizer, self.precision
        source = ModelSource.in_training(plan.which, plan.model_id, self.run_dir)
        loaded = LoadedModel(model=self.model, tokenizer=tokenizer, source=source, device=self.batch_device)
        # Labels hold the language code and </s> too, so max_target_len new tokens fit the longest trained target.
        settings = GenerationSettings(
            num_beams=plan.eval_num_beams, max_new_tokens=plan.max_target_len, batch_size=plan.batch_size
        )
        by_direction: dict[Direction, list[int]] = {}
        for i in self.chrf_rows:
            example = self.split.eval[i]
            by_direction.setdefault(Direction(example.source_lang, example.target_lang), []).append(i)
        generation_config = loaded.transformers_model.generation_config
        # Generation points the tokenizer (saved with the run) and the generation config at each direction in turn.
        kept = {name: getattr(tokenizer, name) for name in ("src_lang", "tgt_lang") if hasattr(tokenizer, name)}
        forced_bos = generation_config.forced_bos_token_id
        mine: dict[int, str] = {}
        self.model.eval()
        try:
            # The precision the model trains in: under --bf16/--fp16 the frozen weights are half and the norms fp32.
            with torch.autocast(precision.device_type, dtype=precision.weight_dtype, enabled=precision.autocast):
                for direction in sorted(by_direction, key=lambda d: (d.source, d.target)):
                    # Sorted by length, then dealt out: every process gets short and long rows alike.
                    rows = sorted(by_direction[direction], key=lambda i: len(self.eval_pairs[i].input_ids))
                    share = rows[group.rank :: group.world_size]
                    loaded.use_direction(direction)
                    lines = translate_encoded(loaded, [self.eval_pairs[i].input_ids for i in share], settings)
                    mine.update(zip(share, lines))
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"step {self.steps_done}: out of memory translating for chrF, {plan.batch_size} sentences x "
                f"{plan.eval_num_beams} beams at a time; lower --eval-num-beams or --batch-size"
            ) from None
        finally:
            self.model.train()
            for name, value in kept.items():
                setattr(tokenizer, name, value)
            generation_config.forced_bos_token_id = forced_bos
        hypotheses: dict[int, str] = {}
        for part in group.gather_objects(mine):
            hypotheses.update(part)
        references = [self.split.eval[i].target for i in self.chrf_rows]
        return group.from_main(lambda: score([hypotheses[i] for i in self.chrf_rows], references)[1])

    def evaluate_and_select(self, step: int) -> None:
        """Evaluate after `step`, log it, and keep the adapter in best/ when it is the best evaluation so far."""
        assert self.metrics is not None and self.reporter is not None
        record: dict[str, Any] = {"step": step, "eval_loss": self.evaluate()}
        if self.plan.eval_chrf:
            record["eval_chrf"] = self.evaluate_chrf()
        # Rank 0's numbers are every process's, so that the best step and an early stop are decided alike everywhere.
        record = self.group.from_main(lambda: record)
        self.last_eval_loss = record["eval_loss"]
        self.last_eval_chrf = record.get("eval_chrf")
        self.metrics.write(record)
        self.reporter.metrics(step, record)
        improved = self.best.update(step, record[self.best.metric])  # on every process: all of them track the best
        if improved and self.group.is_main:
            save_best(
                self.run_dir / BEST_DIR,
                self.model,
                {"step": step, "metric": self.best.metric, "value": record[self.best.metric],
                 **{k: v for k, v in record.items() if k != "step"}},
            )  # fmt: skip

    # -- outputs -------------------------------------------------------------------------------------------------
    def finish(self) -> RunResult:
        from .modeling import save_tokenizer

        assert self.reporter is not None
        adapter_dir = self.run_dir / ADAPTER_DIR
        seconds = time.monotonic() - self.started
        result = RunResult(str(self.run_dir), self.steps_done, self.last_train_loss, self.last_eval_loss, seconds)
        if not self.group.is_main:
            self.group.barrier()  # returns once rank 0 has written everything
            return result
        self.model.save_pretrained(str(adapter_dir), safe_serialization=True)
        save_tokenizer(self.tokenizer, self.run_dir)
        run_record = json.loads((self.run_dir / RUN_JSON).read_text(encoding="utf-8"))
        run_record["peak_memory"] = peak_memory(self.device)
        write_json_atomic(self.run_dir / RUN_JSON, run_record)
        best = self.best
        record: dict[str, Any] = {
            "status": "ok",
            "steps": result.steps,
            "stopped_early": self.stopped_early,
            "train_loss": result.train_loss,
            "eval_loss": result.eval_loss,
            **({"eval_chrf": self.last_eval_chrf} if self.plan.eval_chrf else {}),
            "seconds": round(seconds, 1),
            "adapter": ADAPTER_DIR,
            # lora/ is the last step's adapter; best/ the best evaluation's (the same weights when best_step is the
            # last step). None of these without an evaluation.
            "best": BEST_DIR if best.best_step is not None else None,
            "best_step": best.best_step,
            "best_metric": best.metric if best.best_step is not None else None,
            "best_value": best.best_value,
            "finished": now_iso(),
        }
        # Written last: its presence is the promise that everything above is complete.
        write_json_atomic(self.run_dir / FINISHED, record)
        self.reporter.line(f"adapter saved to {adapter_dir} ({result.steps} steps, {seconds:.0f} s){self.best_note()}")
        self.group.barrier()
        return result

    def best_note(self) -> str:
        """The end of the final log line: where the best evaluation's adapter is, and which adapter to use."""
        best = self.best
        if best.best_step is None:
            return ""
        if best.best_step == self.steps_done:
            return f"; it is also the best evaluation ({best.describe()}), copied to {BEST_DIR}/"
        return (
            f"; the best evaluation was {best.describe()}: use {self.run_dir / BEST_DIR} for it, "
            f"{ADAPTER_DIR}/ holds the last step's"
        )

    def cleanup(self) -> None:
        if self.reporter is not None:
            self.reporter.close()
        if self.metrics is not None:
            self.metrics.close()
