"""A recipe's construction and set-up: RecipeSetup builds a run's state from the plan, the tokenized pairs, the base
and the hardware, and `setup` loads the model and builds what trains it (FinetuneRecipe, in recipe.py, adds the loop).

A recipe is built from a plan and the tokenized pairs (run.py prepares both for `csas finetune`, finetune-all and
sweep; `csas bench` builds one on its own workload), with the engine's parts as explicit arguments: the batching
strategy, the padding multiple, the loss, the attention kernels, and a callback after every optimizer step. `setup`
loads the model once, wraps it with LoRA and its loss, builds the optimizer, restores a checkpoint when resuming, and
only then opens the run directory (run.json) and reports the set-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.batches import Batching, batching_for
from ..data.features import TokenizedPair, TokenizedSplit
from ..data.glossary import Glossary
from ..data.pairs import ReadCounts, ReadOptions, pairs_sha256
from ..errors import CsasError, ModelError
from ..files import library_versions, now_iso
from ..inference.generation import GenerationSettings
from ..memory import PeakMemory
from ..progress import Reporter, counted, use_progress_bar
from ..registry import other_language
from ..plan import Plan
from ..settings import LABEL_SMOOTHING
from ..snapshots import Weights
from .checkpoints import CheckpointError, restore_checkpoint
from .distributed import ProcessGroup
from .evaluation import BestTracker, Evaluator, chrf_sample, evaluations_in
from .groundwork import Base, Hardware, micro_batch_size, schedule
from .preemption import StopRequest
from .rundir import RunDirectory
from .step import build_optimizer


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


LossFactory = Callable[[Any, float, Any], Any]
"""(LoRA model, label smoothing, autocast dtype or None) -> a module: batch in, summed target-token loss out."""


class RecipeSetup:
    """A run as built, and its `setup`: everything up to the first step (FinetuneRecipe adds the loop and the end)."""

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
        # Labels hold the language code and </s> too, so max_target_len new tokens fit the longest trained target;
        # each batch's translations stop sooner, at a length that follows its source, unless
        # --eval-max-len sets the limit.
        limit = evaluation.eval_max_len
        generation = GenerationSettings(evaluation.eval_num_beams, limit or plan.corpus.max_target_len, micro_batch)
        self.evaluator = Evaluator(data, self.batching, self.group, chrf_rows=chrf_rows, generation=generation,
                                   follow_source=limit is None, stop_requested=lambda: self.stop.requested)  # fmt: skip
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
        self.pending_evaluation: dict[str, Any] | None = None
        """The evaluation the checkpoint resumed from was stopped in ({"epoch", "rates"}): the loop does it first."""
        self.started = time.monotonic()
        self.seconds_before = 0.0
        """The time earlier sessions spent on the steps this one resumed from (their checkpoint's `seconds`)."""

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
        self.seconds_before = float(state.get("seconds") or 0.0)  # 0 for a checkpoint written before it was kept
        self.best.restore(state.get("best"))
        self.pending_evaluation = state.get("pending_evaluation") if self.data.eval else None

    def open_run_dir(self) -> None:
        """A fresh run clears the directory and writes run.json; a resumed one rewinds it to its checkpoint."""
        if not self.run_dir.writes:
            return
        if self.resume_from is not None:
            note = {"from_step": self.steps_done, "at": now_iso(), "device": str(self.device)}
            self.run_dir.rewind(self.resume_from, self.steps_done, note, evaluated=self.pending_evaluation is None)
        else:
            self.run_dir.create(self.run_record())
        self.run_dir.open_trackers(self.plan.output.trackers, self.plan.to_dict())

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
            again = "; the evaluation stopped there is done again" if self.pending_evaluation is not None else ""
            reporter.line(f"resuming from {self.resume_from} (step {self.steps_done}){again}")
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
            limit = evaluation.eval_max_len
            most = "" if limit is None else f", at most {counted(limit, 'token')} each"
            reporter.line(
                f"evaluations also score chrF on {counted(len(self.evaluator.chrf_rows), 'validation row')} "
                f"({'greedy' if beams == 1 else f'beam {beams}'}{most}); the best evaluation is the highest eval_chrf"
            )
        evaluations = evaluations_in(self.steps.total_steps, evaluation.eval_steps)
        if evaluation.patience is not None and evaluations <= evaluation.patience:
            reporter.line(
                f"warning: --patience {evaluation.patience} cannot stop this run: it evaluates {evaluations} times "
                f"(every {evaluation.eval_steps} of {counted(self.steps.total_steps, 'step')}); lower --eval-steps"
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
            f"{counted(cut['sources'], 'source')} cut at --max-source-len {corpus.max_source_len}, "
            f"{counted(cut['targets'], 'target')} at --max-target-len {corpus.max_target_len}; "
            f"{counted(resolved.rows_skipped or 0, 'empty row')} skipped"
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

    def cleanup(self) -> None:
        self.reporter.close()
        self.run_dir.close()
