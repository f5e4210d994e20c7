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

import inspect
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .config import Config, layered, load_config
from .errors import CsasError, SettingsError
from .layout import RunRecord, run_state
from .progress import say, to_logging
from .fields import FINETUNE, REQUIRED, flag_name
from .settings import FIELDS, FinetuneSettings


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


UNSET: Any = object()
"""The real default of finetune_model's parameters: an argument left at it was not given (its signature shows the
setting's default instead)."""

SEED_ARGUMENTS = (
    "which", "data_path", "output_directory", "learning_rate", "batch_size", "grad_accum", "epochs", "val_ratio",
    "max_source_len", "max_target_len", "bf16", "fp16", "no_qlora", "seed", "save_steps", "eval_steps",
    "logging_steps", "warmup_ratio", "device_map", "disable_tqdm", "lora_r", "lora_alpha", "lora_dropout", "max_steps",
)  # fmt: skip
"""The seed's `finetune_model` parameters, in its order (finetune.py's flags under their finetune.py names)."""
API_NAMES = {"data": "data_path", "output_dir": "output_directory", "qlora": "no_qlora"}
"""Settings the seed's signature names otherwise (`no_qlora` is `qlora` inverted)."""
KEYWORD_ORDER = (
    "model_id", "revision", "max_tokens", "max_train_samples", "max_eval_samples", "lora_targets", "eval_data",
    "eval_chrf", "eval_chrf_samples", "eval_num_beams", "eval_max_len", "patience", "save_total_limit",
    "glossary", "glossary_subject", "glossary_sheet", "term_annotation", "locales", "publication_from",
    "both_directions", "overwrite", "resume",
)  # fmt: skip
"""The order the keyword-only options are shown in; every other `csas finetune` setting follows (settings.py)."""
OWN = ("config", "dry_run")
"""The API's own keyword-only arguments."""


def keyword_options() -> tuple[str, ...]:
    """finetune_model's keyword-only options: every `csas finetune` setting the seed's signature does not hold,
    listed ones first (a new setting is one, with nothing else edited)."""
    seed = {API_NAMES.get(name, name) for name in FIELDS} & set(SEED_ARGUMENTS)
    names = [n for n, f in FIELDS.items()
             if FINETUNE in f.metadata["commands"] and API_NAMES.get(n, n) not in seed and n not in OWN]
    return (*[n for n in KEYWORD_ORDER if n in names], *[n for n in names if n not in KEYWORD_ORDER])


def api_annotation(name: str) -> str:
    """How finetune_model's signature shows an argument's type: the field's, taking a str where a Path or a tuple of
    names is meant, None where the option has a default of its own."""
    hint = str(FIELDS[name].type)
    if "Path" in hint:
        hint = "str | Path" + (" | None" if "None" in hint else "")
    elif "tuple[str" in hint:
        hint = "str | Sequence[str]" + (" | None" if "None" in hint else "")
    return hint


def api_signature() -> inspect.Signature:
    """finetune_model's signature as callers see it: the seed's parameters with their defaults (which, data_path and
    output_directory required), then the keyword-only options (None: the option's default; False for a switch),
    then `config` and `dry_run`."""
    parameters = []
    for name in SEED_ARGUMENTS:
        flat = next((n for n, api in API_NAMES.items() if api == name), name)
        f = FIELDS[flat]
        required = name in ("which", "data_path", "output_directory")
        default = inspect.Parameter.empty if required else (not f.default if name == "no_qlora" else f.default)
        annotation = "bool" if name == "no_qlora" else api_annotation(flat)
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=annotation))  # fmt: skip
    for name in keyword_options():
        hint = api_annotation(name)
        switch = hint == "bool"
        annotation = hint if switch or "None" in hint else f"{hint} | None"
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False if switch else None,
                                            annotation=annotation))  # fmt: skip
    parameters.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation="Config | str | Path | Mapping[str, Any] | Any"))  # fmt: skip
    parameters.append(inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"))
    return inspect.Signature(parameters, return_annotation="FinetuneResult")


def given_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the caller gave (arguments not left UNSET), by flat settings name: `no_qlora` as `qlora`
    inverted, paths as Path, a list of LoRA targets joined."""
    given: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is UNSET or name in OWN:
            continue
        flat = next((n for n, api in API_NAMES.items() if api == name), name)
        if flat == "qlora":
            value = not value
        elif flat in ("data", "output_dir", "eval_data", "glossary") and value is not None:
            value = Path(value)
        elif flat == "lora_targets" and isinstance(value, (list, tuple)):
            value = ",".join(value)
        if value is not None:  # None: the option's default
            given[flat] = value
    return given


def finetune_model(
    which: str = UNSET, data_path: str | Path = UNSET, output_directory: str | Path = UNSET,
    learning_rate: float = UNSET, batch_size: int = UNSET, grad_accum: int = UNSET, epochs: float = UNSET,
    val_ratio: float = UNSET,
    max_source_len: int = UNSET, max_target_len: int = UNSET, bf16: bool = UNSET, fp16: bool = UNSET,
    no_qlora: bool = UNSET, seed: int = UNSET, save_steps: int = UNSET, eval_steps: int = UNSET,
    logging_steps: int = UNSET, warmup_ratio: float = UNSET, device_map: str = UNSET, disable_tqdm: bool = UNSET,
    lora_r: int = UNSET, lora_alpha: int = UNSET, lora_dropout: float = UNSET, max_steps: int | None = UNSET,
    *, config: Config | str | Path | Mapping[str, Any] | Any = None, dry_run: bool = False, **options: Any,
) -> FinetuneResult:
    """Fine-tune one registry model (`which`) on `data_path` into `output_directory/<which>`, as `csas finetune`.

    Every argument means what the `csas finetune` flag of that name means (`learning_rate` is --lr, `no_qlora`
    --no-qlora, `output_directory` --output-dir), with finetune.py's defaults; the keyword-only ones are csas's own
    options (every other `csas finetune` setting, `inspect.signature(finetune_model)` lists them), None meaning the
    option's default. `config`: a settings file (path), the pipeline's three tables (a mapping or a module) or a
    Config, applied for this model under the arguments given (as flags win over the file). `dry_run`: check
    everything that needs no weights and return the plan only.

    Raises a CsasError subclass (DataError naming the file and line, SettingsError naming the setting by its
    argument here, ModelError, OutputError, HardwareError, TrainingError; Preempted or Interrupted after a checkpoint
    when a signal stopped it).
    """
    arguments = {name: value for name, value in locals().items() if name in SEED_ARGUMENTS}
    unknown = sorted(set(options) - set(keyword_options()))
    if unknown:
        raise TypeError(f"finetune_model() got an unexpected keyword argument {unknown[0]!r}")
    for name in ("which", "data_path", "output_directory"):
        if arguments[name] is UNSET:
            raise TypeError(f"finetune_model() missing required argument: {name!r}")
    given = given_settings({**arguments, **options})
    defaults = {name: f.default for name, f in FIELDS.items() if f.default is not REQUIRED}
    with to_logging(), in_api_terms():
        values = layered(defaults, load_config(config), given["which"], given)
        settings = FinetuneSettings.create(**values)
        if dry_run:
            return planned(settings)
        return train_one(settings)


finetune_model.__signature__ = api_signature()  # type: ignore[attr-defined]

FLAG = re.compile(r"(?P<before>\b(?:pass|add|drop) )?--(?P<name>[a-z][a-z0-9_-]*)")


def api_spelling(message: str) -> str:
    """A message as the API says it: each `csas finetune` flag by the argument that gives it (`--lr` is
    `learning_rate`, `--no-qlora` is `no_qlora`, `pass --overwrite` is `pass overwrite=True`)."""
    names = {}
    for name, f in FIELDS.items():
        api = API_NAMES.get(name, name)
        flag = ("no_" if name == "qlora" else "") + (flag_name(f) if name != "qlora" else "qlora")
        names[flag] = names[flag.replace("_", "-")] = (api, f.default is False or f.default is True)

    def spelled(match: re.Match[str]) -> str:
        found = names.get(match["name"])
        if found is None:
            return match.group()
        api, switch = found
        return f"{match['before']}{api}=True" if switch and match["before"] else f"{match['before'] or ''}{api}"

    return FLAG.sub(spelled, message)


@contextmanager
def in_api_terms() -> Iterator[None]:
    """CsasErrors raised inside name settings by their finetune_model arguments: one message, the API's spelling."""
    try:
        yield
    except CsasError as exc:
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (api_spelling(exc.args[0]), *exc.args[1:])
        raise


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
    from .training.batch import all_settings, run_all

    with to_logging(), in_api_terms():
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
    record = RunRecord.read(run_dir)
    return FinetuneResult(
        settings.which, status, run_dir, adapter=record.adapter, best_adapter=record.best_adapter,
        steps=record.steps, train_loss=record.train_loss, eval_loss=record.eval_loss, eval_chrf=record.eval_chrf(),
        stopped_early=record.stopped_early, seconds=record.seconds, error=error, plan=record.plan,
    )  # fmt: skip


__all__ = ["FinetuneResult", "finetune_model", "finetuning_pipeline"]
