"""Typer options made from settings fields, so that a flag's name, type, default and help are written once.

A command lists the flags it takes, in the order `--help` shows them (`csas finetune` in finetune.py's order), and
`settings_options` turns each into a Typer option from its field (settings.py, bench's own fields, or the fields of
a settings object several commands share: inference.source.ModelChoice, GenerationSettings, Runtime,
data.fit.GlossaryOptions): the flag under its dashed name and finetune.py's underscore spelling, the field's type,
default and help. The command receives the values as one dict of flat names (`Values`: also which of them the
command line gave), which `FinetuneSettings.create` (or a table's overrides) takes as it is and `Values.of(cls)`
turns into a settings object. Names in the list that are parameters of the command itself stay the command's own
options, at that place in the list. The training commands' lists (`FINETUNE_FLAGS`, ...) are derived with
`flags_for`: a setting whose field names a command is an option of it.

A `Flag` adjusts one option for a command: its own wording of the help (which may show `{default}`, the value the
command uses when the flag is not given), or `given_only` for commands whose defaults come from a table (sweep,
finetune-all): the option then defaults to "not given" and is passed on only when given.

`WholeFlags` is the commands' class: its --help shows every flag whole at any width. The command-line helpers
(`usage_message`, `bare_resume_means_auto`) are here too.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
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

from .fields import BENCH, FINETUNE, FINETUNE_ALL, SWEEP, describe_default, flag_name
from .settings import FIELD_GROUP, GROUPS, settings_fields

VALUES = "values"
"""The parameter through which a command receives the settings options' values."""


def option_names(name: str, short: str | None = None) -> list[str]:
    """A flag under its dashed name and, when they differ, its finetune.py underscore spelling (and `short`)."""
    dashed = "--" + name.replace("_", "-")
    return [dashed, *([] if "_" not in name else ["--" + name]), *([short] if short else [])]


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
        option = typer.Option(*option_names(cli_name, f.metadata.get("short")), help=help_text)
        annotation, value = bool, False
        mode = "set" if flag.given_only else "inverted" if inverted else "value"
    elif flag.given_only:
        option = typer.Option(*option_names(cli_name, f.metadata.get("short")), help=help_text)
        annotation, value, mode = Optional[kind], None, "given"
    else:
        option = typer.Option(*option_names(cli_name, f.metadata.get("short")), help=help_text)
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


class Values(dict):
    """A command's settings options by flat settings name, and `given`: the names its command line gave (not left at
    their defaults), what wins over a settings file and a table (config.layered)."""

    given: frozenset[str] = frozenset()

    def of(self, cls: type) -> Any:
        """The settings object `cls` made of the values of its fields (the others keep their defaults)."""
        return cls(**{f.name: self[f.name] for f in dataclasses.fields(cls) if f.name in self})


def given_on_command_line(generated: Sequence[GeneratedOption], ctx: Any) -> frozenset[str]:
    """The flat settings names whose options the command line gave."""
    left = ("DEFAULT", "DEFAULT_MAP")
    sources = {o.field: ctx.get_parameter_source(o.parameter.name) for o in generated} if ctx is not None else {}
    return frozenset(name for name, source in sources.items() if source is not None and source.name not in left)


def flags_for(command: str, order: Iterable[str | Flag] = (), given_only: bool = False) -> tuple[str | Flag, ...]:
    """The options of `command`: those `order` lists (the order --help shows, with a command's own wording of
    some), then every other settings field that names the command among its `commands`, in the fields' order (a
    new setting is an option of each command its field names, with nothing else edited). `given_only`: those added
    pass a value on only when given (a command whose defaults come from a table)."""
    listed = list(order)
    names = {entry if isinstance(entry, str) else entry.name for entry in listed}
    added: list[str | Flag] = []
    for f in settings_fields():
        if command not in f.metadata.get("commands", ()) or f.name in names:
            continue
        switch = field_type(GROUPS[FIELD_GROUP[f.name]], f) is bool
        # A table's switch may be on (finetune-all trains in bf16): given alone it must be able to say both ways.
        added.append(Flag(f.name, given_only=True, toggle=switch) if given_only else f.name)
    return (*listed, *added)


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
            found = Values(values)
            found.given = given_on_command_line(generated, kwargs.pop(CONTEXT, None))
            return command(**{VALUES: found}, **kwargs)

        parameters.append(inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        del run.__wrapped__  # Typer must read the signature above, not the command's own
        return run

    return decorate


OTHER_TOOLS_FLAGS = {
    "--learning-rate": "--lr", "--learning_rate": "--lr", "--num-train-epochs": "--epochs",
    "--num_train_epochs": "--epochs", "--num-epochs": "--epochs", "--per-device-train-batch-size": "--batch-size",
    "--per_device_train_batch_size": "--batch-size", "--gradient-accumulation-steps": "--grad-accum",
    "--gradient_accumulation_steps": "--grad-accum", "--model-name-or-path": "--model-id",
    "--model_name_or_path": "--model-id", "--train-file": "--data", "--train_file": "--data",
    "--validation-file": "--eval-data", "--validation_file": "--eval-data", "--max-source-length": "--max-source-len",
    "--max_source_length": "--max-source-len", "--max-target-length": "--max-target-len",
    "--max_target_length": "--max-target-len", "--resume-from-checkpoint": "--resume",
    "--resume_from_checkpoint": "--resume",
}  # fmt: skip
"""transformers' Seq2SeqTrainingArguments / run_translation.py names users type from habit -> csas's flag."""


def usage_message(message: str, ctx: Any = None) -> str:
    """Click's usage error in one line; for a flag named as transformers' scripts name it, the command's own flag
    instead of Click's guess."""
    text = " ".join(message.split())
    if text.startswith("No such option: ") and ctx is not None:
        wrong = text.removeprefix("No such option: ").split()[0]
        ours = OTHER_TOOLS_FLAGS.get(wrong)
        if ours is not None and any(ours in getattr(p, "opts", ()) for p in ctx.command.params):
            return f"No such option: {wrong} (csas calls it {ours})"
    return text


def bare_resume_means_auto(args: list[str]) -> list[str]:
    """`--resume` given without a value (last, or followed by another flag) means `--resume auto`."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--resume" and (i + 1 == len(args) or args[i + 1].startswith("--")):
            out.append("auto")
    return out


# --- the training commands' options, in the order --help shows them -------------------------------------------

FINETUNE_ORDER = (
    "which", "data", "output_dir", "epochs", "learning_rate", "batch_size", "grad_accum", "max_tokens", "val_ratio",
    "max_source_len", "max_target_len", "seed", "fp16", "bf16", "qlora", "save_steps", "eval_steps", "logging_steps",
    "warmup_ratio", "device_map", "disable_tqdm", "lora_r", "lora_alpha", "lora_dropout", "max_steps",
    "max_train_samples", "max_eval_samples", "model_id", "revision", "lora_targets", "dry_run", "overwrite", "resume",
    "save_total_limit", "eval_data", "eval_chrf", "eval_chrf_samples", "eval_num_beams", "eval_max_len",
    "patience", "config", "glossary", "glossary_subject", "glossary_sheet", "term_annotation", "locales",
    "publication_from", "both_directions",
)  # fmt: skip
"""finetune.py's flags in its order, then csas's own; `dry_run` is the command's."""
FINETUNE_FLAGS = flags_for(FINETUNE, FINETUNE_ORDER)
"""Those, and any other setting whose field names `csas finetune` (settings.py)."""


FINETUNE_ALL_ORDER = (
    "data",
    Flag("eval_data", "Validation pairs for every model instead of a split of --data.", given_only=True),
    Flag("output_dir", "Output root; each model goes to OUTPUT_DIR/KEY."),
    "only", "skip", "model_root",
    Flag("max_steps", "Cap every model's optimizer steps.", given_only=True),
    Flag("max_tokens", "Token-budget micro-batches of N tokens for every model, not the table's batch sizes.",
         given_only=True),
    Flag("eval_chrf", "Also score chrF at every evaluation; each model's best evaluation is the highest chrF.",
         given_only=True),
    Flag("eval_chrf_samples", "Validation rows chrF translates (default: {default}).", given_only=True),
    Flag("patience", "Stop a model after N evaluations in a row without a new best.", given_only=True),
    Flag("save_total_limit", "Checkpoints kept per model: the newest N (default: {default}).", given_only=True),
    Flag("glossary", "Glossary for every model (TSV, CSV, xlsx, TBX): --term-annotation, eval_term_success.",
         given_only=True),
    Flag("glossary_subject", given_only=True),
    Flag("glossary_sheet", given_only=True),
    Flag("term_annotation", "Share of each model's training pairs to annotate with the glossary's terms.",
         given_only=True),
    Flag("locales", given_only=True),
    Flag("publication_from", given_only=True),
    Flag("both_directions", given_only=True),
    Flag("config", "Settings file (TOML): \\[training], \\[quantization], \\[models.KEY] over the table; flags "
         "win.", given_only=True),
    "dry_run",
    Flag("overwrite", "Retrain models whose run is finished."),
)  # fmt: skip
FINETUNE_ALL_FLAGS = flags_for(FINETUNE_ALL, FINETUNE_ALL_ORDER, given_only=True)
"""Those, then every other training setting: a value given applies to every model, over the table."""


SWEEP_ORDER = (
    "which", "data",
    Flag("eval_data", "Validation pairs for every trial instead of a split of --data.", given_only=True),
    Flag("output_dir", "Sweep root; the trials go to OUTPUT_DIR/WHICH, each in trial-NN-..., the results beside them."),
    "lrs", "ranks", "dropouts",
    Flag("lora_alpha", "One LoRA alpha for every trial (default: 2 x r).", given_only=True),
    Flag("max_steps", "Optimizer steps per trial (default: {default}).", given_only=True),
    Flag("max_train_samples", "Training rows per trial (default: {default}).", given_only=True),
    Flag("max_eval_samples", "Validation rows per trial (default: {default}).", given_only=True),
    Flag("model_id", given_only=True),
    Flag("revision", given_only=True),
    Flag("batch_size", "Pairs per micro-batch (default: the finetune-all table's).", given_only=True),
    Flag("grad_accum", "Micro-batches per optimizer step (default: {default}).", given_only=True),
    Flag("max_tokens", given_only=True),
    Flag("seed", "Seed for split, sample caps, initialisation (default: {default}).", given_only=True),
    Flag("save_steps", "Steps between checkpoints (default: {default}).", given_only=True),
    Flag("save_total_limit", "Checkpoints kept per trial: the newest N (default: {default}).", given_only=True),
    Flag("eval_steps", "Steps between evaluations (default: {default}).", given_only=True),
    Flag("logging_steps", "Steps between logged losses (default: {default}).", given_only=True),
    Flag("bf16", "Mixed precision in bfloat16 (default: {default}).", toggle=True),
    Flag("qlora", "4-bit QLoRA instead of plain LoRA (default: {default}).", toggle=True),
    Flag("eval_chrf", "Also score chrF at every evaluation (the chrf column; needed for --metric chrf).",
         given_only=True),
    Flag("eval_chrf_samples", "Validation rows chrF translates (default: {default}).", given_only=True),
    Flag("eval_num_beams", "Beam width of the chrF translations (default: {default}, greedy).", given_only=True),
    Flag("eval_max_len", given_only=True),
    Flag("patience", "Stop a trial after N evaluations in a row without a new best.", given_only=True),
    Flag("locales", given_only=True),
    Flag("publication_from", given_only=True),
    Flag("both_directions", given_only=True),
    "metric", "dry_run",
    Flag("overwrite", "Retrain trials whose run is finished."),
)  # fmt: skip
SWEEP_FLAGS = flags_for(SWEEP, SWEEP_ORDER, given_only=True)
"""Those, then every other training setting but the grid's: a value given applies to every trial."""


BENCH_ORDER = (
    "which", "random_init", "preset", "model_id", "revision", "data",
    Flag("batch_size", "Pairs per micro-batch (default: the finetune-all table's).", given_only=True),
    "grad_accum", "max_tokens", "steps", "warmup_steps", "device",
    Flag("bf16", "Mixed precision in bfloat16."),
    "fp16", "qlora", "lora_r", "lora_alpha", "lora_targets", "max_source_len", "max_target_len",
    Flag("seed", "Seed for weights, pairs and batch order."),
    "as_json",
)  # fmt: skip
BENCH_FLAGS = flags_for(BENCH, BENCH_ORDER)


# --- options several commands share, declared once on their fields -----------------------------------------------

READING = ("locales", "publication_from")
"""How pairs are read: CorpusSettings' options, in every command that reads pairs."""
GENERATION = ("num_beams", "max_new_tokens", "batch_size")
"""Decoding: inference.generation.GenerationSettings' options (translate, evaluate)."""
MODEL_CHOICE = ("model", "which", "model_id", "revision", "source_lang")
"""Which model and which way: inference.source.ModelChoice's options (translate, evaluate; merge and export take
some of them)."""
GLOSSARY = ("glossary", "glossary_subject", "glossary_sheet", Flag("apply_glossary", toggle=True), "term_constraints",
            "constrain_all", "confirm_with")  # fmt: skip
"""The glossary: data.fit.GlossaryOptions' options (translate; check-glossary takes the subject and sheet)."""
RUNTIME = ("device", "threads")
"""Where translation runs: inference.generation.Runtime's options."""
EVALUATE_GLOSSARY = (
    Flag("glossary", "Glossary: .tsv/.csv/.xlsx (en and fr columns, TERMIUM Plus, term pairs) or .tbx (csas "
         "check-glossary shows what is read)."),
    "glossary_subject", "glossary_sheet", Flag("apply_glossary", toggle=True),
    Flag("term_constraints", "Decode with the glossary's target terms as constraints (every model scored): the "
         "entries the references confirm."),
    "constrain_all",
    Flag("confirm_with", "With --term-constraints: force the entries these pairs (the training data) confirm, not "
         "those the references confirm."),
)  # fmt: skip
"""The glossary options in evaluate's words: the references confirm the entries there."""


# --- --help at any width ------------------------------------------------------------------------------------------

UNDERSCORE_NOTE = ("Every --multi-word option is also accepted with underscores, as finetune.py spelled it "
                   "(--grad_accum for --grad-accum).")  # fmt: skip
"""What a narrow --help says instead of listing each option's underscore spelling."""


def underscore_spellings(param: Any) -> list[str]:
    """The underscore spellings of an option that also has the dashed one (`--grad_accum` beside `--grad-accum`)."""
    opts = getattr(param, "opts", [])
    return [o for o in opts if o.startswith("--") and "_" in o and o.replace("_", "-") in opts]


def options_fit(params: Sequence[Any], ctx: Any, width: int) -> bool:
    """Whether --help's options table, laid out as Typer lays it out at `width` columns, shows every option's
    names whole (rich cuts a cell it cannot wrap, such as `--max-source-len,--max_source_len`, with an ellipsis)."""
    import io

    from rich.console import Console
    from rich.table import Table

    rows = []
    for param in params:
        if not isinstance(param, typer.core.TyperOption) or getattr(param, "hidden", False):
            continue
        names = ",".join(o for o in param.opts if o.startswith("--"))
        short = ",".join(o for o in param.opts if not o.startswith("--"))
        secondary = ",".join(o for o in param.secondary_opts if o.startswith("--"))
        secondary_short = ",".join(o for o in param.secondary_opts if not o.startswith("--"))
        kind = getattr(param, "display_type_rich", lambda ctx: None)(ctx) or ""
        default = "" if param.default is None else f" [default: {param.default}]"
        rows.append(["*" if param.required else "", names, short, secondary, secondary_short, kind,
                     (param.help or "") + default])  # fmt: skip
    if not rows:
        return True
    required = any(row[0] for row in rows)
    table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False, expand=True)
    for row in rows:
        table.add_row(*(row if required else row[1:]))
    # The panel takes 4 columns; 4 more spare what this copy of the layout may miss of Typer's.
    console = Console(width=max(width - 8, 20), file=io.StringIO(), color_system=None, highlight=False)
    console.print(table)
    shown = console.file.getvalue()
    return all(row[1] in shown for row in rows)


class WholeFlags(typer.core.TyperCommand):
    """A command whose --help shows every flag whole at any width: where listing the underscore spellings
    (`--grad_accum`, accepted for finetune.py's scripts) would cut the flag column short, --help lists the dashed
    spellings only and says once, below the options, that the underscore ones are accepted."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from rich.console import Console

        width = Console(width=int(os.environ["TERMINAL_WIDTH"]) if os.environ.get("TERMINAL_WIDTH") else None).width
        hidden = {id(p): (p, p.opts) for p in self.params if underscore_spellings(p)}
        if not hidden or options_fit(self.params, ctx, width):
            return super().format_help(ctx, formatter)
        epilog = self.epilog
        try:
            for param, opts in hidden.values():
                param.opts = [o for o in opts if o not in underscore_spellings(param)]
            self.epilog = UNDERSCORE_NOTE if not epilog else f"{epilog}\n\n{UNDERSCORE_NOTE}"
            return super().format_help(ctx, formatter)
        finally:
            for param, opts in hidden.values():
                param.opts = opts
            self.epilog = epilog
