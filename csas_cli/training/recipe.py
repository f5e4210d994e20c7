"""The training core: one LoRA fine-tuning run as a recipe, setup -> train -> finish.

FinetuneRecipe is built and set up as RecipeSetup (recipe_setup.py) says: `setup` loads the model and builds what
trains it. Here `train` is the whole loop, written out, with what happens between steps (logging, evaluation and the
best/ adapter, checkpoints, early and signalled stops), and `finish` writes the adapter; every write to the run
directory goes through its `RunDirectory`.

Under torchrun each process holds one recipe: it trains on its share of every optimizer step, and only rank 0
writes the run directory and reports progress.
"""

from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Sequence

from ..data.batches import (
    IGNORE_INDEX,
    collate,
    epoch_batch_counts,
    epoch_fraction,
    optimizer_steps,
    rank_share,
    target_tokens,
)
from ..data.features import TokenizedPair
from ..errors import TrainingError
from ..progress import counted
from ..files import now_iso
from ..inference.generation import LoadedModel
from ..layout import ADAPTER_DIR, AVERAGED_DIR, BEST_DIR, CHECKPOINTS_DIR
from ..registry import REGISTRY
from .checkpoints import step_dir_name
from .evaluation import EvaluationStopped
from .recipe_setup import RecipeSetup, StepReport
from .step import optimizer_step


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    seconds: float


class FinetuneRecipe(RecipeSetup):
    """One run: `setup` builds everything in dependency order, `train` runs the loop, `finish` writes the adapter."""

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

    def loss_sum(self, pairs: Sequence[TokenizedPair], module: Any = None) -> Any:
        """Label-smoothed cross-entropy summed over the target tokens of `pairs` (the caller divides), through
        `module` (default: what the loop calls, under torchrun the objective in DDP)."""
        batch = self.to_device(pairs)
        with self.autocast():
            return (module or self.wrapped)(**batch, ignore_index=IGNORE_INDEX)

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
        pending, self.pending_evaluation = self.pending_evaluation, None
        if pending is not None and self.evaluate(self.steps_done, pending["epoch"], pending["rates"]):
            return  # the evaluation the last session was stopped in, done again, ended the run (--patience)
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
                    else (f"{counted(training.batch_size, 'pair')} per micro-batch", "--batch-size")
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
            # The bar shows what the next log line will: the loss and throughput since the last one.
            reporter.step(step, {"loss": self.window[0] / self.window[1], "learning_rate": lr,
                                 "samples_per_second": samples_per_second})  # fmt: skip

            last = step == steps.total_steps
            rates = {"learning_rate": lr, "grad_norm": grad_norm, "samples_per_second": samples_per_second,
                     "tokens_per_second": tokens / elapsed}  # fmt: skip
            if step == 1 or step % plan.output.logging_steps == 0 or last:
                self.log_training(step, epoch, rates)
                window_start, paused, samples, tokens = time.monotonic(), 0.0, 0, 0
            pause_start = time.monotonic()
            if self.data.eval and (step % plan.evaluation.eval_steps == 0 or last):
                if self.evaluate(step, epoch, rates):
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

    def evaluate(self, step: int, epoch: int, rates: dict[str, float]) -> bool:
        """The evaluation after `step` (evaluate_and_select); True when --patience ends the run there.

        A stop request during the evaluation abandons it: the checkpoint of `step` is written with the evaluation
        marked pending (with `epoch` and the step's `rates`, what the early stop logs), a resume evaluates again,
        and the run stops at once instead of after an evaluation that can outlast a scheduler's grace period.
        """
        plan, total = self.plan, self.steps.total_steps
        self.stop.evaluating = True
        try:
            self.evaluate_and_select(step)
        except EvaluationStopped:
            self.save_checkpoint(step, epoch, pending_evaluation={"epoch": epoch, "rates": rates})
            raise self.stop.stopped(
                f"{self.stop.signal_name or 'a signal to another process'} during the evaluation after step {step} "
                f"of {total}; checkpoint {CHECKPOINTS_DIR}/{step_dir_name(step)} written (a resume evaluates it again)"
            ) from None
        finally:
            self.stop.evaluating = False
        if not self.best.exhausted or step == total:
            return False
        # Every process holds the same tracker (rank 0's numbers), so all of them stop here. The run ends as if this
        # were its last step: the loss since the last log is logged, finish() follows.
        self.stopped_early = True
        if self.window[1]:
            self.log_training(step, epoch, rates)
        self.reporter.line(
            f"early stop after step {step} of {total}: {self.best.metric} has not improved for "
            f"{counted(plan.evaluation.patience, 'evaluation')} (best: {self.best.describe()})"
        )
        return True

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
                record["eval_chrf"] = self.evaluator.chrf(generator, self.autocast(), step, self.reporter.line)
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

    def save_checkpoint(self, step: int, epoch: int, pending_evaluation: dict[str, Any] | None = None) -> None:
        """Rank 0 writes the checkpoint (every process holds the same state); the others wait until it is complete,
        because a process that exits first (preemption) makes torchrun stop the rest, rank 0 mid-save included.
        `pending_evaluation`: the evaluation after `step` was abandoned, and a resume does it first."""
        state = {
            "epoch": epoch,
            "total_steps": self.steps.total_steps,
            "window": self.window,
            "last_train_loss": self.last_train_loss,
            "last_eval_loss": self.last_eval_loss,
            "last_eval_chrf": self.last_eval_chrf,
            "best": self.best.state(),
            "seconds": self.seconds_before + time.monotonic() - self.started,
            "pending_evaluation": pending_evaluation,
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
            "seconds_total": round(self.seconds_before + seconds, 1),
            "adapter": ADAPTER_DIR,
            # lora/ is the last step's adapter; best/ the best evaluation's (the same weights when best_step is the
            # last step). None of these without an evaluation.
            "best": BEST_DIR if evaluated else None,
            "best_step": best.best_step,
            "best_metric": best.metric if evaluated else None,
            "best_value": best.best_value,
            "finished": now_iso(),
        }
        averaged = self.average_at_end() if self.plan.output.average_last else None
        if averaged is not None:
            record["averaged"] = averaged
        self.run_dir.finish(self.model, self.tokenizer, self.memory.read().record(), record)
        if self.run_dir.writes:
            self.reporter.line(
                f"adapter saved to {self.plan.run_dir / ADAPTER_DIR} ({counted(result.steps, 'step')}, {seconds:.0f} s)"
                f"{self.best.note(self.steps_done, self.plan.run_dir / BEST_DIR)}"
            )
            if averaged is not None and averaged.get("verdict"):
                self.reporter.line(averaged["verdict"])
        self.group.barrier()  # the other processes return once rank 0 has written everything
        return result

    # -- checkpoint averaging (--average-last) --------------------------------------------------------------------
    def average_at_end(self) -> dict[str, Any] | None:
        """RUN/averaged: the last step (in memory) with the newest checkpoints before it (training/averaging.py),
        evaluated on the validation split as the last step was; what finished.json records of it, with the line
        that says which is better. Rank 0 chooses the checkpoints and writes the average; every process averages
        them itself (the same numbers) and evaluates its share, so no process waits to see another's file."""
        from .averaging import average_of, run_adapters, write_average

        n, run_dir = self.plan.output.average_last, self.plan.run_dir
        assert n is not None

        def earlier_steps() -> list[tuple[int, str]]:
            return [(s, str(p)) for s, p in run_adapters(run_dir) if s < self.steps_done][-(n - 1):]

        earlier = [(s, Path(p)) for s, p in self.group.from_main(earlier_steps)]
        if not earlier:
            self.reporter.line(f"--average-last {n}: no checkpoint before the last step (--save-steps "
                               f"{self.plan.output.save_steps}); nothing averaged")  # fmt: skip
            return None
        if len(earlier) < n - 1:
            self.reporter.line(f"note: --average-last {n}: {counted(len(earlier), 'checkpoint')} before the last "
                               "step; averaging what there is")  # fmt: skip
        config, tensors, record = average_of(run_dir, earlier, self.final_adapter(earlier[-1][1]))
        if self.run_dir.writes:
            write_average(run_dir / AVERAGED_DIR, config, tensors, record)
        record = {"dir": AVERAGED_DIR, **record}
        if not self.data.eval:
            return record
        try:
            scores = self.evaluate_adapter(config, tensors, record)
        except EvaluationStopped:
            return {**record, "verdict": "averaged/ written, not evaluated: the run was asked to stop"}
        metric = self.best.metric
        last = self.last_eval_chrf if metric == "eval_chrf" else self.last_eval_loss
        value = scores.get(metric)
        better = None if value is None or last is None else (value > last if metric == "eval_chrf" else value < last)
        shown = (lambda v: f"{v:.2f}") if metric == "eval_chrf" else (lambda v: f"{v:.4f}")
        steps = ", ".join(map(str, record["steps"]))
        verdict = (f"averaged/ (the mean of steps {steps}): {metric} {shown(value)} against the last step's "
                   f"{shown(last)}: {'the average' if better else 'the last step'} is better on the validation split"
                   if better is not None else f"averaged/ (the mean of steps {steps}) written")  # fmt: skip
        return {**record, **scores, "better_than_last": better, "verdict": verdict}

    def final_adapter(self, like: Any) -> Any:
        """The last step's adapter as training/averaging.py reads one, from the model in memory (lora/ is written
        after); its config is a checkpoint's (`like`): the same run's."""
        import json

        from peft import get_peft_model_state_dict

        from .averaging import CONFIG, Adapter

        state = get_peft_model_state_dict(self.model, save_embedding_layers=False)
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
        return Adapter(self.steps_done, self.plan.run_dir / ADAPTER_DIR,
                       json.loads((like / CONFIG).read_text(encoding="utf-8")), tensors)  # fmt: skip

    def evaluate_adapter(self, config: dict[str, Any], tensors: dict[str, Any],
                         record: dict[str, Any]) -> dict[str, float]:  # fmt: skip
        """The validation loss (and chrF) of an adapter on this model's base, as an evaluation of the run computes
        them; the run's own adapter is active again after. Loaded from this process's own temporary copy."""
        import tempfile

        from .averaging import write_average

        model = self.model
        with tempfile.TemporaryDirectory(prefix="csas-averaged-") as tmp:
            write_average(Path(tmp) / AVERAGED_DIR, config, tensors, record)
            model.load_adapter(str(Path(tmp) / AVERAGED_DIR), adapter_name="averaged", is_trainable=False)
        model.set_adapter("averaged")
        model.eval()

        # Without DDP, whose parameters are the run's own adapter.
        loss_sum = functools.partial(self.loss_sum, module=self.objective)
        try:
            scores = {"eval_loss": self.evaluator.loss(loss_sum, self.batch_device)}
            if self.plan.evaluation.eval_chrf:
                generator = LoadedModel(model, self.tokenizer, REGISTRY[self.plan.which].family, self.batch_device)
                scores["eval_chrf"] = self.evaluator.chrf(generator, self.autocast(), self.steps_done,
                                                          self.reporter.line)  # fmt: skip
        finally:
            model.set_adapter("default")
            model.delete_adapter("averaged")
        return self.group.from_main(lambda: scores)


__all__ = ["FinetuneRecipe", "RunResult", "StepReport"]
