"""A run's life cycle: check the output directory, prepare the plan and the data, find the resume point, tokenize,
train with a recipe, and the result. `csas finetune` comes here; finetune-all and sweep come here once per run.

`prepare_run` does every check that needs no weights (what --dry-run prints); `run_finetune` then goes on in
dependency order: hardware (free), the base's config and tokenizer (cheap), the tokenized pairs, and the recipe,
which loads the weights.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.batches import batching_for
from ..data.features import tokenize_split
from ..data.glossary import Glossary, read_glossary
from ..data.pairs import Example, ReadOptions, Split, load_examples, pairs_sha256, split_examples, subsample
from ..errors import HardwareError, SettingsError
from ..files import file_sha256, read_json_record
from ..hub import hub_notes
from ..layout import RUN_JSON, RunRecord, run_state
from ..progress import counted, say
from ..registry import REGISTRY
from ..plan import Plan, build_plan
from ..settings import FinetuneSettings, flag
from ..snapshots import check_revision, check_snapshot_files
from .distributed import ProcessGroup, distributed_env
from .groundwork import check_hardware, load_base, micro_batch_size, schedule
from .preemption import StopRequest
from .recipe import FinetuneRecipe, RunResult
from .resume import check_resumable, choose_checkpoint
from .rundir import RunLock, check_run_dir, lock_holder


@dataclass(frozen=True)
class PreparedRun:
    plan: Plan
    split: Split
    notes: tuple[str, ...] = ()
    """Warnings about the data, for the console and the run's log (--dry-run prints them)."""
    glossary: Glossary | None = None
    """--glossary, read once: the terms of --term-annotation and of eval_term_success."""


def prepare_run(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> PreparedRun:
    """Resolve the plan, check a local snapshot's files, read, filter and split the data: every check that needs no
    weights. With --eval-data the split is the two files, and a note says what they share."""
    world_size, local_rank = distributed_env(os.environ if environ is None else environ)
    plan = build_plan(settings, world_size=world_size, local_rank=local_rank)
    check_revision(plan.model_id, settings.model.revision)
    check_snapshot_files(plan.model_id, REGISTRY[plan.which].family, plan.which)
    if Path(plan.model_id).is_dir():
        # A local snapshot is recorded absolute, so that run.json's base is found from any folder (translate, merge).
        plan = replace(plan, resolved=replace(plan.resolved, model_id=os.path.abspath(plan.model_id)))
    corpus = settings.corpus
    langs = plan.resolved.source_langs
    reading = ReadOptions.of(corpus)
    loaded = [load_examples(corpus.data, langs, reading, corpus.both_directions)]
    notes: tuple[str, ...] = ()
    if corpus.eval_data is None:
        split = split_examples(
            loaded[0].examples, corpus.val_ratio, settings.training.seed, max_train=corpus.max_train_samples,
            max_eval=corpus.max_eval_samples,
        )  # fmt: skip
    else:
        loaded.append(load_examples(corpus.eval_data, langs, reading, corpus.both_directions))
        split = given_split(loaded[0].examples, loaded[1].examples, settings)
        notes = shared_note(split, corpus.data, corpus.eval_data)
    counts = {
        "train_rows": len(split.train), "eval_rows": len(split.eval), "train_publications": split.train_publications,
        "eval_publications": split.eval_publications, "rows_read": sum(d.rows_read for d in loaded),
        "rows_other_language": sum(d.rows_other_language for d in loaded),
        "rows_skipped": sum(d.rows_empty for d in loaded),
        "units_skipped": sum(d.read.units_skipped for d in loaded),
        "units_with_variants": sum(d.read.units_with_variants for d in loaded),
        "lines_one_sided": sum(d.read.lines_one_sided for d in loaded),
        "units_without_publication": sum(d.read.units_without_publication for d in loaded),
        "rows_reversed": sum(d.rows_reversed for d in loaded) if corpus.both_directions else None,
        "config_sha256": None if settings.output.config is None else file_sha256(settings.output.config),
    }  # fmt: skip
    plan = replace(plan, resolved=replace(plan.resolved, **counts))
    plan, clamped = clamp_batch(plan)
    notes += clamped
    glossary = None
    if corpus.glossary is not None:
        glossary = read_glossary(corpus.glossary, corpus.glossary_subject, corpus.glossary_sheet)
        notes += (glossary.describe(),)
        split, annotated = annotate_training(split, settings, glossary)
        plan = replace(plan, resolved=replace(plan.resolved, **annotated))
        if corpus.term_annotation:
            notes += marker_note(split.train)
            notes += (f"--term-annotation {corpus.term_annotation}: {annotated['rows_annotated']} of the "
                      f"{counted(annotated['rows_annotatable'], 'training pair')} that use a glossary term have it "
                      "annotated in their source",)  # fmt: skip
    needing = settings.evaluation.needing_evaluations()
    if not split.eval and needing:
        name = needing[0]
        raise SettingsError(
            f"{flag(name)} needs evaluations, but the validation split is empty (the {plan.which} rows come "
            f"from a single publication, or are too few for --val-ratio {corpus.val_ratio}); drop {flag(name)}"
        )
    return PreparedRun(plan, split, notes, glossary)


def marker_note(train: Sequence[Example]) -> tuple[str, ...]:
    """A note when training sources already hold the annotation markers (what a model trained with
    --term-annotation learns to read as a given term)."""
    from ..data.terms import TERM_CLOSE, TERM_OPEN, holds_markers

    rows = [ex for ex in train if holds_markers(ex.source)]
    if not rows:
        return ()
    holds = "holds" if len(rows) == 1 else "hold"
    return (f"{counted(len(rows), 'training source')} already {holds} the annotation markers {TERM_OPEN.strip()!r} or "
            f"{TERM_CLOSE!r} (the first at line {rows[0].line} of --data): with --term-annotation the model learns to read what "
            "they enclose as a given term; clean them from the data if they are not annotations",)  # fmt: skip


def annotate_training(split: Split, settings: FinetuneSettings, glossary: Glossary) -> tuple[Split, dict[str, Any]]:
    """--glossary: its hash for the plan, and with --term-annotation the share of the training pairs that use a
    glossary term annotated with it (data/terms.py), chosen with --seed; the validation split is left as it is."""
    from ..data.terms import Annotator, annotate_share

    corpus = settings.corpus
    assert corpus.glossary is not None
    counts: dict[str, Any] = {"glossary_sha256": file_sha256(corpus.glossary), "rows_annotated": 0,
                              "rows_annotatable": 0}  # fmt: skip
    if not corpus.term_annotation:
        return split, counts
    train = list(split.train)
    for lang in dict.fromkeys(ex.source_lang for ex in train):
        rows = [i for i, ex in enumerate(train) if ex.source_lang == lang]
        annotator = Annotator(glossary, lang, train[rows[0]].target_lang)
        sources, annotated, eligible = annotate_share(
            annotator, [(train[i].source, train[i].target) for i in rows], corpus.term_annotation,
            settings.training.seed,
        )  # fmt: skip
        for i, source in zip(rows, sources):
            train[i] = replace(train[i], source=source)
        counts["rows_annotated"] += annotated
        counts["rows_annotatable"] += eligible
    return replace(split, train=train), counts


def clamp_batch(plan: Plan) -> tuple[Plan, tuple[str, ...]]:
    """A step cannot hold more pairs than the training split has: one larger is clamped to the split (a step per
    epoch), and a note says so, since the HF Trainer would do the same without a word."""
    resolved, training = plan.resolved, plan.training
    rows = resolved.train_rows or 0
    if resolved.global_batch is None or not rows or resolved.global_batch <= rows:
        return plan, ()
    asked = f"--batch-size {training.batch_size}"
    if training.grad_accum > 1 or resolved.world_size > 1:
        asked += f" x --grad-accum {training.grad_accum}"
        asked += f" x {resolved.world_size} processes" if resolved.world_size > 1 else ""
        asked += f" = {resolved.global_batch} pairs"
    note = (
        f"note: a step of {asked} is more than the {counted(rows, 'training pair')}: each step holds all {rows} "
        "(one step per epoch); lower --batch-size to take more steps"
    )
    return replace(plan, resolved=replace(resolved, global_batch=rows)), (note,)


def given_split(train: list[Example], evaluation: list[Example], settings: FinetuneSettings) -> Split:
    """--eval-data: every --data row trains, every --eval-data row evaluates, each side capped as a split is."""
    corpus, seed = settings.corpus, settings.training.seed
    train = subsample(train, corpus.max_train_samples, seed)
    evaluation = subsample(evaluation, corpus.max_eval_samples, seed)
    return Split(train, evaluation, publications(train), publications(evaluation))


def publications(examples: Sequence[Example]) -> int:
    return len({ex.pub_number for ex in examples if ex.pub_number is not None})


def shared_rows(train: Sequence[Example], evaluation: Sequence[Example]) -> tuple[int, int]:
    """Validation rows whose pair (direction, source, target) is also a training pair, and the publications the two
    sides share."""
    pairs = {(ex.source_lang, ex.source, ex.target) for ex in train}
    shared = sum((ex.source_lang, ex.source, ex.target) in pairs for ex in evaluation)
    pubs = {ex.pub_number for ex in train} & {ex.pub_number for ex in evaluation}
    return shared, len(pubs - {None})


def shared_note(split: Split, data: Path, eval_data: Path) -> tuple[str, ...]:
    pairs, pubs = shared_rows(split.train, split.eval)
    if not (pairs or pubs):
        return ()
    return (
        f"warning: --eval-data {eval_data} shares {pairs} of its {counted(len(split.eval), 'pair')} and "
        f"{counted(pubs, 'publication')} "
        f"with --data {data}; its scores then overstate how the model does on new text",
    )


def dry_run_record(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What --dry-run prints: the resolved plan, the split's sizes, the steps, and the state of the output directory,
    after every check that needs no weights: the plan and data (prepare_run), and the precision and --device-map
    against this machine's hardware."""
    prepared = prepare_run(settings, environ)
    try:
        check_hardware(prepared.plan)
    except HardwareError as exc:
        raise HardwareError(f"{exc} (--dry-run checks this machine: run it on a node like the job's)") from None
    for note in (*prepared.notes, *hub_notes(prepared.plan.model_id, settings.model.revision)):
        say(note)
    record = prepared.plan.to_dict()
    record.update(planned_steps(prepared.plan))
    record["output_state"] = run_state(settings.run_dir)
    record["output_locked_by"] = lock_holder(settings.run_dir)
    return record


def planned_steps(plan: Plan) -> dict[str, int | None]:
    """The steps run.json will record, from the row counts alone: fixed-size batches need no token lengths. Under
    --max-tokens the micro-batches depend on the tokenized lengths, counted when the run starts (None here)."""
    training, resolved = plan.training, plan.resolved
    if training.max_tokens is not None or not resolved.train_rows:
        total = training.max_steps  # known without the lengths only when --max-steps gives it
        warmup = None if total is None else math.ceil(training.warmup_ratio * total)
        return {"total_steps": total, "steps_per_epoch": None, "warmup_steps": warmup}
    rows = resolved.train_rows
    batching = batching_for(micro_batch_size(training.batch_size, rows), None)
    _, steps, warmup = schedule(training, batching, [1] * rows, resolved.world_size)
    return {"total_steps": steps.total_steps, "steps_per_epoch": steps.steps_per_epoch, "warmup_steps": warmup}


def run_finetune(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> RunResult:
    """Check the output directory, prepare, train and write one run (or continue one with --resume).

    Under torchrun every process comes here, in the process group it joins on its first run.
    """
    environ = os.environ if environ is None else environ
    group = ProcessGroup.join(*distributed_env(environ))
    # One csas process per run directory: rank 0 locks it before anything else reads or writes it, and holds the
    # lock to the end; a second process is refused here, having touched nothing.
    lock = RunLock(settings.run_dir)
    group.from_main(lambda: lock.acquire() and None)
    try:
        return locked_run(settings, environ, group)
    finally:
        lock.release()


def locked_run(settings: FinetuneSettings, environ: Mapping[str, str], group: ProcessGroup) -> RunResult:
    """run_finetune's work, with the run directory locked."""
    # Rank 0 alone reads the output directory and hands its answer (or its error) to the others, so every process
    # starts from the same checkpoint; nothing is written there before the recipe's set-up is done.
    if group.from_main(lambda: nothing_left_to_do(settings)):
        # A finished run is the quiet no-op of a requeued job only if it is the run asked for.
        group.from_main(lambda: check_finished_run(settings, environ))
        return finished_result(settings.run_dir, say_so=group.is_main)
    # Installed before anything loads: a SIGTERM or SIGUSR1 while the model loads is then a stop request like any
    # other, answered before the first step with exit code 75, instead of a killed process that a requeue script
    # cannot tell from a crash.
    with StopRequest() as stop:
        prepared = prepare_run(settings, environ)
        resume_from = group.from_main(lambda: resume_point(settings, prepared.plan))
        recipe = build_recipe(prepared, group=group, stop=stop, resume_from=resume_from)
        if resume_from is not None:
            group.from_main(lambda: check_same_base(settings.run_dir, recipe.base_commit))
        try:
            recipe.setup()
            recipe.train()
            return recipe.finish()
        finally:
            recipe.cleanup()


def build_recipe(prepared: PreparedRun, **recipe_args: Any) -> FinetuneRecipe:
    """The recipe of a prepared run, in dependency order: the hardware (free), the base's config and tokenizer
    (cheap), the tokenized pairs; `recipe_args` are FinetuneRecipe's keyword arguments. Loads no weights yet."""
    plan = prepared.plan
    hardware = check_hardware(plan)
    base = load_base(plan)
    corpus = plan.corpus
    data = tokenize_split(
        base.tokenizer, REGISTRY[plan.which].family, prepared.split, max_source_len=corpus.max_source_len,
        max_target_len=corpus.max_target_len,
    )  # fmt: skip
    return FinetuneRecipe(plan, data, base, hardware, notes=prepared.notes, glossary=prepared.glossary, **recipe_args)


def nothing_left_to_do(settings: FinetuneSettings) -> bool:
    """With --resume: whether the run is already finished (a requeued job). Without: refuse to replace a run."""
    if settings.output.resume is None:
        check_run_dir(settings.run_dir, settings.output.overwrite)
        return False
    return run_state(settings.run_dir) == "finished"


def check_finished_run(settings: FinetuneSettings, environ: Mapping[str, str] | None = None) -> None:
    """A finished run is left alone (--resume in finetune, a rerun of finetune-all or sweep) only if it was trained
    with these settings: one with others (a changed --lr, other data) is refused naming what differs, since
    "nothing to resume" would pass its adapter off as trained with them."""
    plan = prepare_run(settings, environ).plan
    eval_data = settings.corpus.eval_data
    check_resumable(settings.run_dir, plan, pairs_sha256(settings.corpus.data),
                    None if eval_data is None else pairs_sha256(eval_data), finished=True)  # fmt: skip


def resume_point(settings: FinetuneSettings, plan: Plan) -> Path | None:
    """The checkpoint --resume continues from (None for a fresh start), after checking the run is the same run."""
    if settings.output.resume is None:
        return None
    resume_from = choose_checkpoint(settings.run_dir, settings.output.resume, warn=say)
    if resume_from is not None:
        eval_data = settings.corpus.eval_data
        check_resumable(settings.run_dir, plan, pairs_sha256(settings.corpus.data),
                        None if eval_data is None else pairs_sha256(eval_data))  # fmt: skip
    return resume_from


def check_same_base(run_dir: Path, commit: str | None) -> None:
    """--resume on a hub id: its revision must still resolve to the commit the run started from (a branch or tag can
    move when a repository is re-uploaded), or the adapter would go on training over other weights."""
    recorded = read_json_record(run_dir / RUN_JSON).get("base_commit")
    if isinstance(recorded, str) and commit is not None and recorded != commit:
        raise SettingsError(
            f"--resume: {run_dir} was trained on commit {recorded} of its base, which now resolves to {commit}; "
            f"pass --revision {recorded} to resume on the same weights, or --overwrite to start over"
        )


def finished_result(run_dir: Path, say_so: bool = True) -> RunResult:
    record = RunRecord.read(run_dir)
    if say_so:
        say(f"{run_dir} holds a finished run; nothing to resume")
    return RunResult(str(run_dir), record.steps or 0, record.train_loss, record.eval_loss, 0.0)


__all__ = [
    "PreparedRun", "RunResult", "build_recipe", "check_finished_run", "dry_run_record", "prepare_run", "run_finetune",
]  # fmt: skip
