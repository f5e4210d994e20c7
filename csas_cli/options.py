"""Typer options made from settings fields, so that a flag's name, type, default and help are written once.

A command lists the flags it takes, in the order `--help` shows them (`csas finetune` in finetune.py's order), and
`settings_options` turns each into a Typer option from its field (settings.py, or bench's own fields): the flag
under its dashed name and finetune.py's underscore spelling, the field's type, default and help. The command
receives the values as one dict of flat settings names, which `FinetuneSettings.create` (or a table's overrides)
takes as it is. Names in the list that are parameters of the command itself stay the command's own options, at that
place in the list.

A `Flag` adjusts one option for a command: its own wording of the help (which may show `{default}`, the value the
command uses when the flag is not given), or `given_only` for commands whose defaults come from a table (sweep,
finetune-all): the option then defaults to "not given" and is passed on only when given.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Callable,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    Union,
)

import typer

from .settings import flag_name

VALUES = "values"
"""The parameter through which a command receives the settings options' values."""


def option_names(name: str) -> list[str]:
    """A flag under its dashed name and, when they differ, its finetune.py underscore spelling."""
    dashed = "--" + name.replace("_", "-")
    return [dashed] if "_" not in name else [dashed, "--" + name]


def opt(name: str, help: str, **kwargs: Any) -> Any:
    """A Typer option for a command's own parameter, in both spellings."""
    return typer.Option(*option_names(name), help=help, **kwargs)


@dataclass(frozen=True)
class Flag:
    """One settings option of one command, where it differs from the field's own."""

    name: str
    """The field's flat name (`learning_rate`, `qlora`, ...)."""
    help: str | None = None
    """This command's help text; `{default}` shows the value the command uses when the flag is not given."""
    given_only: bool = False
    """No default of its own: the value is passed on only when given (a switch only when set)."""
    toggle: bool = False
    """A given-only switch spelled both ways, `--bf16/--no-bf16`, under the field's own name."""


def describe_default(value: Any) -> str:
    """A default as --help shows it inside a sentence: on/off, 2e-4, q_proj,k_proj,v_proj."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """A settings class's resolved annotations, once per class (the CLI builds its options at import)."""
    return typing.get_type_hints(cls)


def field_type(cls: type, f: dataclasses.Field) -> Any:
    """The field's type as Typer takes it: `X | None` becomes Optional[X]; a tuple of names is typed as str."""
    hint = type_hints(cls)[f.name]
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (Union, types.UnionType)) and type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        hint = str
    return Optional[hint] if optional else hint


def find_field(name: str, classes: Sequence[type]) -> tuple[type, dataclasses.Field]:
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return cls, f
    raise TypeError(f"no settings field {name!r}")


@dataclass(frozen=True)
class GeneratedOption:
    """A Typer parameter made from a field, and how its value reaches the command."""

    parameter: inspect.Parameter
    field: str
    mode: str
    """value (passed as it is), inverted (a switch meaning False), given (passed unless None), set (passed if True)."""

    def pass_on(self, value: Any, values: dict[str, Any]) -> None:
        if self.mode == "value":
            values[self.field] = value
        elif self.mode == "inverted":
            values[self.field] = not value
        elif self.mode == "given" and value is not None:
            values[self.field] = value
        elif self.mode == "set" and value:
            values[self.field] = True


def generated_option(flag: Flag, classes: Sequence[type], defaults: Mapping[str, Any]) -> GeneratedOption:
    cls, f = find_field(flag.name, classes)
    cli_name = flag_name(f)
    inverted = bool(f.metadata.get("inverted"))
    template = flag.help or f.metadata.get("help") or ""
    if "{default}" in template and defaults and f.name not in defaults:
        # A command of several runs shows only what every run shares: a value that differs between models would
        # otherwise be shown as the field's own default, which no model gets.
        raise TypeError(f"{flag.name}: --help shows a default, but the command's runs do not share one")
    default = defaults.get(f.name, f.default)
    help_text = template.format(default=describe_default(default))
    kind = field_type(cls, f)
    if flag.toggle:
        dashed = f.name.replace("_", "-")
        cli_name, option = f.name, typer.Option(f"--{dashed}/--no-{dashed}", help=help_text)
        annotation, value, mode = Optional[bool], None, "given"
    elif kind is bool:
        # A switch: given means True, or False for an inverted field (--no-qlora).
        if flag.given_only and inverted:
            raise TypeError(f"{flag.name}: a given-only switch of an inverted field must be a toggle")
        option = typer.Option(*option_names(cli_name), help=help_text)
        annotation, value = bool, False
        mode = "set" if flag.given_only else "inverted" if inverted else "value"
    elif flag.given_only:
        option = typer.Option(*option_names(cli_name), help=help_text)
        annotation, value, mode = Optional[kind], None, "given"
    else:
        option = typer.Option(*option_names(cli_name), help=help_text)
        annotation, mode = kind, "value"
        value = describe_default(default) if isinstance(default, tuple) else default
        if value is dataclasses.MISSING:
            value = inspect.Parameter.empty
    parameter = inspect.Parameter(
        cli_name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=Annotated[annotation, option]
    )
    return GeneratedOption(parameter, f.name, mode)


CONTEXT = "typer_context"
"""The parameter through which the wrapper receives Typer's context (to tell given options from defaults)."""

_given: set[str] = set()


def remember_given(generated: Sequence[GeneratedOption], ctx: Any) -> None:
    """Note which settings options the command line gave (not left at their defaults)."""
    global _given
    left = ("DEFAULT", "DEFAULT_MAP")
    sources = {o.field: ctx.get_parameter_source(o.parameter.name) for o in generated} if ctx is not None else {}
    _given = {name for name, source in sources.items() if source is not None and source.name not in left}


def given_settings() -> set[str]:
    """The flat settings names the running command's command line gave: what wins over a settings file."""
    return set(_given)


def settings_options(
    flags: Iterable[str | Flag], classes: Sequence[type], defaults: Mapping[str, Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Typer command with the options of `flags` (see the module docstring).

    `classes`: where the fields are looked up, first match wins (bench's own fields before `csas finetune`'s).
    `defaults`: the values the command uses for flags it is not given, where they are not the fields' own.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = dict(inspect.signature(command, eval_str=True).parameters)
        own.pop(VALUES)
        generated: list[GeneratedOption] = []
        parameters: list[inspect.Parameter] = []
        for entry in flags:
            name = entry if isinstance(entry, str) else entry.name
            if isinstance(entry, str) and name in own:
                parameters.append(own.pop(name).replace(kind=inspect.Parameter.KEYWORD_ONLY))
                continue
            option = generated_option(entry if isinstance(entry, Flag) else Flag(name), classes, defaults or {})
            generated.append(option)
            parameters.append(option.parameter)
        parameters += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.values()]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values: dict[str, Any] = {}
            for option in generated:
                option.pass_on(kwargs.pop(option.parameter.name), values)
            remember_given(generated, kwargs.pop(CONTEXT, None))
            return command(**{VALUES: values}, **kwargs)

        parameters.append(inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        del run.__wrapped__  # Typer must read the signature above, not the command's own
        return run

    return decorate
