"""Settings (what the user asked for) and the plan (what a run will do), both plain data.

`FinetuneSettings` mirrors finetune.py's flags and defaults; `build_plan` resolves it against the registry, the
environment and the data into a `Plan`, the single object the training core reads and `--dry-run` prints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .device_map import DeviceMap, resolve_device_map
from .errors import SettingsError
from .registry import (
    ALL_LINEAR_TARGETS,
    DEFAULT_LORA_TARGETS,
    FINETUNE_ALL_CONSTANTS,
    FINETUNE_ALL_TABLE,
    REGISTRY,
    check_which,
)

LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
KEEP_CHECKPOINTS = 3


def flag(name: str) -> str:
    """The CLI flag of a settings field, for error messages."""
    return "--" + name.replace("_", "-")


def parse_lora_targets(value: str) -> tuple[str, ...]:
    """`--lora-targets`: a comma-separated list of module-name suffixes, or `all-linear`."""
    value = value.strip()
    if value.lower() in ("all-linear", "all_linear"):
        return ALL_LINEAR_TARGETS
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names or any(not n.replace("_", "").replace(".", "").isalnum() for n in names):
        raise SettingsError(f"--lora-targets: expected module names like q_proj,v_proj or all-linear, got {value!r}")
    return names


def check_token_budget(max_tokens: int | None, max_source_len: int, max_target_len: int) -> None:
    """A --max-tokens budget must hold the longest pair the length limits let through."""
    longest = max(max_source_len, max_target_len)
    if max_tokens is not None and max_tokens < longest:
        raise SettingsError(
            f"--max-tokens {max_tokens} is below the longest pair a batch may have to hold ({longest} tokens: "
            f"--max-source-len {max_source_len}, --max-target-len {max_target_len}); raise --max-tokens or lower "
            "those limits"
        )


@dataclass(frozen=True)
class FinetuneSettings:
    """Every `csas finetune` option, with finetune.py's meaning and the seed's defaults."""

    which: str
    """Registry key of the model to fine-tune."""
    data: Path = Path("training_data.jsonl")
    """JSONL training pairs: source, target, source_lang, pub_number."""
    output_dir: Path = Path("outputs")
    """Output root; the run is written to <output_dir>/<which>, as finetune.py did."""
    run_name: str | None = None
    """The run's folder under output_dir instead of <which> (csas sweep names its trials so); one folder name."""
    epochs: float = 1.0
    """Passes over the training split (fractions allowed); ignored when max_steps is set."""
    lr: float = 2e-4
    """Peak learning rate of the linear warm-up/decay schedule."""
    batch_size: int = 8
    """Sentence pairs per micro-batch, per device."""
    grad_accum: int = 2
    """Micro-batches per optimizer step."""
    max_tokens: int | None = None
    """Token-budget micro-batches instead of batch_size pairs: as many pairs as fit in this many tokens, counted as
    pairs x the longest pair's longer side (fairseq's convention), for training and the validation loss."""
    val_ratio: float = 0.05
    """Share of the rows (whole publications when pub_number is present) held out for evaluation."""
    max_source_len: int = 512
    """Source tokens kept per row (longer sources are truncated)."""
    max_target_len: int = 512
    """Target tokens kept per row (longer targets are truncated)."""
    seed: int = 42
    """Seeds the split, LoRA initialisation, dropout and batch order."""
    fp16: bool = False
    """Mixed precision in float16 (frozen weights in fp16, loss scaling); bf16 wins if both are given."""
    bf16: bool = False
    """Mixed precision in bfloat16 (frozen weights in bf16)."""
    no_qlora: bool = False
    """Train plain LoRA on unquantized weights; without it the base is loaded in 4-bit NF4 (QLoRA)."""
    save_steps: int = 1000
    """Optimizer steps between checkpoints (the last 3 are kept)."""
    eval_steps: int = 1000
    """Optimizer steps between evaluations of the validation loss."""
    eval_chrf: bool = False
    """At every evaluation also translate a fixed sample of the validation split and score it with chrF (sacrebleu's
    defaults, as `csas evaluate`); the best evaluation is then the highest chrF instead of the lowest loss."""
    eval_chrf_samples: int = 200
    """Validation rows chrF translates: a seeded sample chosen once, so every evaluation scores the same rows."""
    eval_num_beams: int = 1
    """Beam width of the chrF translations (1: greedy, the cheapest)."""
    patience: int | None = None
    """Stop after this many evaluations in a row without a new best; the run finishes normally. None: never."""
    logging_steps: int = 50
    """Optimizer steps between logged training losses."""
    warmup_ratio: float = 0.03
    """Share of the optimizer steps spent warming the learning rate up from zero."""
    device_map: str = "auto"
    """Where to load the base model; resolved by the device-map table (see device_map.py)."""
    disable_tqdm: bool = False
    """Plain log lines instead of a progress bar (batch jobs)."""
    lora_r: int = 32
    """LoRA rank."""
    lora_alpha: int = 64
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    max_steps: int | None = None
    """Optimizer steps to train for; overrides epochs when set."""
    max_train_samples: int | None = None
    """Train on at most this many rows of the training split: the first N of a shuffle seeded by `seed`, kept in
    file order, so a smaller cap is a subset of a larger one; None trains on the whole split."""
    max_eval_samples: int | None = None
    """Evaluate on at most this many rows of the validation split, chosen the same way; None keeps them all."""
    model_id: str | None = None
    """Base model: a hub id or a local snapshot directory; defaults to the registry's hub id."""
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    """Module-name suffixes that get LoRA adapters."""
    overwrite: bool = False
    """Allow replacing a finished run in the output directory."""
    resume: str | None = None
    """Continue from a checkpoint: "auto" (the newest usable one, or a fresh start when there is none) or a path."""

    def __post_init__(self) -> None:
        check_which(self.which)
        positive = ("batch_size", "grad_accum", "max_source_len", "max_target_len", "save_steps", "eval_steps",
                    "logging_steps", "lora_r", "lora_alpha", "eval_chrf_samples", "eval_num_beams")
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{flag(name)} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise SettingsError(f"--seed must be in [0, 2**32 - 1], got {self.seed}")
        for name in ("max_steps", "max_train_samples", "max_eval_samples", "patience", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{flag(name)} must be at least 1, got {value}")
        check_token_budget(self.max_tokens, self.max_source_len, self.max_target_len)
        run_name = self.run_name
        if run_name is not None and (run_name in ("", ".", "..") or Path(run_name).name != run_name):
            raise SettingsError(f"run name must be one folder name, got {run_name!r}")
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise SettingsError(f"--epochs must be a positive number, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SettingsError(f"--lr must be a positive number, got {self.lr}")
        for name in ("val_ratio", "warmup_ratio", "lora_dropout"):
            value = getattr(self, name)
            if not (0.0 <= value < 1.0):
                raise SettingsError(f"{flag(name)} must be in [0, 1), got {value}")
        if self.val_ratio == 0:
            for name, given in (("patience", self.patience is not None), ("eval_chrf", self.eval_chrf)):
                if given:
                    raise SettingsError(
                        f"{flag(name)} needs evaluations, but --val-ratio 0 holds no rows out for them; "
                        f"give --val-ratio a share such as 0.05, or drop {flag(name)}"
                    )
        if not self.device_map.strip():
            raise SettingsError("--device-map must not be empty (use auto, cpu, cuda:0 or none)")
        if self.resume is not None and self.overwrite:
            raise SettingsError("--resume and --overwrite exclude each other: continue a run, or replace it")
        if self.resume is not None and not self.resume.strip():
            raise SettingsError("--resume needs auto or a checkpoint folder")
        if not self.lora_targets:
            raise SettingsError("--lora-targets must name at least one module")

    @property
    def precision(self) -> str:
        """bf16 wins when both --bf16 and --fp16 are given, as in finetune.py."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    @property
    def run_dir(self) -> Path:
        return self.output_dir / (self.run_name or self.which)


def settings_from_table(key: str, **overrides: Any) -> FinetuneSettings:
    """finetune_all.py's settings for one model: its table row plus the shared constants, then overrides."""
    row = FINETUNE_ALL_TABLE[key]
    values: dict[str, Any] = dict(FINETUNE_ALL_CONSTANTS)
    values.update(asdict(row))
    values.update(overrides)
    return FinetuneSettings(which=key, **values)


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, resolved; printed by --dry-run and recorded in run.json."""

    which: str
    family: str
    model_id: str
    data: str
    output_dir: str
    source_langs: list[str]
    learning_rate: float
    batch_size: int
    grad_accum: int
    max_tokens: int | None
    world_size: int
    global_batch: int | None
    """Pairs per optimizer step (batch_size x grad_accum x world_size); None with max_tokens, where it varies."""
    epochs: float
    max_steps: int | None
    max_train_samples: int | None
    max_eval_samples: int | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: list[str]
    max_source_len: int
    max_target_len: int
    bf16: bool
    fp16: bool
    precision: str
    no_qlora: bool
    qlora: bool
    device_map: DeviceMap
    device_map_requested: str
    local_rank: int
    seed: int
    warmup_ratio: float
    val_ratio: float
    eval_steps: int
    eval_chrf: bool
    eval_chrf_samples: int
    eval_num_beams: int
    patience: int | None
    save_steps: int
    logging_steps: int
    disable_tqdm: bool
    overwrite: bool
    label_smoothing: float = LABEL_SMOOTHING
    weight_decay: float = WEIGHT_DECAY
    max_grad_norm: float = MAX_GRAD_NORM
    keep_checkpoints: int = KEEP_CHECKPOINTS
    train_rows: int | None = None
    eval_rows: int | None = None
    train_publications: int | None = None
    eval_publications: int | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    @property
    def best_metric(self) -> str:
        """What the best evaluation is chosen by: the highest eval_chrf with --eval-chrf, else the lowest eval_loss."""
        return "eval_chrf" if self.eval_chrf else "eval_loss"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_counts(self, **counts: int | None) -> "Plan":
        return replace(self, **counts)


def build_plan(settings: FinetuneSettings, *, world_size: int = 1, local_rank: int = 0) -> Plan:
    """Resolve settings against the registry and the launch environment (pure: no I/O)."""
    spec = REGISTRY[settings.which]
    qlora = not settings.no_qlora
    requested = settings.device_map.strip()
    return Plan(
        which=settings.which,
        family=spec.family.name,
        model_id=settings.model_id or spec.hub_id,
        data=str(settings.data),
        output_dir=str(settings.run_dir),
        source_langs=list(spec.source_langs),
        learning_rate=settings.lr,
        batch_size=settings.batch_size,
        grad_accum=settings.grad_accum,
        max_tokens=settings.max_tokens,
        world_size=world_size,
        global_batch=None if settings.max_tokens else settings.batch_size * settings.grad_accum * world_size,
        epochs=settings.epochs,
        max_steps=settings.max_steps,
        max_train_samples=settings.max_train_samples,
        max_eval_samples=settings.max_eval_samples,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        lora_targets=list(settings.lora_targets),
        max_source_len=settings.max_source_len,
        max_target_len=settings.max_target_len,
        bf16=settings.bf16,
        fp16=settings.fp16,
        precision=settings.precision,
        no_qlora=settings.no_qlora,
        qlora=qlora,
        device_map=resolve_device_map(
            qlora=qlora,
            shardable=spec.family.shardable,
            requested=requested,
            world_size=world_size,
            local_rank=local_rank,
        ),
        device_map_requested=requested,
        local_rank=local_rank,
        seed=settings.seed,
        warmup_ratio=settings.warmup_ratio,
        val_ratio=settings.val_ratio,
        eval_steps=settings.eval_steps,
        eval_chrf=settings.eval_chrf,
        eval_chrf_samples=settings.eval_chrf_samples,
        eval_num_beams=settings.eval_num_beams,
        patience=settings.patience,
        save_steps=settings.save_steps,
        logging_steps=settings.logging_steps,
        disable_tqdm=settings.disable_tqdm,
        overwrite=settings.overwrite,
    )


def plan_fields() -> list[str]:
    return [f.name for f in fields(Plan)]
