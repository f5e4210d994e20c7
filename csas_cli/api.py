"""csas from Python: the pipeline's `finetune_model` and `finetuning_pipeline`, on the core `csas finetune` and
`csas finetune-all` run.

    from csas_cli import finetune_model, finetuning_pipeline

    result = finetune_model("opus_mt_en_fr", "train.jsonl", "outputs", learning_rate=3e-4, no_qlora=True)
    results = finetuning_pipeline("train.jsonl", "outputs", config="csas.toml")

Parameter names, order and defaults are the seed's (`which, data_path, output_directory, learning_rate=2e-4, ...`),
finetune.py's other flags follow under their finetune.py names, and every other `csas finetune` option is
keyword-only. Errors are csas_cli.errors.CsasError subclasses (the CLI's one-line messages; never SystemExit);
nothing is written to stdout, and progress goes to the `csas` logger (`logging.getLogger("csas")`), so the caller
decides what is shown.
"""

from __future__ import annotations

import functools
import inspect
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from .config import Config, load_config
from .errors import SettingsError
from .layout import BEST_DIR, FINISHED, run_state
from .progress import say, to_logging
from .settings import FinetuneSettings

T = TypeVar("T")


_PASSED: ContextVar[frozenset[str]] = ContextVar("csas_passed", default=frozenset())
"""The arguments the caller of finetune_model actually passed (they win over a config, as flags do)."""


def records_passed(func: Callable[..., T]) -> Callable[..., T]:
    """Note which arguments each call passes, whatever their values, keeping `func`'s signature."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        token = _PASSED.set(frozenset(signature.bind(*args, **kwargs).arguments))
        try:
            return func(*args, **kwargs)
        finally:
            _PASSED.reset(token)

    return wrapper


@dataclass(frozen=True)
class FinetuneResult:
    """What one run came to. `status`: ok (trained now), skipped (finished before, with the same settings), failed,
    stopped (SIGTERM/SIGUSR1: a checkpoint was written), interrupted (Ctrl-C), not run (after a stop), or planned
    (`dry_run`: nothing trained; `plan` is what --dry-run prints)."""

    which: str
    status: str
    run_dir: Path
    adapter: Path | None = None
    """The last step's adapter (RUN/lora), for PeftModel.from_pretrained; None unless the run is finished."""
    best_adapter: Path | None = None
    """The best evaluation's adapter (RUN/best); None without evaluations."""
    steps: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    eval_chrf: float | None = None
    stopped_early: bool = False
    """--patience ended the run before its last step."""
    seconds: float | None = None
    error: str | None = None
    """Why the run failed, stopped or was interrupted (the CLI's one-line message)."""
    plan: dict[str, Any] = field(default_factory=dict)
    """The resolved plan (--dry-run's record; run.json's `plan` of a finished run)."""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped", "planned")


@records_passed
def finetune_model(
    which: str,
    data_path: str | Path,
    output_directory: str | Path,
    learning_rate: float = 2e-4,
    batch_size: int = 8,
    grad_accum: int = 2,
    epochs: float = 1.0,
    val_ratio: float = 0.05,
    max_source_len: int = 512,
    max_target_len: int = 512,
    bf16: bool = False,
    fp16: bool = False,
    no_qlora: bool = False,
    seed: int = 42,
    save_steps: int = 1000,
    eval_steps: int = 1000,
    logging_steps: int = 50,
    warmup_ratio: float = 0.03,
    device_map: str = "auto",
    disable_tqdm: bool = False,
    lora_r: int = 32,
    lora_alpha: int = 64,
    lora_dropout: float = 0.05,
    max_steps: int | None = None,
    *,
    model_id: str | None = None,
    revision: str | None = None,
    max_tokens: int | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    lora_targets: str | Sequence[str] | None = None,
    eval_data: str | Path | None = None,
    eval_chrf: bool = False,
    eval_chrf_samples: int | None = None,
    eval_num_beams: int | None = None,
    patience: int | None = None,
    save_total_limit: int | None = None,
    glossary: str | Path | None = None,
    glossary_subject: str | None = None,
    glossary_sheet: str | None = None,
    term_annotation: float | None = None,
    locales: str | Sequence[str] | None = None,
    publication_from: str | None = None,
    both_directions: bool = False,
    overwrite: bool = False,
    resume: str | None = None,
    config: Config | str | Path | Mapping[str, Any] | Any = None,
    dry_run: bool = False,
) -> FinetuneResult:
    """Fine-tune one registry model (`which`) on `data_path` into `output_directory/<which>`, as `csas finetune`.

    Every argument means what the `csas finetune` flag of that name means (`learning_rate` is --lr, `no_qlora`
    --no-qlora, `output_directory` --output-dir), with finetune.py's defaults; the keyword-only ones are csas's own
    options, None meaning the option's default. `config`: a settings file (path), the pipeline's three tables (a
    mapping or a module) or a Config, applied for this model under the arguments that differ from their defaults
    (as flags win over the file). `dry_run`: check everything that needs no weights and return the plan only.

    Raises a CsasError subclass (DataError naming the file and line, SettingsError naming the setting, ModelError,
    OutputError, HardwareError, TrainingError; Preempted or Interrupted after a checkpoint when a signal stopped it).
    """
    given = {
        "which": which, "data": Path(data_path), "output_dir": Path(output_directory), "learning_rate": learning_rate,
        "batch_size": batch_size, "grad_accum": grad_accum, "epochs": epochs, "val_ratio": val_ratio,
        "max_source_len": max_source_len, "max_target_len": max_target_len, "bf16": bf16, "fp16": fp16,
        "qlora": not no_qlora, "seed": seed, "save_steps": save_steps, "eval_steps": eval_steps,
        "logging_steps": logging_steps, "warmup_ratio": warmup_ratio, "device_map": device_map,
        "disable_tqdm": disable_tqdm, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
        "max_steps": max_steps,
    }  # fmt: skip
    own = {
        "model_id": model_id, "revision": revision, "max_tokens": max_tokens, "max_train_samples": max_train_samples,
        "max_eval_samples": max_eval_samples, "lora_targets": lora_targets, "eval_chrf_samples": eval_chrf_samples,
        "eval_num_beams": eval_num_beams, "patience": patience, "save_total_limit": save_total_limit,
        "resume": resume, "eval_data": None if eval_data is None else Path(eval_data),
        "glossary": None if glossary is None else Path(glossary), "term_annotation": term_annotation,
        "glossary_subject": glossary_subject, "glossary_sheet": glossary_sheet, "locales": locales,
        "publication_from": publication_from,
    }  # fmt: skip
    values = {**given, **{k: v for k, v in own.items() if v is not None}}
    values.update({k: True for k, v in (("eval_chrf", eval_chrf), ("overwrite", overwrite),
                                        ("both_directions", both_directions)) if v})  # fmt: skip
    if isinstance(values.get("lora_targets"), (list, tuple)):
        values["lora_targets"] = ",".join(values["lora_targets"])
    with to_logging():
        loaded = load_config(config)
        if loaded is not None:
            from .config import over_file

            names = {"no_qlora": "qlora", "data_path": "data", "output_directory": "output_dir"}
            values = over_file(values, {names.get(n, n) for n in _PASSED.get()}, loaded)
        settings = FinetuneSettings.create(**values)
        if dry_run:
            return planned(settings)
        return train_one(settings)


def finetuning_pipeline(
    data_path: str | Path,
    output_root: str | Path = "outputs",
    config: Config | str | Path | Mapping[str, Any] | Any = None,
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    model_root: str | Path | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    **overrides: Any,
) -> list[FinetuneResult]:
    """Fine-tune every model of the configuration in turn, as `csas finetune-all`: one result per model, in order.

    `config`: None (the built-in finetune-all table: the five plans of `csas finetune-all`), a settings file (path),
    or the pipeline's three tables as a mapping or a module (TRAINING_HYPERPARAMS, QUANTIZATION_CONFIG,
    MODEL_SPECIFIC_HYPERPARAMS, converted as the pipeline converts them: use_qlora -> qlora, use_bfloat16 -> bf16,
    use_fp16 -> fp16, gradient_accumulation -> grad_accum), whose per-model values apply over its defaults; the
    models of MODEL_SPECIFIC_HYPERPARAMS are trained, in its order. `overrides` (settings names: learning_rate=...,
    max_steps=...) win over everything, as flags do. A failing model does not stop the others; finished models
    (trained with the same settings) are skipped, unfinished ones resumed; a stop signal or Ctrl-C ends the loop
    after its checkpoint (the models left are `not run`). `dry_run`: the plans only. Bad arguments or a bad config
    raise a CsasError before anything runs.
    """
    from .commands.finetune_all import all_settings, run_all

    with to_logging():
        settings_list = all_settings(
            data=Path(data_path), output_dir=Path(output_root), only=key_list(only), skip=key_list(skip),
            model_root=None if model_root is None else Path(model_root), config=load_config(config),
            overrides={**settings_names(overrides), **({"overwrite": True} if overwrite else {})},
        )  # fmt: skip
        if dry_run:
            return [planned(settings) for settings in settings_list]
        outcomes = {o.key: o for o in run_all(settings_list, say=say)}
        results = []
        for settings in settings_list:
            outcome = outcomes.get(settings.which)
            status = outcome.status if outcome is not None else "not run"
            results.append(result_of(settings, status, None if outcome is None else outcome.message or None))
        return results


def key_list(keys: str | Sequence[str]) -> list[str]:
    """Registry keys given as a list, or as one string (comma-separated, as on the command line)."""
    items = [keys] if isinstance(keys, str) else list(keys)
    return [k.strip() for item in items for k in item.split(",") if k.strip()]


def settings_names(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's keyword overrides by settings name: finetune_model's names (no_qlora inverted) and the seed's
    (gradient_accumulation) accepted; an unknown name or one the pipeline's own arguments give is a SettingsError."""
    from .config import ALIASES, NOT_IN_FILE
    from .registry import did_you_mean
    from .settings import FIELDS

    converted: dict[str, Any] = {}
    for name, value in overrides.items():
        if name == "no_qlora":
            name, value = "qlora", not value
        name = ALIASES.get(name, name)
        if name in NOT_IN_FILE:
            raise SettingsError(f"finetuning_pipeline: {name} is given by the pipeline's own arguments, not as an "
                                "override")  # fmt: skip
        if name not in FIELDS:
            raise SettingsError(f"finetuning_pipeline: unknown setting {name!r}{did_you_mean(name, list(FIELDS))}")
        converted[name] = value
    return converted


def planned(settings: FinetuneSettings) -> FinetuneResult:
    from .training.run import dry_run_record

    record = dry_run_record(settings)
    return FinetuneResult(settings.which, "planned", settings.run_dir, plan=record)


def train_one(settings: FinetuneSettings) -> FinetuneResult:
    """Train (or resume) one run; `skipped` when --resume found it finished with the same settings."""
    from .training.run import run_finetune

    finished_before = settings.output.resume is not None and run_state(settings.run_dir) == "finished"
    run_finetune(settings)
    return result_of(settings, "skipped" if finished_before else "ok")


def result_of(settings: FinetuneSettings, status: str, error: str | None = None) -> FinetuneResult:
    """A run's result from what its folder holds (finished.json and run.json, when there)."""
    run_dir = settings.run_dir
    if status not in ("ok", "skipped") or run_state(run_dir) != "finished":
        return FinetuneResult(settings.which, status, run_dir, error=error)
    finished = json.loads((run_dir / FINISHED).read_text(encoding="utf-8"))
    try:
        plan = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("plan", {})
    except (OSError, ValueError):
        plan = {}
    return FinetuneResult(
        settings.which, status, run_dir, adapter=run_dir / finished.get("adapter", "lora"),
        best_adapter=run_dir / BEST_DIR if finished.get("best") else None, steps=finished.get("steps"),
        train_loss=finished.get("train_loss"), eval_loss=finished.get("eval_loss"),
        eval_chrf=finished.get("eval_chrf"), stopped_early=bool(finished.get("stopped_early")),
        seconds=finished.get("seconds"), error=error, plan=plan,
    )  # fmt: skip


__all__ = ["FinetuneResult", "finetune_model", "finetuning_pipeline"]
