"""The settings file: the pipeline's three configuration tables, as TOML or as Python mappings.

    [training]        TRAINING_HYPERPARAMS: defaults for every model, by settings name (learning_rate, batch_size,
                      lora_r, warmup_ratio, ...; the seed's `gradient_accumulation` for grad_accum)
    [quantization]    QUANTIZATION_CONFIG: use_qlora, use_bfloat16, use_fp16 (and use_quantization), converted as the
                      pipeline converts them: qlora = use_qlora, bf16 = use_bfloat16, fp16 = use_fp16
    [models.<key>]    MODEL_SPECIFIC_HYPERPARAMS: one registry key's own values over [training] (and its own
                      use_* values, model_id, revision); these keys, in this order, are the models finetune-all and
                      finetuning_pipeline train

Precedence: command-line flags (or the API's keyword arguments), then the file, then the built-in defaults
(finetune.py's for `csas finetune`, the finetune-all table for `csas finetune-all` and the pipeline). A bad file is
refused in one line naming it, the line and the key. `render_toml` writes the effective settings back as such a
file (`csas config show`).
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from .errors import SettingsError
from .files import file_sha256
from .registry import MODEL_KEYS, REGISTRY, did_you_mean
from .fields import out_of_bounds
from .settings import FIELD_GROUP, FIELDS, GROUPS, FinetuneSettings

TABLES = {"training": "TRAINING_HYPERPARAMS", "quantization": "QUANTIZATION_CONFIG", "models": "MODEL_SPECIFIC_HYPERPARAMS"}
"""The file's tables and the names of the same tables in the pipeline's config.py."""

ALIASES = {"gradient_accumulation": "grad_accum"}
"""The seed's names of settings that csas calls otherwise."""
HINTS = {"lr": "learning_rate", "no_qlora": "use_qlora in [quantization]", "qlora": "use_qlora in [quantization]",
         "bf16": "use_bfloat16 in [quantization]", "fp16": "use_fp16 in [quantization]"}  # fmt: skip
"""What a key that is not a file key most likely means."""

QUANTIZATION = {"use_qlora": "qlora", "use_bfloat16": "bf16", "use_fp16": "fp16"}
"""[quantization] keys and the settings they set (the pipeline's conversion: no_qlora = not use_qlora)."""
USE_QUANTIZATION = "use_quantization"
"""Accepted for the pipeline's tables: csas quantizes only for QLoRA, so it must agree with use_qlora when true."""

NOT_IN_FILE = tuple(name for name, f in FIELDS.items() if not f.metadata["in_file"])
"""What each invocation says for itself (the command line, or the API's positional arguments): the fields that say
so (`in_file=False`)."""
PRECISION = tuple(QUANTIZATION.values())
"""Settings the file sets through [quantization]'s names only, so that one value has one place."""
PER_MODEL = tuple(name for name, f in FIELDS.items() if f.metadata["per_model"])
"""Settings that belong to one model ([models.<key>] only): the fields that say so."""


class ConfigError(SettingsError):
    """The settings file (or mapping) cannot be used; the message names it, the line and the key."""


@dataclass(frozen=True)
class Config:
    """A settings file's values, by settings name."""

    source: str
    """The file (or `config` for a Python mapping or module), for messages."""
    sha256: str | None
    """The file's hash (None for a mapping): recorded in run.json."""
    training: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    """registry key -> its own values, in the file's order."""

    def values_for(self, key: str) -> dict[str, Any]:
        """The file's settings for one model: [training], then [quantization], then [models.<key>]."""
        return {**self.training, **self.quantization, **self.models.get(key, {})}

    @property
    def model_keys(self) -> tuple[str, ...]:
        """The models the file lists, in its order (empty: every registry model)."""
        return tuple(self.models)


# --- reading -----------------------------------------------------------------------------------------------------


def read_config(path: Path) -> Config:
    """A TOML settings file, checked (ConfigError naming the file, the line and the key)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from None
    toml = toml_module()
    try:
        tables = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    lines = key_lines(text)
    return config_from_tables(tables, str(path), file_sha256(path), lambda *where: lines.get(where))


def config_from_python(config: Any) -> Config:
    """The pipeline's tables as Python objects: a module (or any object) with TRAINING_HYPERPARAMS,
    QUANTIZATION_CONFIG and MODEL_SPECIFIC_HYPERPARAMS, or a mapping of those names (or of the file's table names)."""
    if isinstance(config, Mapping):
        tables = {table: config[name] for table, name in TABLES.items() if name in config}
        tables.update({table: config[table] for table in TABLES if table in config})
        unknown = [k for k in config if k not in TABLES and k not in TABLES.values()]
        if unknown:
            raise ConfigError(f"config: unknown table {unknown[0]!r}; the tables are {', '.join(TABLES.values())}")
    else:
        tables = {table: getattr(config, name) for table, name in TABLES.items() if hasattr(config, name)}
        if not tables:
            raise ConfigError(f"config: {config!r} has none of {', '.join(TABLES.values())}")
    return config_from_tables(tables, "config", None, lambda *where: None, python=True)


def load_config(config: Any) -> Config | None:
    """What the API's `config` argument may be: None, a Config, a path to a TOML file, a mapping or a module."""
    if config is None or isinstance(config, Config):
        return config
    if isinstance(config, (str, Path)):
        return read_config(Path(config))
    return config_from_python(config)


def config_from_tables(
    tables: Mapping[str, Any], source: str, sha256: str | None, line_of: Any, python: bool = False
) -> Config:
    """Check the three tables and convert them to settings names; `line_of(table, key)` finds a file's line."""

    def where(table: str, key: str | None = None) -> str:
        """`FILE line N: [table] key` (a Python mapping: `config: TABLE_NAME key`); the table's line when the key's
        own cannot be told (dotted keys, inline tables)."""
        line = line_of(table, key) or line_of(table, None)
        if python:
            name = TABLES.get(table) or f"MODEL_SPECIFIC_HYPERPARAMS[{table.split('.', 1)[1]!r}]"
        else:
            name = f"[{table}]"
        return f"{source}{f' line {line}' if line else ''}: {name}{'' if key is None else f' {key}'}"

    for table, value in tables.items():
        if table not in TABLES:
            line = line_of(table, None) or line_of("", table)
            at = f"{source}{f' line {line}' if line else ''}"
            if not isinstance(value, Mapping):
                raise ConfigError(f"{at}: {table} = {render_value(value)} is outside any table; settings go under "
                                  "[training], [quantization] or [models.<key>]")  # fmt: skip
            raise ConfigError(f"{at}: unknown table [{table}]{did_you_mean(table, list(TABLES))}; the tables are "
                              "[training], [quantization] and [models.<key>]")  # fmt: skip
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where(table)}: expected a table of settings, got {render_value(value)}")
    use_quantization: dict[str, bool] = {}  # "" (the [quantization] table) or a registry key -> its value
    training = settings_values(tables.get("training", {}), lambda key: where("training", key), per_model=False)
    quantization = quantization_values(tables.get("quantization", {}), lambda key: where("quantization", key),
                                       use_quantization, "", table_given="quantization" in tables)  # fmt: skip
    models: dict[str, dict[str, Any]] = {}
    for key, values in tables.get("models", {}).items():
        table = f"models.{key}"
        if key not in REGISTRY:
            raise ConfigError(f"{where(table)}: not a registry key{did_you_mean(key, MODEL_KEYS)}; the keys are "
                              f"{', '.join(MODEL_KEYS)}")  # fmt: skip
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where(table)}: expected a table of settings, got {render_value(values)}")

        def at(name: str, table: str = table) -> str:
            return where(table, name)

        use = {name: value for name, value in values.items() if name in QUANTIZATION or name == USE_QUANTIZATION}
        models[key] = settings_values({k: v for k, v in values.items() if k not in use}, at, per_model=True)
        models[key].update(quantization_values(use, at, use_quantization, key))
    config = Config(source, sha256, training, quantization, models)
    for key in config.model_keys or MODEL_KEYS:
        wanted = use_quantization.get(key, use_quantization.get(""))
        if wanted and config.values_for(key).get("qlora") is False:
            table = f"models.{key}" if key in use_quantization else "quantization"
            raise ConfigError(f"{where(table, USE_QUANTIZATION)} = true: csas quantizes the base only for QLoRA, and "
                              f"use_qlora is false for {key}")  # fmt: skip
    return config


def settings_values(values: Mapping[str, Any], where: Any, per_model: bool) -> dict[str, Any]:
    """[training] or [models.<key>] values: known settings of the right type and within bounds, by settings name. A
    Python None means "not set"."""
    converted: dict[str, Any] = {}
    eligible = [name for name in FIELDS if name not in NOT_IN_FILE]
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if key in HINTS and (key not in FIELDS or name in PRECISION):
            raise ConfigError(f"{where(key)}: not a file key; use {HINTS[key]}")
        if key in QUANTIZATION or key == USE_QUANTIZATION:
            raise ConfigError(f"{where(key)}: belongs in [quantization] (or in [models.<key>])")
        if name in NOT_IN_FILE:
            raise ConfigError(f"{where(key)}: given by each command (a flag or an argument), not by the file")
        if name not in FIELDS:
            raise ConfigError(f"{where(key)}: not a setting{did_you_mean(key, eligible + list(ALIASES))}")
        if name in PER_MODEL and not per_model:
            raise ConfigError(f"{where(key)}: one model's setting; put it in [models.<key>]")
        if name in converted:
            raise ConfigError(f"{where(key)}: {name} is given twice in this table")
        if value is not None:
            converted[name] = typed(name, value, where(key))
    return converted


def quantization_values(
    values: Mapping[str, Any], where: Any, use_quantization: dict[str, bool], owner: str, table_given: bool = False
) -> dict[str, Any]:
    """[quantization] (or a model's use_*) values as the settings qlora, bf16, fp16: the pipeline's conversion, in
    which a [quantization] table without use_qlora means QLoRA on (`not get('use_qlora', True)`)."""
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if key not in QUANTIZATION and key != USE_QUANTIZATION:
            choices = [USE_QUANTIZATION, *QUANTIZATION]
            raise ConfigError(f"{where(key)}: not a quantization setting{did_you_mean(key, choices)}; the keys are "
                              f"{', '.join(choices)}")  # fmt: skip
        if value is None:
            continue
        if not isinstance(value, bool):
            raise ConfigError(f"{where(key)} = {render_value(value)}: expected true or false")
        if key == USE_QUANTIZATION:
            use_quantization[owner] = value
        else:
            converted[QUANTIZATION[key]] = value
    if table_given:
        converted.setdefault("qlora", True)
    return converted


def field_kind(name: str) -> Any:
    """A setting's value type: int, float, bool, str, Path or tuple (of str); Optional unwrapped."""
    cls = GROUPS[FIELD_GROUP[name]]
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def typed(name: str, value: Any, where: str) -> Any:
    """`value` as setting `name` takes it, or ConfigError naming the expected type."""
    kind = field_kind(name)
    if kind is bool:
        ok = isinstance(value, bool)
        expected = "true or false"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        expected = "a number"
    elif kind is tuple:
        ok = isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
        value = ",".join(value) if ok and not isinstance(value, str) else value
        expected = "a list of module names (or a comma-separated string)"
    else:  # str, Path
        ok = isinstance(value, str)
        expected = "a string"
    if not ok:
        raise ConfigError(f"{where} = {render_value(value)}: expected {expected}")
    wrong = out_of_bounds(FIELDS[name].metadata, value)
    if wrong is not None:
        raise ConfigError(f"{where} = {render_value(value)}: {wrong}")
    return value


TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
KEY_LINE = re.compile(r"^\s*(\"[^\"]*\"|[A-Za-z0-9_-]+)\s*=")


def key_lines(text: str) -> dict[tuple[str, str | None], int]:
    """(table, key) -> its line in a TOML text, and (table, None) -> the table's header line: enough to point at a
    bad key of the files this module reads (one table per header, one key per line)."""
    lines: dict[tuple[str, str | None], int] = {}
    table = ""  # keys before any header: the top level
    for number, line in enumerate(text.splitlines(), start=1):
        header = TABLE_HEADER.match(line)
        if header:
            table = ".".join(part.strip().strip('"') for part in header.group(1).split("."))
            lines.setdefault((table, None), number)
            if table.startswith("models."):
                lines.setdefault(("models", table.split(".", 1)[1]), number)
            continue
        key = KEY_LINE.match(line)
        if key:
            lines.setdefault((table, key.group(1).strip('"')), number)
    return lines


def toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli  # Python 3.10 (a dependency there)

    return tomli


# --- writing -----------------------------------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """A value in TOML (and in messages): true, 16, 0.0003, "auto", ["q_proj", "v_proj"]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def file_values(settings: FinetuneSettings) -> dict[str, Any]:
    """The settings a file can hold, by settings name, from one model's settings."""
    flat = settings.flat()
    return {name: flat[name] for name in FIELDS if name not in NOT_IN_FILE and name not in PER_MODEL}


def render_toml(settings_list: Sequence[FinetuneSettings], source: str | None = None) -> str:
    """The effective settings of these runs as a settings file: what every model shares in [training] and
    [quantization], and each model's own values (always its batch size, learning rate and LoRA shape, as the
    pipeline's table lists them) in [models.<key>]."""
    per_model = {s.which: file_values(s) for s in settings_list}
    first = next(iter(per_model.values()))
    shared = {name: value for name, value in first.items() if all(v[name] == value for v in per_model.values())}
    listed = ("batch_size", "learning_rate", "lora_r", "lora_alpha")
    out = [f"# csas settings{f' (from {source})' if source else ''}: csas finetune-all --config FILE, "
           "csas finetune --config FILE. Flags given on the command line win over this file."]  # fmt: skip
    out += ["", "[training]"]
    out += table_lines({k: v for k, v in shared.items() if k not in PRECISION})
    uses = {v: k for k, v in QUANTIZATION.items()}
    out += ["", "[quantization]", f"{USE_QUANTIZATION} = {render_value(bool(shared.get('qlora')))}"]
    out += [f"{uses[name]} = {render_value(shared[name])}" for name in PRECISION if name in shared]
    for s in settings_list:
        own = {k: v for k, v in per_model[s.which].items() if k not in shared or k in listed}
        quant = {uses[k]: own.pop(k) for k in PRECISION if k in own}
        own.update({k: v for k, v in (("model_id", s.model.model_id), ("revision", s.model.revision)) if v})
        out += ["", f"[models.{s.which}]", *table_lines(own), *(f"{k} = {render_value(v)}" for k, v in quant.items())]
    return "\n".join(out) + "\n"


def table_lines(values: Mapping[str, Any]) -> list[str]:
    """`key = value` lines; a setting without a value (TOML has no null) is shown commented out."""
    return [f"{k} = {render_value(v)}" if v is not None else f"# {k} =   (not set)" for k, v in values.items()]





def layered(base: Mapping[str, Any], config: Config | None, key: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The one precedence of settings, for every command and the Python API: what was given (flags on the command
    line, the caller's arguments), over the settings file's values for model `key` ([models.KEY] over
    [quantization] over [training]), over `base` (the finetune-all table's row, or finetune.py's defaults). A file's
    path is recorded with the values it gave."""
    merged = {**base, **({} if config is None else config.values_for(key)), **given}
    if config is not None and config.sha256 is not None:
        merged["config"] = Path(config.source)
    return merged


def over_file(values: Mapping[str, Any], given: Collection[str], config: Config) -> dict[str, Any]:
    """`csas finetune --config`: the command's values (its defaults, finetune.py's), then the file's for this model,
    then the flags the command line gave (`layered`)."""
    return layered(values, config, str(values["which"]), {name: values[name] for name in given if name in values})


__all__ = [
    "Config", "ConfigError", "config_from_python", "layered", "load_config", "over_file", "read_config", "render_toml",
]  # fmt: skip
