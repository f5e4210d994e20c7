"""Every setting of a fine-tuning run, declared once.

Each setting is a field of one of six frozen groups (the model, the corpus, LoRA, the optimisation, evaluation, the
run directory), with its default, its one-line `--help` text and its bounds in the field's metadata and a docstring
under it. The command line builds its options from these fields (options.py), so a default lives here and nowhere
else; `csas finetune --help`, `--dry-run` and the README's flag table all show it from here.

Fields are addressed by a flat name, unique across the groups (`lora_r`, `learning_rate`): the name run.json records,
`FinetuneSettings.create` takes and `FinetuneSettings.updated` replaces. The CLI flag is that name, dashed, unless a
field says otherwise: `--lr` for `learning_rate`, and `--no-qlora` (finetune.py's spelling, setting `qlora` to False).

What a field may say about itself (its flag, bounds, which commands take it, whether a resume must keep it) is
fields.py's `setting`; the plan a run resolves its settings into is plan.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .device_map import check_device_map_form
from .errors import SettingsError
from .fields import BENCH, FINETUNE, FINETUNE_ALL, MATCH, MEASURED, ONE_MODEL, UNSWEPT, WITH_CHRF, WITH_GLOSSARY
from .fields import check_bounds, flag_name, setting, spelled
from .registry import (
    DEFAULT_LORA_TARGETS,
    FINETUNE_ALL_CONSTANTS,
    FINETUNE_ALL_TABLE,
    MODEL_KEYS,
    check_publication_from,
    check_which,
    parse_locales,
)
from .values import check_token_budget, parse_lora_targets, parse_report_to

LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
FIXED = {"label_smoothing": LABEL_SMOOTHING, "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM}
"""finetune.py's fixed settings: not flags, recorded with every plan."""

# --- the groups ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSettings:
    """Which model is trained, from where, placed how."""

    which: str = setting(
        help=f"Registry key: {', '.join(MODEL_KEYS)}.", resume=MATCH, in_file=False, commands=ONE_MODEL
    )
    """Registry key of the model to fine-tune: its family, hub id and the rows it trains on."""
    model_id: str | None = setting(
        None, "Base model: hub id or local snapshot (default: the registry's).", record=False, per_model=True,
        commands=ONE_MODEL,
    )
    """A hub id or a local snapshot directory; None: the registry's hub id. The plan records the resolved one."""
    revision: str | None = setting(
        None, "Hub revision of the base: a tag, branch or commit (hub ids only).", resume=MATCH, per_model=True,
        commands=ONE_MODEL,
    )
    """Which version of a hub repository to load (some OPUS-MT repositories were re-uploaded); None: the default
    branch. Recorded, and part of the resume check; refused with a local snapshot."""
    device_map: str = setting("auto", "Base model placement: auto, cpu, cuda:0, none.", record=False)
    """Where to load the base model, resolved by the device-map table (device_map.py); the plan records both."""

    def __post_init__(self) -> None:
        check_which(self.which)
        if self.revision is not None and not self.revision.strip():
            raise SettingsError("--revision must not be empty (a tag, branch or commit of the hub repository)")
        if not self.device_map.strip():
            raise SettingsError("--device-map must not be empty (use auto, cpu, cuda:0 or none)")
        check_device_map_form(self.device_map)


@dataclass(frozen=True)
class CorpusSettings:
    """What is read, how it is split, and where sentences are cut."""

    data: Path = setting(
        Path("training_data.jsonl"), "Training pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files.", in_file=False
    )
    """Training pairs (source, target, source_lang, pub_number): JSON Lines, a TMX translation memory or TSV, by
    extension (data/pairs.py)."""
    eval_data: Path | None = setting(
        None, "Validation pairs (.jsonl, .tmx, .tsv, SOURCE,TARGET) instead of a split of --data; --val-ratio is then "
        "unused.", in_file=False
    )
    """A validation file: every --data row trains and these rows evaluate; None splits --data by --val-ratio."""
    locales: tuple[str, ...] | None = setting(
        None, "Variants to take where a TMX unit holds several of a language, e.g. fr-CA,en-CA (else the first).",
        resume=MATCH,
    )
    """Which regional variant to read where a translation unit holds several segments of one language (`fr-FR` and
    `fr-CA`), in order of preference (data/tmx.py); None takes the first in the unit. A comma-separated string (the
    CLI's form) is parsed."""
    publication_from: str | None = setting(
        None, "Where a TMX unit's publication comes from: tuid-prefix or prop:NAME; unset, its pub_number prop.",
        resume=MATCH,
    )
    """What keeps a publication whole in the split, in a TMX memory: the unit's `tuid` up to its first `:`
    (`tuid-prefix`), or a `<prop>` of the type NAME (`prop:Txt::Doc. No.`); None: its pub_number prop."""
    both_directions: bool = setting(False, "Every pair also serves the other direction, reversed.", resume=MATCH)
    """Each pair also trains the other direction, source and target swapped (an EN->FR memory then trains the FR->EN
    models); a pair the data already hold both ways is not added twice."""
    val_ratio: float = setting(0.05, "Share held out for evaluation (whole publications).", fraction=True, resume=MATCH)
    """Share of the rows (whole publications when pub_number is present) held out for evaluation; unused with
    eval_data."""
    max_source_len: int = setting(512, "Source tokens kept.", at_least=1, resume=MATCH, commands=MEASURED)
    """Source tokens kept per row (longer sources are truncated)."""
    max_target_len: int = setting(512, "Target tokens kept.", at_least=1, resume=MATCH, commands=MEASURED)
    """Target tokens kept per row (longer targets are truncated)."""
    max_train_samples: int | None = setting(
        None, "Train on at most N rows of the split (a seeded random subset).", at_least=1, resume=MATCH
    )
    """Train on at most this many rows of the training split: the first N of a shuffle seeded by `seed`, kept in
    file order, so a smaller cap is a subset of a larger one; None trains on the whole split."""
    max_eval_samples: int | None = setting(
        None, "Evaluate on at most N rows of the split (a seeded random subset).", at_least=1, resume=MATCH
    )
    """Evaluate on at most this many rows of the validation split, chosen the same way; None keeps them all."""
    glossary: Path | None = setting(
        None, "Glossary (TSV, CSV, xlsx, TBX): --term-annotation's terms, and eval_term_success with --eval-chrf."
    )
    """The domain's terminology (data/glossary.py): annotates training sources with --term-annotation, and adds
    eval_term_success to evaluations that score chrF."""
    glossary_subject: str | None = setting(
        None, "Keep the glossary entries whose subject field holds TEXT (TERMIUM, TBX, a subject column).",
        resume=WITH_GLOSSARY,
    )
    """A subject field of the glossary to keep (case-insensitive, part of a field counts); None keeps every entry."""
    glossary_sheet: str | None = setting(
        None, "The workbook sheet of --glossary (default: the first).", resume=WITH_GLOSSARY
    )
    """The sheet of an Excel glossary; None reads the first."""
    term_annotation: float = setting(
        0.0, "Share of the training pairs using a glossary term whose source is annotated with it (0 to 1).",
        resume=MATCH,
    )
    """Share of the eligible training pairs (a glossary term in the source whose target term the reference uses)
    whose source gets the target term inline (data/terms.py), chosen with `seed`; 0 annotates none."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        if self.locales is not None:
            object.__setattr__(self, "locales", parse_locales(self.locales) or None)
        object.__setattr__(self, "publication_from", check_publication_from(self.publication_from))
        if self.eval_data is not None:
            object.__setattr__(self, "eval_data", Path(self.eval_data))
        if self.glossary is not None:
            object.__setattr__(self, "glossary", Path(self.glossary))
        check_bounds(self)
        if not 0.0 <= self.term_annotation <= 1.0:
            raise SettingsError(f"--term-annotation must be in [0, 1], got {self.term_annotation}")
        if self.term_annotation > 0 and self.glossary is None:
            raise SettingsError("--term-annotation needs --glossary FILE (the terms to annotate with)")
        for name in ("glossary_subject", "glossary_sheet"):
            if getattr(self, name) is not None and self.glossary is None:
                raise SettingsError(f"{flag(name)} needs --glossary FILE")


@dataclass(frozen=True)
class LoraSettings:
    """The adapter and the base it sits on."""

    lora_r: int = setting(32, "LoRA rank.", at_least=1, resume=MATCH, commands=UNSWEPT | {BENCH})
    """LoRA rank."""
    lora_alpha: int = setting(64, "LoRA alpha.", at_least=1, resume=MATCH, commands=MEASURED)
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = setting(0.05, "LoRA dropout.", fraction=True, resume=MATCH, commands=UNSWEPT)
    """Dropout on the LoRA branch."""
    lora_targets: tuple[str, ...] = setting(
        DEFAULT_LORA_TARGETS, "Comma-separated module names, or all-linear.", resume=MATCH, commands=MEASURED
    )
    """Module-name suffixes that get LoRA adapters; a comma-separated string (the CLI's form) is parsed."""
    qlora: bool = setting(True, "Plain LoRA; without it the base is loaded in 4-bit (QLoRA).", flag="no_qlora",
                          inverted=True, resume=MATCH, commands=MEASURED)  # fmt: skip
    """Load the base in 4-bit NF4 with double quantisation (QLoRA); False trains plain LoRA on unquantized weights."""

    def __post_init__(self) -> None:
        if isinstance(self.lora_targets, str):
            object.__setattr__(self, "lora_targets", parse_lora_targets(self.lora_targets))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        check_bounds(self)
        if not self.lora_targets:
            raise SettingsError("--lora-targets must name at least one module")


@dataclass(frozen=True)
class TrainingSettings:
    """The optimisation: how much, how fast, in which precision."""

    epochs: float = setting(1.0, "Passes over the training split.", positive=True, resume=MATCH)
    """Passes over the training split (fractions allowed); ignored when max_steps is set."""
    learning_rate: float = setting(
        2e-4, "Peak learning rate.", flag="lr", positive=True, resume=MATCH, commands=UNSWEPT
    )
    """Peak learning rate of the linear warm-up/decay schedule."""
    batch_size: int = setting(8, "Pairs per micro-batch, per device.", at_least=1, resume=MATCH, commands=MEASURED)
    """Sentence pairs per micro-batch, per device."""
    grad_accum: int = setting(2, "Micro-batches per optimizer step.", at_least=1, resume=MATCH, commands=MEASURED)
    """Micro-batches per optimizer step."""
    max_tokens: int | None = setting(
        None, "Token-budget micro-batches: as many pairs as fit in N tokens, not --batch-size pairs.", at_least=1,
        resume=MATCH, commands=MEASURED,
    )
    """Token-budget micro-batches instead of batch_size pairs: as many pairs as fit in this many tokens, counted as
    pairs x the longest pair's longer side (fairseq's convention), for training and the validation loss."""
    seed: int = setting(42, "Seed for split, initialisation and batch order.", resume=MATCH, commands=MEASURED)
    """Seeds the split, LoRA initialisation, dropout and batch order."""
    fp16: bool = setting(False, "Mixed precision in float16 (CUDA).", commands=MEASURED)
    """Mixed precision in float16 (frozen weights in fp16, loss scaling); bf16 wins if both are given."""
    bf16: bool = setting(False, "Mixed precision in bfloat16; wins over --fp16.", commands=MEASURED)
    """Mixed precision in bfloat16 (frozen weights in bf16)."""
    warmup_ratio: float = setting(0.03, "Share of steps warming up the learning rate.", fraction=True, resume=MATCH)
    """Share of the optimizer steps spent warming the learning rate up from zero."""
    max_steps: int | None = setting(None, "Optimizer steps; overrides --epochs.", at_least=1, resume=MATCH)
    """Optimizer steps to train for; overrides epochs when set."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if not 0 <= self.seed < 2**32:
            raise SettingsError(f"--seed must be in [0, 2**32 - 1], got {self.seed}")

    @property
    def precision(self) -> str:
        """bf16 wins when both --bf16 and --fp16 are given, as in finetune.py."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


@dataclass(frozen=True)
class EvaluationSettings:
    """Evaluation during training, and what the best adapter is chosen by."""

    eval_steps: int = setting(1000, "Steps between evaluations.", at_least=1)
    """Optimizer steps between evaluations of the validation loss (and after the last step)."""
    eval_chrf: bool = setting(
        False, "Also score chrF at every evaluation; the best evaluation is then the highest chrF.", resume=WITH_CHRF
    )
    """At every evaluation also translate a fixed sample of the validation split and score it with chrF (sacrebleu's
    defaults, as `csas evaluate`); the best evaluation is then the highest chrF instead of the lowest loss."""
    eval_chrf_samples: int = setting(
        200, "Validation rows chrF translates (a seeded sample, the same every time).", at_least=1, resume=WITH_CHRF
    )
    """Validation rows chrF translates: a seeded sample chosen once, so every evaluation scores the same rows."""
    eval_num_beams: int = setting(1, "Beam width of the chrF translations (1: greedy).", at_least=1, resume=WITH_CHRF)
    """Beam width of the chrF translations (1: greedy, the cheapest)."""
    eval_max_len: int | None = setting(
        None, "Most tokens of a chrF translation; unset: 1.5 x its batch's longest source + 10, at most "
        "--max-target-len.", at_least=1, resume=WITH_CHRF,
    )  # fmt: skip
    """Most new tokens of each chrF translation. None: 1.5 x the longest source of its batch + 10, at most
    max_target_len (evaluation.LENGTH_CAP), which keeps a model that repeats itself early in training from making
    the evaluation the run's longest part; a number: that many, whatever the source."""
    patience: int | None = setting(
        None, "Stop after N evaluations in a row without a new best (finishes normally).", at_least=1
    )
    """Stop after this many evaluations in a row without a new best; the run finishes normally. None: never."""

    def __post_init__(self) -> None:
        check_bounds(self)

    def needing_evaluations(self) -> list[str]:
        """The settings given that need a validation split to act on (--patience, --eval-chrf)."""
        return [name for name, given in (("patience", self.patience is not None), ("eval_chrf", self.eval_chrf))
                if given]  # fmt: skip

    @property
    def best_metric(self) -> str:
        """What the best evaluation is chosen by: the highest eval_chrf with --eval-chrf, else the lowest eval_loss."""
        return "eval_chrf" if self.eval_chrf else "eval_loss"


@dataclass(frozen=True)
class OutputSettings:
    """The run directory: where, how often it is written, and what may be replaced."""

    output_dir: Path = setting(
        Path("outputs"), "Output root; the run goes to OUTPUT_DIR/WHICH.", record=False, in_file=False
    )
    """Output root; the run is written to <output_dir>/<which>, as finetune.py did (the plan records that folder)."""
    run_name: str | None = setting(None, record=False, in_file=False, commands=frozenset())
    """The run's folder under output_dir instead of <which> (csas sweep names its trials so); one folder name."""
    save_steps: int = setting(1000, "Steps between checkpoints (the newest --save-total-limit kept).", at_least=1)
    """Optimizer steps between checkpoints (the newest save_total_limit are kept)."""
    save_total_limit: int = setting(3, "Checkpoints kept: the newest N (best/ is kept apart).", at_least=1)
    """How many periodic checkpoints stay on disk, the newest ones (HF's save_total_limit); best/ is not one of
    them. At least one, since --resume continues from the newest."""
    average_last: int | None = setting(
        None, "At the end also write RUN/averaged: the mean of the last step and the newest N-1 checkpoints, "
        "evaluated beside the last step.", at_least=2,
    )  # fmt: skip
    """Checkpoint averaging (training/averaging.py): the final step's adapter and the newest N-1 checkpoints' as one
    exact mean of their weight updates, in RUN/averaged, evaluated on the validation split beside the last step.
    Not a training setting: a resume may add or drop it."""
    logging_steps: int = setting(50, "Steps between logged losses.", at_least=1)
    """Optimizer steps between logged training losses."""
    disable_tqdm: bool = setting(False, "Plain log lines instead of a progress bar.")
    """Plain log lines instead of a progress bar (batch jobs)."""
    overwrite: bool = setting(False, "Replace a finished run in the output directory.", record=False, in_file=False)
    """Allow replacing a finished run in the output directory."""
    resume: str | None = setting(
        None, "Continue from the newest checkpoint (auto) or from a checkpoint folder.", record=False, in_file=False,
        commands=frozenset({FINETUNE}),
    )
    """Continue from a checkpoint: "auto" (the newest usable one, or a fresh start when there is none) or a path."""
    report_to: str = setting(
        "none", "Also report the metrics to tensorboard, wandb or mlflow (comma-separated); none: metrics.jsonl only."
    )
    """Trackers that receive a copy of metrics.jsonl (training/tracking.py): "none", or tracker names in the order of
    values.REPORT_TO, comma-separated. Not a training setting: a resume may add or drop one."""
    config: Path | None = setting(
        None, "Settings file (TOML): \\[training], \\[quantization], \\[models.KEY].", in_file=False,
        commands=frozenset({FINETUNE, FINETUNE_ALL}),
    )
    """The settings file the values came from (config.py), recorded with its sha256; flags win over it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.config is not None:
            object.__setattr__(self, "config", Path(self.config))
        check_bounds(self)
        name = self.run_name
        if name is not None and (name in ("", ".", "..") or Path(name).name != name):
            raise SettingsError(f"run name must be one folder name, got {name!r}")
        if self.resume is not None and self.overwrite:
            raise SettingsError("--resume and --overwrite exclude each other: continue a run, or replace it")
        if self.resume is not None and not self.resume.strip():
            raise SettingsError("--resume needs auto or a checkpoint folder")
        if self.average_last is not None and self.average_last - 1 > self.save_total_limit:
            raise SettingsError(f"--average-last {self.average_last} averages {self.average_last - 1} checkpoints "
                                f"with the last step, but --save-total-limit {self.save_total_limit} keeps fewer; "
                                f"raise --save-total-limit to {self.average_last - 1}")  # fmt: skip
        object.__setattr__(self, "report_to", parse_report_to(self.report_to))

    @property
    def trackers(self) -> tuple[str, ...]:
        """The trackers --report-to names, () for none."""
        return () if self.report_to == "none" else tuple(self.report_to.split(","))


GROUPS: Mapping[str, type] = {
    "model": ModelSettings,
    "corpus": CorpusSettings,
    "training": TrainingSettings,
    "lora": LoraSettings,
    "evaluation": EvaluationSettings,
    "output": OutputSettings,
}
"""The groups in the order they are built (and checked): an unknown --which is reported before anything else."""


def group_of(name: str) -> str:
    """The group holding the flat settings name `name` (TypeError for an unknown name: a bug, not a user error)."""
    try:
        return FIELD_GROUP[name]
    except KeyError:
        raise TypeError(f"unknown setting {name!r}") from None


def settings_fields() -> Iterator[dataclasses.Field]:
    """Every settings field, group by group."""
    for cls in GROUPS.values():
        yield from fields(cls)


FIELD_GROUP = {f.name: group for group, cls in GROUPS.items() for f in fields(cls)}
"""flat name -> the group that holds it."""
FIELDS = {f.name: f for f in settings_fields()}
if len(FIELDS) != len(list(settings_fields())):  # pragma: no cover - a typo in this module
    raise RuntimeError("settings names must be unique across the groups")


def flag(name: str) -> str:
    """The dashed CLI flag of a flat settings name, for messages: `learning_rate` -> `--lr`."""
    f = FIELDS.get(name)
    return "--" + (flag_name(f) if f is not None else name).replace("_", "-")


@dataclass(frozen=True)
class FinetuneSettings:
    """Every `csas finetune` option, with finetune.py's meaning and defaults, in six groups."""

    model: ModelSettings
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    output: OutputSettings = field(default_factory=OutputSettings)

    def __post_init__(self) -> None:
        check_token_budget(self.training.max_tokens, self.corpus.max_source_len, self.corpus.max_target_len)
        needing = self.evaluation.needing_evaluations()
        if self.corpus.val_ratio == 0 and self.corpus.eval_data is None and needing:
            name = needing[0]
            raise SettingsError(
                f"{flag(name)} needs evaluations, but --val-ratio 0 holds no rows out for them; "
                f"give --val-ratio a share such as 0.05 (or --eval-data FILE), or drop {flag(name)}"
            )

    @classmethod
    def create(cls, **values: Any) -> "FinetuneSettings":
        """Settings from flat names (`which` required), each given to its group; the groups check themselves."""
        by_group: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for name, value in values.items():
            by_group[group_of(name)][name] = value
        return cls(**{group: GROUPS[group](**given) for group, given in by_group.items()})

    def updated(self, **values: Any) -> "FinetuneSettings":
        """A copy with the flat-named settings replaced, checked again."""
        return FinetuneSettings.create(**{**self.flat(), **values})

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name."""
        return {name: getattr(getattr(self, group), name) for name, group in FIELD_GROUP.items()}

    @property
    def which(self) -> str:
        return self.model.which

    @property
    def run_dir(self) -> Path:
        return self.output.output_dir / (self.output.run_name or self.which)


def table_values(key: str) -> dict[str, Any]:
    """finetune_all.py's settings for one model: the shared constants and its table row, as flat settings names."""
    values: dict[str, Any] = dict(FINETUNE_ALL_CONSTANTS)
    values.update(dataclasses.asdict(FINETUNE_ALL_TABLE[key]))
    return values


def settings_from_table(key: str, **overrides: Any) -> FinetuneSettings:
    """finetune_all.py's settings for one model: its table row plus the shared constants, then overrides."""
    return FinetuneSettings.create(which=key, **{**table_values(key), **overrides})


def shared_values(settings_for: Callable[[str], FinetuneSettings]) -> dict[str, Any]:
    """The flat settings that `settings_for(key)` gives every registry key alike (what a command of several runs
    shows as its defaults); a setting whose value differs between models (the batch size) is left out."""
    values = [settings_for(key).flat() for key in MODEL_KEYS]
    return {name: value for name, value in values[0].items() if all(v[name] == value for v in values)}


def given_caption(given: Mapping[str, Any], every: str) -> str | None:
    """The settings given on the command line that apply to every run, over the table: `--lr 0.001, --epochs 2`."""
    shown = [spelled(FIELDS[name], value) for name, value in given.items()
             if name in FIELDS and FIELDS[name].metadata["record"]]  # fmt: skip
    return f"for every {every}, over the table: {', '.join(shown)}" if shown else None


__all__ = [
    "GROUPS",
    "CorpusSettings",
    "EvaluationSettings",
    "FinetuneSettings",
    "LoraSettings",
    "ModelSettings",
    "OutputSettings",
    "TrainingSettings",
    "flag",
    "given_caption",
    "parse_lora_targets",
    "settings_from_table",
]  # fmt: skip
