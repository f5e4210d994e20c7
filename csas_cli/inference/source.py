"""Which model an inference command means, and in which direction it translates, resolved before any weights load.

A model source is one of four things, resolved by `resolve_source`:

- a finished run directory (`run.json`, `lora/`, `finished.json`): the base named in run.json (or `--model-id`,
  since a cluster path differs from the training machine) with the adapter applied, and the run's tokenizer files;
  `RUN/best` is the best evaluation's adapter, and a checkpoint folder (`RUN/checkpoints/step-N`) that step's, of a
  finished run or of one still training or stopped; an averaged adapter (`csas average`: `RUN/averaged` or any
  folder with csas_average.json) goes on the base of the run it names;
- a merged directory (written by `csas merge`, or any transformers model directory with `--which`): loaded as is;
- an exported directory (written by `csas export`: CTranslate2's model.bin and config.json, the tokenizer files and
  csas_export.json, which names the registry key; another CTranslate2 export with its tokenizer files and
  `--which`): translated by CTranslate2 (ctranslate.py);
- a base model alone: `--which KEY`, from `--model-id` or the registry's hub id.

Loading and generating are generation.py's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, SettingsError
from ..fields import setting
from ..languages import Direction
from ..layout import (ADAPTER_DIR, AVERAGE_RECORD, BEST_DIR, CHECKPOINT_ADAPTER, CHECKPOINTS_DIR, EXPORT_RECORD,
                      FINISHED, MERGE_RECORD, RUN_JSON, STEP_DIR, run_state)  # fmt: skip
from ..registry import LANGUAGES, REGISTRY, ModelSpec, check_which, other_language

ADAPTER_FOLDERS = (ADAPTER_DIR, BEST_DIR)
"""A run's adapters: lora/ (the last step) and best/ (the best evaluation); `--model RUN/best` uses the latter."""

RUN = "run"
MERGED = "merged"
EXPORTED = "exported"
BASE = "base"


@dataclass(frozen=True)
class ModelChoice:
    """Which model an inference command means and which way it translates: the options translate and evaluate
    share (export and merge take some of them), each field its option (fields.setting)."""

    model: Path | None = setting(
        None, "A finished run directory or a `csas merge` output directory.", short="-m"
    )
    which: str | None = setting(
        None, "Registry key: a base model alone, or a model directory without csas_merge.json."
    )
    model_id: str | None = setting(
        None, "Base model (hub id or local path): a run's base on this machine, or with --which."
    )
    revision: str | None = setting(
        None, "Hub revision of --model-id: a tag, branch or commit (default: the recorded one)."
    )
    source_lang: str | None = setting(
        None, "Source language, en or fr (required for m2m100_418m, which goes both ways)."
    )

    def source(self) -> "ModelSource":
        """The model resolved (small JSON files read, no weights loaded): resolve_source."""
        return resolve_source(self.model, self.which, self.model_id, revision=self.revision)


@dataclass(frozen=True)
class ModelSource:
    """What to load, resolved from the flags: weights, adapter, tokenizer and the registry key they belong to."""

    kind: str
    """run, merged, exported or base."""
    which: str
    """Registry key: decides the family and the directions."""
    model_id: str
    """The weights to load: a run's base, the merged directory, or the base model."""
    adapter: Path | None
    """A run's adapter folder; None otherwise."""
    tokenizer_id: str
    """Where the tokenizer files are: the run or merged directory when it holds them, else the base."""
    base_model_id: str | None
    """The base a run or merged directory came from (what --compare-base scores); the model itself for a base."""
    label: str
    """How reports name this model."""
    flag: str
    """The flag that named the weights, for error messages (--model or --model-id)."""
    base_from_record: bool = False
    """True when model_id comes from run.json rather than --model-id (it may not exist on this machine)."""
    base_revision: str | None = None
    """The hub revision of base_model_id (--revision, or the one run.json / csas_merge.json records)."""
    run_dir: Path | None = None
    """The run a run source's adapter belongs to (its lora/, best/ or a checkpoint's adapter)."""
    term_annotation: float | None = 0.0
    """The share of training sources annotated with glossary terms (--term-annotation) the model was trained with:
    from run.json, csas_merge.json or csas_export.json; 0 for a base model; None where no record says."""

    @property
    def reads_annotations(self) -> bool:
        """The model was trained to read terms given inline (--term-annotation > 0)."""
        return bool(self.term_annotation)

    def revision_of(self, model_id: str) -> str | None:
        """The revision to load `model_id` at: the base's when it is the base (a hub id), else none."""
        return self.base_revision if model_id == self.base_model_id else None

    @property
    def spec(self) -> ModelSpec:
        return REGISTRY[self.which]

    def base(self) -> "ModelSource":
        """The base model alone, for --compare-base."""
        if self.kind == BASE:
            raise SettingsError("--compare-base: the model is already a base model; pass --model RUN_OR_MERGED_DIR")
        if self.base_model_id is None:
            raise SettingsError(
                f"--compare-base: {self.label} does not record its base model; pass --model-id BASE"
            )
        return ModelSource(
            kind=BASE, which=self.which, model_id=self.base_model_id, adapter=None, tokenizer_id=self.base_model_id,
            base_model_id=self.base_model_id, label=self.base_model_id, flag="--model-id",
            base_from_record=self.base_from_record, base_revision=self.base_revision,
        )  # fmt: skip


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(record, dict):
        raise ModelError(f"{path}: {what} is not a JSON object")
    return record


def has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file()


def resolve_source(
    model: Path | None, which: str | None, model_id: str | None, flag: str = "--model", revision: str | None = None
) -> ModelSource:
    """Turn `--model` / `--which` / `--model-id` / `--revision` into a ModelSource (reads small JSON files, loads no
    weights).

    `--model-id` always means the base: the base a run's adapter is applied to, the base --compare-base scores
    for a merged directory, or the model itself with `--which` alone; `--revision` is its hub revision. Without
    --model-id the base and its revision are the ones the run or merge recorded. `flag` names `model` in messages.
    """
    if which is not None:
        check_which(which)
    if revision is not None and model_id is None and model is not None:
        raise SettingsError("--revision applies to --model-id; the base a run records comes with its own revision")
    if model is None:
        if which is None:
            raise SettingsError(
                "pass --model RUN_OR_MERGED_DIR, or --which KEY (with --model-id PATH) for a base model"
            )
        base_id = model_id or REGISTRY[which].hub_id
        return ModelSource(
            kind=BASE, which=which, model_id=base_id, adapter=None, tokenizer_id=base_id, base_model_id=base_id,
            label=base_id, flag="--model-id", base_revision=revision,
        )  # fmt: skip
    model = Path(model)
    if not model.exists():
        raise ModelError(f"{flag} {model}: no such directory")
    if not model.is_dir():
        raise ModelError(f"{flag} {model}: not a directory (expected a run or merged model directory)")
    averaged = averaged_run(model, flag)
    if averaged is not None:  # an averaged adapter (csas average): the run it was averaged from
        return run_source(averaged, run_state(averaged), which, model_id, flag, revision, adapter=model)
    checkpoint = checkpoint_adapter(model)
    if checkpoint is not None:
        run_dir, adapter = checkpoint
        return run_source(run_dir, run_state(run_dir), which, model_id, flag, revision, adapter=adapter)
    if model.name in ADAPTER_FOLDERS and (model / "adapter_config.json").is_file():
        parent_state = run_state(model.parent)
        if parent_state in ("finished", "unfinished"):  # RUN/best (the best evaluation's adapter) or RUN/lora
            return run_source(model.parent, parent_state, which, model_id, flag, revision, adapter=model)
    state = run_state(model)
    if state in ("finished", "unfinished"):
        return run_source(model, state, which, model_id, flag, revision)
    if is_exported(model):
        return recorded_source(model, EXPORTED, which, model_id, flag, revision)
    if (model / "config.json").is_file():
        return merged_source(model, which, model_id, flag, revision)
    raise ModelError(
        f"{flag} {model}: neither a csas run ({RUN_JSON}, {ADAPTER_DIR}/, {FINISHED}) nor a model directory "
        "(config.json)"
    )


def averaged_run(model: Path, flag: str) -> Path | None:
    """The run an averaged adapter folder (`csas average`, --average-last) comes from; None for another folder."""
    if not (model / AVERAGE_RECORD).is_file() or not (model / "adapter_config.json").is_file():
        return None
    run_dir = read_json_object(model / AVERAGE_RECORD, "the average record").get("run_dir")
    if not isinstance(run_dir, str) or not (Path(run_dir) / RUN_JSON).is_file():
        raise ModelError(f"{flag} {model}: the run it was averaged from ({run_dir}) is not there; its run.json says "
                         "which base the adapter goes on")  # fmt: skip
    return Path(run_dir)


def checkpoint_adapter(model: Path) -> tuple[Path, Path] | None:
    """(run directory, adapter) when `model` is a checkpoint folder RUN/checkpoints/step-N or its adapter/ folder."""
    folder = model.parent if model.name == CHECKPOINT_ADAPTER else model
    adapter = folder / CHECKPOINT_ADAPTER
    if folder.parent.name != CHECKPOINTS_DIR or not STEP_DIR.match(folder.name):  # not a half-written step-N.tmp
        return None
    return (folder.parent.parent, adapter) if (adapter / "adapter_config.json").is_file() else None


def recorded_share(record: dict[str, Any], key: str, missing: float | None = 0.0) -> float | None:
    """A recorded share (term_annotation): `missing` where the record has none (a run recorded before it existed
    ran without it)."""
    value = record.get(key, missing)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else missing


def recorded_revision(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) and value else None


def base_revision(model_id: str | None, revision: str | None, recorded_id: Any, recorded: str | None) -> str | None:
    """The revision a run's or merged model's base loads at: --revision when given; else the recorded one (the
    commit the run's revision resolved to, when run.json has it) unless --model-id names another base."""
    if revision is not None:
        return revision
    return recorded if model_id is None or model_id == recorded_id else None


def run_source(
    run_dir: Path, state: str, which: str | None, model_id: str | None, flag: str, revision: str | None,
    adapter: Path | None = None,
) -> ModelSource:
    """A finished run with its final adapter (lora/), or with `adapter` (its best/ folder, or a checkpoint's adapter,
    which needs only the run's run.json: a run still training or stopped has one)."""
    in_checkpoint = adapter is not None and adapter.parent.parent.name == CHECKPOINTS_DIR
    averaged = adapter is not None and (adapter / AVERAGE_RECORD).is_file()
    if state != "finished" and not in_checkpoint and not averaged:
        raise ModelError(
            f"{flag} {run_dir}: an unfinished run (no {FINISHED}); finish it with `csas finetune ... --resume auto`"
        )
    if not (run_dir / RUN_JSON).is_file():
        raise ModelError(f"{flag} {run_dir}: no {RUN_JSON}; cannot tell which model this run trained")
    record = read_json_object(run_dir / RUN_JSON, "the run record")
    plan = record.get("plan")
    if not isinstance(plan, dict) or plan.get("which") not in REGISTRY or not isinstance(plan.get("model_id"), str):
        raise ModelError(f"{flag} {run_dir}: {RUN_JSON} has no plan with a registry key and a model id")
    run_which = plan["which"]
    if which is not None and which != run_which:
        raise SettingsError(f"--which {which}: {run_dir} is a run of {run_which}")
    label = str(run_dir if adapter is None else adapter.parent if in_checkpoint else adapter)
    adapter = adapter or run_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"{flag} {run_dir}: no adapter ({ADAPTER_DIR}/adapter_config.json is missing)")
    base_id = model_id or plan["model_id"]
    return ModelSource(
        kind=RUN, which=run_which, model_id=base_id, adapter=adapter,
        tokenizer_id=str(run_dir) if has_tokenizer(run_dir) else base_id, base_model_id=base_id,
        label=label, flag="--model-id", base_from_record=model_id is None,
        base_revision=base_revision(model_id, revision, plan["model_id"],
                                    recorded_revision(record, "base_commit") or recorded_revision(plan, "revision")),
        run_dir=run_dir, term_annotation=recorded_share(plan, "term_annotation"),
    )  # fmt: skip


def is_exported(directory: Path) -> bool:
    """A CTranslate2 model directory: csas_export.json, or model.bin next to a config.json that is CTranslate2's
    (no model_type)."""
    config = directory / "config.json"
    if (directory / EXPORT_RECORD).is_file():
        return True
    if not (directory / "model.bin").is_file() or not config.is_file():
        return False
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return isinstance(values, dict) and "model_type" not in values


def merged_source(
    directory: Path, which: str | None, model_id: str | None, flag: str, revision: str | None
) -> ModelSource:
    return recorded_source(directory, MERGED, which, model_id, flag, revision)


def recorded_source(
    directory: Path, kind: str, which: str | None, model_id: str | None, flag: str, revision: str | None
) -> ModelSource:
    """A merged or exported directory, its registry key from its record (csas_merge.json, csas_export.json) or
    --which."""
    record_name, what = (EXPORT_RECORD, "export") if kind == EXPORTED else (MERGE_RECORD, "merge")
    record: dict[str, Any] = {}
    if (directory / record_name).is_file():
        record = read_json_object(directory / record_name, f"the {what} record")
    recorded = record.get("which")
    if recorded is not None and recorded not in REGISTRY:
        raise ModelError(f"{directory / record_name}: unknown registry key {recorded!r}")
    if which is not None and recorded is not None and which != recorded:
        raise SettingsError(f"--which {which}: {directory} is {'an exported' if kind == EXPORTED else 'a merged'} "
                            f"model of {recorded}")  # fmt: skip
    key = which or recorded
    if key is None:
        kind_name = "an exported model directory" if kind == EXPORTED else "a model directory"
        raise SettingsError(
            f"{flag} {directory}: {kind_name} without {record_name}; pass --which KEY to say which registry "
            "model it is"
        )
    base_id = model_id or record.get("base_model_id")
    return ModelSource(
        kind=kind, which=key, model_id=str(directory), adapter=None,
        tokenizer_id=str(directory) if has_tokenizer(directory) else (base_id or str(directory)),
        base_model_id=base_id, label=str(directory), flag=flag, base_from_record=model_id is None,
        base_revision=base_revision(model_id, revision, record.get("base_model_id"),
                                    recorded_revision(record, "base_revision")),
        term_annotation=recorded_share(record, "term_annotation", None),
    )  # fmt: skip


def resolve_direction(spec: ModelSpec, source_lang: str | None) -> Direction:
    """The direction a model translates: its only source language, or --source-lang when it trains both ways."""
    if source_lang is None:
        if len(spec.source_langs) > 1:
            both = " and ".join(f"{s}->{other_language(s)}" for s in spec.source_langs)
            raise SettingsError(f"--source-lang: {spec.key} translates both ways ({both}); pass --source-lang en or fr")
        source = spec.source_langs[0]
    else:
        source = source_lang.strip().lower()
        if source not in LANGUAGES:
            raise SettingsError(f"--source-lang: expected en or fr, got {source_lang!r}")
        if source not in spec.source_langs:
            only = ", ".join(f"{s}->{other_language(s)}" for s in spec.source_langs)
            raise SettingsError(f"--source-lang {source}: {spec.key} translates {only} only")
    return Direction(source, other_language(source))


__all__ = [
    "BASE",
    "EXPORTED",
    "EXPORT_RECORD",
    "MERGED",
    "MERGE_RECORD",
    "RUN",
    "ModelSource",
    "read_json_object",
    "resolve_direction",
    "resolve_source",
    "is_exported",
]  # fmt: skip
