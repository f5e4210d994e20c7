"""The plan a run resolves its settings into: the six settings groups and a `Resolved` record (model id, family,
device map, world size, precision, the split's row counts), what --dry-run prints and run.json records.

`build_plan` resolves settings against the registry and the launch (pure); `training.run.prepare_run` adds the
split's row counts. A `Resolved` field says, as a settings field does, whether a resumed run must keep it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .device_map import DeviceMap, resolve_device_map
from .fields import MATCH, REQUIRED, WITH_GLOSSARY
from .registry import REGISTRY
from .settings import (
    FIELDS,
    FIXED,
    GROUPS,
    CorpusSettings,
    EvaluationSettings,
    FinetuneSettings,
    LoraSettings,
    ModelSettings,
    OutputSettings,
    TrainingSettings,
)


def resolved(default: Any = REQUIRED, *, resume: str | None = None) -> Any:
    """A field of the resolved plan, with the resume check's fact about it (see `setting`)."""
    return field(default=default, metadata={"resume": resume})


def resume_keys(kind: str) -> tuple[str, ...]:
    """The plan record's keys a resumed run must keep under `kind` (MATCH, WITH_CHRF, WITH_GLOSSARY), in the
    record's order: the settings' fields, then the resolved plan's."""
    recorded = [f for f in FIELDS.values() if f.metadata["record"]]
    return tuple(f.name for f in (*recorded, *fields(Resolved)) if f.metadata.get("resume") == kind)


@dataclass(frozen=True)
class Resolved:
    """What the settings come to for this launch and this data."""

    model_id: str = resolved(resume=MATCH)
    """The base: --model-id (a local snapshot made absolute) or the registry's hub id."""
    family: str
    source_langs: tuple[str, ...]
    output_dir: str
    """The run directory itself: <output_dir>/<run_name or which>."""
    device_map: DeviceMap
    device_map_requested: str
    world_size: int = resolved(resume=MATCH)
    local_rank: int
    precision: str = resolved(resume=MATCH)
    """fp32, bf16 or fp16 (bf16 wins over fp16)."""
    global_batch: int | None = resolved(resume=MATCH)
    """Pairs per optimizer step (batch_size x grad_accum x world_size); None with max_tokens, where it varies."""
    train_rows: int | None = resolved(None, resume=MATCH)
    eval_rows: int | None = resolved(None, resume=MATCH)
    train_publications: int | None = None
    eval_publications: int | None = None
    rows_read: int | None = None
    """Rows in --data (and --eval-data), whatever their language."""
    rows_other_language: int | None = None
    """Rows whose source_lang this model does not train on."""
    rows_skipped: int | None = None
    """Rows in this model's languages left out because their source or target is empty."""
    units_skipped: int | None = None
    """TMX units without both an English and a French segment, skipped (data/tmx.py)."""
    units_with_variants: int | None = None
    """TMX units with several segments of one language, of which --locales (or the first) chose one."""
    lines_one_sided: int | None = None
    """Lines of line-aligned files with text on one side only, skipped."""
    units_without_publication: int | None = None
    """With --publication-from: TMX units it found no publication for."""
    rows_reversed: int | None = None
    """With --both-directions: the pairs added reversed (of rows_read, which counts the file's own rows)."""
    config_sha256: str | None = None
    """The settings file's hash (with --config), as it was read."""
    glossary_sha256: str | None = resolved(None, resume=WITH_GLOSSARY)
    """The glossary's hash (with --glossary)."""
    rows_annotated: int | None = None
    """Training pairs whose source --term-annotation annotated (of rows_annotatable that use a glossary term)."""
    rows_annotatable: int | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, resolved: the six settings groups and the Resolved record; --dry-run prints it and
    run.json records it (`to_dict`)."""

    model: ModelSettings
    corpus: CorpusSettings
    training: TrainingSettings
    lora: LoraSettings
    evaluation: EvaluationSettings
    output: OutputSettings
    resolved: Resolved

    @property
    def settings(self) -> FinetuneSettings:
        return FinetuneSettings(**{group: getattr(self, group) for group in GROUPS})

    @property
    def which(self) -> str:
        return self.model.which

    @property
    def model_id(self) -> str:
        return self.resolved.model_id

    @property
    def run_dir(self) -> Path:
        return Path(self.resolved.output_dir)

    def to_dict(self) -> dict[str, Any]:
        """The flat record: every recorded setting by its flat name, the resolved fields, the fixed settings."""
        values = self.settings.flat()
        record = {name: jsonable(values[name]) for name, f in FIELDS.items() if f.metadata["record"]}
        record.update({k: jsonable(v) for k, v in dataclasses.asdict(self.resolved).items()})
        record.update(FIXED)
        return record


def jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def build_plan(settings: FinetuneSettings, *, world_size: int = 1, local_rank: int = 0) -> Plan:
    """Resolve settings against the registry and the launch (pure: no I/O; prepare_run adds the row counts)."""
    spec = REGISTRY[settings.which]
    training, lora = settings.training, settings.lora
    requested = settings.model.device_map.strip().lower()
    resolved = Resolved(
        model_id=settings.model.model_id or spec.hub_id,
        family=spec.family.name,
        source_langs=tuple(spec.source_langs),
        output_dir=str(settings.run_dir),
        device_map=resolve_device_map(
            qlora=lora.qlora, shardable=spec.family.shardable, requested=requested, world_size=world_size,
            local_rank=local_rank,
        ),  # fmt: skip
        device_map_requested=requested,
        world_size=world_size,
        local_rank=local_rank,
        precision=training.precision,
        global_batch=None if training.max_tokens else training.batch_size * training.grad_accum * world_size,
    )
    return Plan(**{group: getattr(settings, group) for group in GROUPS}, resolved=resolved)
