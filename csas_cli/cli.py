"""The command line: parse options, build settings, call the core, turn CsasError into one line and an exit code.

No training logic lives here, and torch is imported only by the commands that need it, so `csas --help` is instant.
The options that are settings are made from the settings fields (options.py): a command lists its flags, in the
order `--help` shows them, and receives their values as one dict. Every finetune.py flag is accepted in both
spellings (`--grad-accum` and `--grad_accum`) because existing cluster scripts call it with underscores.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from . import __version__
from .commands.bench import BenchSettings
from .commands.finetune_all import model_defaults
from .commands.sweep import SWEEP_ROOT, trial_defaults
from .data.checks import CHECK_NAMES, TOO_LONG
from .errors import EXIT_CODES, CsasError, SettingsError, batch_exit_code
from .inference.generation import GenerationSettings
from .modeling import SAVE_DTYPE
from .options import Flag, describe_default, given_settings, opt, settings_options
from .progress import say as stderr_line
from .progress import table_console
from .registry import REGISTRY, SweepGrid
from .settings import GROUPS

app = typer.Typer(
    name="csas",
    help="Fine-tune English<->French translation models (OPUS-MT, M2M100, mBART-50) with LoRA/QLoRA.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SETTINGS = tuple(GROUPS.values())
"""Where `csas finetune`'s options come from: the settings groups (settings.py)."""


def fail(message: str, code: int = EXIT_CODES["usage"], label: str = "error") -> typer.Exit:
    sys.stderr.write(f"csas: {label}: {message}\n")
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Domain errors become one line on stderr and a non-zero exit; anything else is a bug and keeps its traceback."""
    try:
        yield
    except CsasError as exc:
        raise fail(" ".join(str(exc).split()), exc.exit_code, exc.label) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_CODES["interrupted"]) from None


def main_process() -> bool:
    """False on torchrun's ranks other than 0: they train but leave messages and results to rank 0."""
    from .training.distributed import main_process as is_main

    return is_main(os.environ)


def say(message: str) -> None:
    """progress.say on rank 0 only: under torchrun the console reads as one run."""
    if main_process():
        stderr_line(message)


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def split_keys(values: Optional[list[str]]) -> list[str]:
    return [k.strip() for v in values or [] for k in v.split(",") if k.strip()]


def report_dry_run(records: list[dict], failed: list[dict], key: str) -> None:
    """Print the plans as a JSON array, then one error line per failed plan (named by `key`), exit 2 if any."""
    print_json(records)
    for record in failed:
        sys.stderr.write(f"csas: error: {record[key]}: {record['error']}\n")
    if failed:
        raise typer.Exit(EXIT_CODES["usage"])


def exit_for(statuses: list[str]) -> None:
    """End a command of several runs with errors.batch_exit_code (75 stopped, 130 interrupted, 1 failed, else 0)."""
    code = batch_exit_code(statuses)
    if code:
        raise typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"csas {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Fine-tune English<->French translation models with LoRA/QLoRA."""


# --- finetune, finetune-all, sweep -----------------------------------------------------------------------------

FINETUNE_FLAGS = (
    "which", "data", "output_dir", "epochs", "learning_rate", "batch_size", "grad_accum", "max_tokens", "val_ratio",
    "max_source_len", "max_target_len", "seed", "fp16", "bf16", "qlora", "save_steps", "eval_steps", "logging_steps",
    "warmup_ratio", "device_map", "disable_tqdm", "lora_r", "lora_alpha", "lora_dropout", "max_steps",
    "max_train_samples", "max_eval_samples", "model_id", "revision", "lora_targets", "dry_run", "overwrite", "resume",
    "save_total_limit", "eval_data", "eval_chrf", "eval_chrf_samples", "eval_num_beams", "patience", "config",
    "glossary", "glossary_subject", "glossary_sheet", "term_annotation", "locales", "publication_from",
    "both_directions",
)  # fmt: skip
"""finetune.py's flags in its order, then csas's own; `dry_run` is the command's."""

DryRunOption = Annotated[bool, opt("dry_run", "Validate the data and print the plan as JSON; load nothing.")]
PlansDryRunOption = Annotated[bool, opt("dry_run", "Validate the data and print the plans as a JSON array.")]


@app.command()
@settings_options(FINETUNE_FLAGS, SETTINGS)
def finetune(values: dict[str, Any], dry_run: DryRunOption = False) -> None:
    """Fine-tune one model (finetune.py's flags and defaults)."""
    from .settings import FinetuneSettings

    with user_errors():
        if values.get("config") is not None:
            from .config import over_file, read_config

            values = over_file(values, given_settings(), read_config(values["config"]))
        settings = FinetuneSettings.create(**values)
        if dry_run:
            from .training.run import dry_run_record

            print_json(dry_run_record(settings))
            return
        from .training.run import run_finetune

        result = run_finetune(settings)
    if main_process():
        sys.stdout.write(f"adapter: {Path(result.run_dir) / 'lora'}\n")


FINETUNE_ALL_FLAGS = (
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
    Flag("glossary", "Glossary for every model (.tsv/.csv/.xlsx/.tbx): --term-annotation, eval_term_success.",
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


ResumeNoOp = Annotated[
    Optional[str], opt("resume", "Accepted as `auto` only, for scripts: unfinished runs are always resumed.")
]


def check_resume_no_op(resume: str | None) -> None:
    """finetune-all and sweep resume every unfinished run by themselves; `--resume auto` is accepted as the no-op it
    is (scripts pass it), a checkpoint path is not (it names one run's checkpoint)."""
    if resume is not None and resume != "auto":
        raise SettingsError(f"--resume {resume}: this command resumes every unfinished run from its newest checkpoint "
                            "by itself; only --resume auto is accepted (resume one run with csas finetune)")  # fmt: skip


@app.command("finetune-all")
@settings_options(FINETUNE_ALL_FLAGS, SETTINGS, model_defaults())
def finetune_all(
    values: dict[str, Any],
    only: Annotated[Optional[list[str]], opt("only", "Train only these keys (repeat or comma-separate).")] = None,
    skip: Annotated[Optional[list[str]], opt("skip", "Leave out these keys (repeat or comma-separate).")] = None,
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as the base model where that folder exists.")
    ] = None,
    dry_run: PlansDryRunOption = False,
    resume: ResumeNoOp = None,
) -> None:
    """Fine-tune every registry model with finetune_all.py's table (bf16, plain LoRA, one epoch)."""
    from .commands.finetune_all import all_settings, dry_run_all, run_all
    from .commands.summary import print_summary

    with user_errors():
        check_resume_no_op(resume)
        data, output_dir, config = values.pop("data"), values.pop("output_dir"), values.pop("config", None)
        if config is not None:
            from .config import read_config

            config = read_config(config)
        settings_list = all_settings(
            data=data, output_dir=output_dir, only=split_keys(only), skip=split_keys(skip), model_root=model_root,
            overrides=values, config=config,
        )  # fmt: skip
        if dry_run:
            report_dry_run(*dry_run_all(settings_list), key="which")
            return
        outcomes = run_all(settings_list, say=say, model_root=model_root)
    if main_process():
        print_summary(outcomes)
    exit_for([o.status for o in outcomes])


GRID_DROPOUTS = describe_default(SweepGrid.dropouts)
"""The dropouts of every model's sweep grid (registry.SweepGrid's default)."""

SWEEP_FLAGS = (
    "which", "data",
    Flag("eval_data", "Validation pairs for every trial instead of a split of --data.", given_only=True),
    Flag("output_dir", "Sweep root; trials go to OUTPUT_DIR/WHICH/trial-NN-..., results beside them."),
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
    Flag("patience", "Stop a trial after N evaluations in a row without a new best.", given_only=True),
    Flag("locales", given_only=True),
    Flag("publication_from", given_only=True),
    Flag("both_directions", given_only=True),
    "metric", "dry_run",
    Flag("overwrite", "Retrain trials whose run is finished."),
)  # fmt: skip


@app.command()
@settings_options(SWEEP_FLAGS, SETTINGS, {**trial_defaults(), "output_dir": SWEEP_ROOT})
def sweep(
    values: dict[str, Any],
    lrs: Annotated[
        Optional[str], opt("lrs", "Learning rates, comma-separated, e.g. 1e-4,2e-4 (default: the model's grid).")
    ] = None,
    ranks: Annotated[Optional[str], opt("ranks", "LoRA ranks, comma-separated (default: the model's grid).")] = None,
    dropouts: Annotated[
        Optional[str], opt("dropouts", f"LoRA dropouts, comma-separated (default: {GRID_DROPOUTS}).")
    ] = None,
    metric: Annotated[str, opt("metric", "Rank trials by eval_loss, train_loss or chrf, best first.")] = "eval_loss",
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the trials' plans as a JSON array.")] = False,
    resume: ResumeNoOp = None,
) -> None:
    """Train a grid of learning rates x LoRA ranks x dropouts for one model; results in sweep_results.csv."""
    from .commands.summary import print_sweep_table
    from .commands.sweep import (
        check_metric,
        dry_run_trials,
        parse_dropouts,
        parse_lrs,
        parse_ranks,
        run_sweep,
        sweep_settings,
    )

    with user_errors():
        check_resume_no_op(resume)
        check_metric(metric, eval_chrf=bool(values.get("eval_chrf")))
        which, data, output_dir = values.pop("which"), values.pop("data"), values.pop("output_dir")
        trials = sweep_settings(
            which, data=data, output_dir=output_dir,
            lrs=None if lrs is None else parse_lrs(lrs),
            ranks=None if ranks is None else parse_ranks(ranks),
            dropouts=None if dropouts is None else parse_dropouts(dropouts),
            lora_alpha=values.pop("lora_alpha", None),
            overrides=values,
        )  # fmt: skip
        if dry_run:
            report_dry_run(*dry_run_trials(trials), key="trial")
            return
        results, path = run_sweep(trials, say=say, write_results=main_process())
    if main_process():
        print_sweep_table(results, metric)
        sys.stdout.write(f"results: {path}\n")
    exit_for([r.status for r in results])


# --- check-data, convert ----------------------------------------------------------------------------------------


DROPPABLE = ", ".join((*CHECK_NAMES, "misaligned", TOO_LONG))
LocalesOption = Annotated[
    Optional[str], opt("locales", "Variants to take where a TMX unit holds several of a language, e.g. fr-CA,en-CA "
                       "(else the first).")
]


PublicationFromOption = Annotated[
    Optional[str], opt("publication_from", "Where a TMX unit's publication comes from: tuid-prefix or prop:NAME; "
                       "unset, its pub_number prop.")
]


def reading_of(locales: str | None, publication_from: str | None) -> Any:
    """How the command reads pairs (data/pairs.ReadOptions): --locales and --publication-from, checked."""
    from .data.pairs import ReadOptions
    from .registry import check_publication_from, parse_locales

    return ReadOptions(() if locales is None else parse_locales(locales), check_publication_from(publication_from))


@app.command("check-data")
def check_data(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files.")],
    which: Annotated[
        Optional[list[str]], opt("which", "Also count the pairs this model's tokenizer cuts (repeat or comma-separate).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Count the cut pairs for every registry model.")] = False,
    model_id: Annotated[Optional[str], opt("model_id", "The tokenizer of the one --which model: hub id or path.")] = None,
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY's tokenizer where that folder exists.")
    ] = None,
    revision: Annotated[Optional[str], opt("revision", "Hub revision of the one --which model's tokenizer.")] = None,
    max_source_len: Annotated[int, opt("max_source_len", "Source tokens training keeps.")] = 512,
    max_target_len: Annotated[int, opt("max_target_len", "Target tokens training keeps.")] = 512,
    against: Annotated[
        Optional[Path], opt("against", "A test file: count the sentences and publications FILE shares with it.")
    ] = None,
    write_clean: Annotated[
        Optional[Path], opt("write_clean", "Write the rows that pass the --drop checks here (JSON Lines).")
    ] = None,
    drop: Annotated[
        Optional[str], opt("drop", f"Checks whose rows --write-clean leaves out, comma-separated: {DROPPABLE}.")
    ] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing --write-clean file.")] = False,
    examples: Annotated[int, opt("examples", "Flagged rows shown per check (0: all).")] = 3,
    score_with: Annotated[
        Optional[list[str]], opt("score_with", "Also score each pair's alignment with these translation models: "
                                 "registry keys (--model-id, --model-root) or run directories; both directions "
                                 "for the dual score.")
    ] = None,
    drop_publications: Annotated[
        bool, opt("drop_publications", "With --write-clean: also leave out the publications the summary flags.")
    ] = False,
    device: Annotated[str, opt("device", "Where --score-with's models run: auto (the GPU when there is one), cpu or "
                               "cuda.")] = "auto",
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Report what a pairs file holds before training: duplicates, copies, length ratios, numbers, languages,
    pairs each model would cut, and overlap with a test file."""
    from .commands.check_data import check_data as run_check_data
    from .commands.check_data import print_report

    with user_errors():
        report = run_check_data(
            path, which=split_keys(which), all_models=all_models, model_id=model_id, model_root=model_root,
            revision=revision, max_source_len=max_source_len, max_target_len=max_target_len, against=against,
            write_clean=write_clean, drop=drop, overwrite=overwrite, reading=reading_of(locales, publication_from),
            score_with=split_keys(score_with), drop_publications=drop_publications, device=device, bar=show_progress(),
            say=stderr_line,
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict(examples))
    else:
        print_report(report, examples)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(metavar="IN", help="Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files.")],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Where to write them as csas's JSON Lines (- for stdout).")
    ],
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing OUT.")] = False,
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
) -> None:
    """Write any pairs file csas reads as JSON Lines: what training reads, row by row."""
    from .commands.convert import convert as run_convert

    with user_errors():
        reading = reading_of(locales, publication_from)
        rows, read = run_convert(source, out, overwrite=overwrite, reading=reading)
    units = read.describe(reading)
    stderr_line(f"{rows} row{'' if rows == 1 else 's'} written to {out}" + (f" ({units})" if units else ""))


@app.command()
def split(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files.")],
    train_out: Annotated[Path, opt("train_out", "Where to write the training rows (JSON Lines).")],
    test_out: Annotated[Path, opt("test_out", "Where to write the test rows (JSON Lines).")],
    test_ratio: Annotated[float, opt("test_ratio", "Share of the rows held out, in whole publications.")] = 0.05,
    seed: Annotated[int, opt("seed", "Seed of the choice: one seed, the same files.")] = 42,
    overwrite: Annotated[bool, opt("overwrite", "Replace existing output files.")] = False,
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
) -> None:
    """Cut a test file of whole publications from a pairs file, and the training file of the rest."""
    from .commands.split import split_file
    from .progress import counted

    with user_errors():
        reading = reading_of(locales, publication_from)
        result = split_file(data, train_out, test_out, test_ratio=test_ratio, seed=seed, overwrite=overwrite,
                            reading=reading)  # fmt: skip
    units = result.read.describe(reading)
    stderr_line(f"train: {counted(result.train, 'row')} ({counted(result.train_publications, 'publication')}) -> "
                f"{train_out}")  # fmt: skip
    stderr_line(f"test: {counted(result.test, 'row')} ({counted(result.test_publications, 'publication')}) -> "
                f"{test_out}")  # fmt: skip
    if result.without_publication:
        hint = "" if reading.publication_from else (" (a TMX memory names its documents with --publication-from "
                                                    "tuid-prefix or prop:NAME)")  # fmt: skip
        stderr_line(f"{counted(result.without_publication, 'row')} without a publication, split by row{hint}")
    if units:
        stderr_line(units)


@app.command("check-glossary")
def check_glossary(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A glossary: .tsv, .csv, .xlsx or .tbx.")],
    glossary_subject: GlossarySubjectOption = None,
    glossary_sheet: GlossarySheetOption = None,
    against: Annotated[
        Optional[Path], opt("against", "Pairs (.jsonl, .tmx, .tsv): how often each entry's target is used there.")
    ] = None,
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
    examples: Annotated[int, opt("examples", "Entries, conflicts and contradicted entries shown (0: all).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Show what csas reads from a glossary (layout, entries kept, rows skipped and why, conflicts) and, with
    --against, how well it fits that data."""
    from .commands.check_glossary import check_glossary as run_check_glossary
    from .commands.check_glossary import print_report

    with user_errors():
        report = run_check_glossary(path, subject=glossary_subject, sheet=glossary_sheet, against=against,
                                    reading=reading_of(locales, publication_from))  # fmt: skip
    if as_json:
        print_json(report.to_dict(examples))
    else:
        print_report(report, examples)


# --- tiny-models, models ----------------------------------------------------------------------------------------


@app.command("tiny-models")
def tiny_models(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write OUT_DIR/<key> into.")],
    only: Annotated[Optional[list[str]], opt("only", "Build only these keys.")] = None,
) -> None:
    """Write a small offline checkpoint of each registry model's family (real tokenizer classes) for tests and demos."""
    from .commands.tiny import build_tiny_models
    from .registry import select_keys

    with user_errors():
        built = build_tiny_models(out_dir, select_keys(split_keys(only)))
    for key, path in built.items():
        sys.stdout.write(f"{key}\t{path}\n")


config_app = typer.Typer(help="The settings file: \\[training], \\[quantization], \\[models.KEY] as TOML.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    which: Annotated[Optional[list[str]], opt("which", "Only these models (repeat or comma-separate).")] = None,
    config: Annotated[Optional[Path], opt("config", "Show the settings this file comes to, over the table.")] = None,
) -> None:
    """Print the effective settings as TOML: the finetune-all table (and --config's file), to start a file from."""
    from .commands.finetune_all import all_settings
    from .config import read_config, render_toml

    with user_errors():
        loaded = None if config is None else read_config(config)
        settings_list = all_settings(data=Path("data.jsonl"), output_dir=Path("outputs"), only=split_keys(which),
                                     config=loaded)  # fmt: skip
        sys.stdout.write(render_toml(settings_list, source=None if config is None else str(config)))


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False) -> None:
    """List the model registry and the finetune-all table."""
    from .registry import FINETUNE_ALL_TABLE

    rows = [
        {
            "index": i,
            "key": key,
            "hub_id": spec.hub_id,
            "family": spec.family.name,
            "source_langs": list(spec.source_langs),
            "batch_size": FINETUNE_ALL_TABLE[key].batch_size,
            "lr": FINETUNE_ALL_TABLE[key].learning_rate,
        }
        for i, (key, spec) in enumerate(REGISTRY.items())
    ]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("#", "key", "base model", "family", "trains on", "batch", "lr")
    for r in rows:
        table.add_row(
            str(r["index"]), r["key"], r["hub_id"], r["family"], "+".join(r["source_langs"]) + " sources",
            str(r["batch_size"]), f"{r['lr']:g}",
        )  # fmt: skip
    table_console().print(table)


# --- translate, evaluate, merge, merge-all ------------------------------------------------------------------------

# Options shared by translate and evaluate: which model, which direction; how to generate comes from
# GenerationSettings' fields.
ModelOption = Annotated[
    Optional[Path], typer.Option("--model", "-m", help="A finished run directory or a `csas merge` output directory.")
]
WhichOption = Annotated[
    Optional[str], opt("which", "Registry key: a base model alone, or a model directory without csas_merge.json.")
]
BaseOption = Annotated[
    Optional[str], opt("model_id", "Base model (hub id or local path): a run's base on this machine, or with --which.")
]
RevisionOption = Annotated[
    Optional[str], opt("revision", "Hub revision of --model-id: a tag, branch or commit (default: the recorded one).")
]
SourceLangOption = Annotated[
    Optional[str], opt("source_lang", "Source language, en or fr (required for m2m100_418m, which goes both ways).")
]
OverwriteOption = Annotated[bool, opt("overwrite", "Replace an existing --output file.")]
GlossaryOption = Annotated[
    Optional[Path], opt("glossary", "Glossary: .tsv/.csv/.xlsx (en and fr columns, TERMIUM Plus, term pairs) or .tbx "
                        "(csas check-glossary shows what is read).")
]
GlossarySubjectOption = Annotated[
    Optional[str], opt("glossary_subject", "Keep the glossary entries whose subject field holds TEXT (TERMIUM, TBX).")
]
GlossarySheetOption = Annotated[
    Optional[str], opt("glossary_sheet", "The workbook sheet of the glossary (default: the first).")
]
ApplyGlossaryOption = Annotated[
    Optional[bool], typer.Option("--apply-glossary/--no-apply-glossary",
                                 help="With --glossary: annotate the sources with its terms (default: when the model "
                                 "was trained with --term-annotation).")
]
ConstrainAllOption = Annotated[
    bool, opt("constrain_all", "With --term-constraints: force every entry, unconfirmed ones and common words too.")
]
ConfirmWithOption = Annotated[
    Optional[Path], opt("confirm_with", "With --term-constraints: force the entries these pairs (the training data) "
                        "confirm.")
]


def glossary_options(glossary: Path | None, subject: str | None, sheet: str | None, constraints: bool = False,
                     constrain_all: bool = False, confirm_with: Path | None = None) -> Any:  # fmt: skip
    from .data.fit import GlossaryOptions

    return GlossaryOptions(glossary, subject, sheet, constraints, constrain_all, confirm_with)
GENERATION_FLAGS = ("num_beams", "max_new_tokens", "batch_size")
DeviceOption = Annotated[str, opt("device", "Where to translate: auto (the GPU when there is one), cpu or cuda.")]
ThreadsOption = Annotated[
    int, opt("threads", "CPU threads: torch threads, or batches in parallel for an exported model (0: default).")
]
DtypeOption = Annotated[str, opt("dtype", "Saved weights: float32 (exact), bfloat16 or float16 (half the size).")]


def show_progress() -> bool:
    from .progress import use_progress_bar

    return use_progress_bar(False, sys.stderr)


@app.command()
@settings_options(
    ("input_path", "model", "which", "model_id", "revision", "source_lang", "output", "overwrite", *GENERATION_FLAGS),
    (GenerationSettings,),
)
def translate(
    values: dict[str, Any],
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="Text file (a sentence per line), - for stdin, or pairs: .jsonl, "
                            ".tmx, .tsv, SOURCE,TARGET files (the rows in the model's source language).")
    ],
    model: ModelOption = None,
    which: WhichOption = None,
    model_id: BaseOption = None,
    revision: RevisionOption = None,
    source_lang: SourceLangOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    overwrite: OverwriteOption = False,
    glossary: Annotated[
        Optional[Path], opt("glossary", "Glossary (.tsv/.csv/.xlsx/.tbx): annotate the sources with its terms, and "
                            "with --term-constraints decode with them.")
    ] = None,
    glossary_subject: GlossarySubjectOption = None,
    glossary_sheet: GlossarySheetOption = None,
    apply_glossary: ApplyGlossaryOption = None,
    term_constraints: Annotated[
        bool, opt("term_constraints", "Decode with the glossary's target terms as constraints (any model); single "
                  "common words are not forced.")
    ] = False,
    constrain_all: ConstrainAllOption = False,
    confirm_with: ConfirmWithOption = None,
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 0,
) -> None:
    """Translate a file with a finished run, a merged or exported model, or a base model: one output line per input
    line."""
    from .commands.translate import run_translate
    from .inference.generation import Runtime

    with user_errors():
        terms = glossary_options(glossary, glossary_subject, glossary_sheet, term_constraints, constrain_all,
                                 confirm_with)  # fmt: skip
        run_translate(
            input_path=input_path, model=model, which=which, model_id=model_id, revision=revision,
            source_lang=source_lang, output=output, overwrite=overwrite, settings=GenerationSettings(**values),
            say=stderr_line, bar=show_progress(), terms=terms, runtime=Runtime(device, threads),
            apply_glossary=apply_glossary, reading=reading_of(locales, publication_from),
        )  # fmt: skip


@app.command()
@settings_options(
    ("data", "model", "which", "model_id", "revision", "source_lang", "limit", "compare_base", "hypotheses",
     "overwrite",
     "as_json", *GENERATION_FLAGS),
    (GenerationSettings,),
)  # fmt: skip
def evaluate(
    values: dict[str, Any],
    data: Annotated[
        Path, opt("data", "Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files (the rows of the model's direction are "
                  "scored).")
    ],
    model: ModelOption = None,
    which: WhichOption = None,
    model_id: BaseOption = None,
    revision: RevisionOption = None,
    source_lang: SourceLangOption = None,
    limit: Annotated[Optional[int], opt("limit", "Score only the first N rows of the direction.")] = None,
    compare_base: Annotated[bool, opt("compare_base", "Also score the base model, side by side.")] = False,
    hypotheses: Annotated[Optional[Path], opt("hypotheses", "Write the model's translations here.")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing --hypotheses file.")] = False,
    glossary: GlossaryOption = None,
    glossary_subject: GlossarySubjectOption = None,
    glossary_sheet: GlossarySheetOption = None,
    apply_glossary: ApplyGlossaryOption = None,
    term_constraints: Annotated[
        bool, opt("term_constraints", "Decode with the glossary's target terms as constraints (every model scored): "
                  "the entries the references confirm.")
    ] = False,
    constrain_all: ConstrainAllOption = False,
    confirm_with: Annotated[
        Optional[Path], opt("confirm_with", "With --term-constraints: force the entries these pairs (the training "
                            "data) confirm, not those the references confirm.")
    ] = None,
    translations: Annotated[
        Optional[Path], opt("translations", "Score this file of translations (a line per row) instead of a model.")
    ] = None,
    locales: LocalesOption = None,
    publication_from: PublicationFromOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    device: DeviceOption = "auto",
    threads: ThreadsOption = 0,
) -> None:
    """Score a run, a merged or exported model, or a base model with sacrebleu BLEU and chrF on a pairs file (.jsonl,
    .tmx, .tsv), with quality flags, and term success with --glossary."""
    from .commands.evaluate import print_report, run_evaluate
    from .inference.generation import Runtime

    with user_errors():
        terms = glossary_options(glossary, glossary_subject, glossary_sheet, term_constraints, constrain_all,
                                 confirm_with)  # fmt: skip
        report = run_evaluate(
            data=data, model=model, which=which, model_id=model_id, source_lang=source_lang, limit=limit,
            compare_base=compare_base, hypotheses_path=hypotheses, overwrite=overwrite,
            settings=GenerationSettings(**values), bar=show_progress(), revision=revision, say=stderr_line,
            terms=terms, apply_glossary=apply_glossary, translations_path=translations,
            runtime=Runtime(device, threads), reading=reading_of(locales, publication_from),
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)


@app.command()
def merge(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A finished run directory (run.json, lora/, finished.json).")
    ],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="Where to write the merged transformers model.")],
    dtype: DtypeOption = SAVE_DTYPE,
    model_id: Annotated[
        Optional[str], opt("model_id", "The run's base on this machine (default: the one run.json records).")
    ] = None,
    revision: RevisionOption = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty OUT_DIR.")] = False,
) -> None:
    """Fold a run's LoRA adapter into its (unquantized) base and save a standard transformers model directory."""
    from .commands.merge import merge_run

    with user_errors():
        result = merge_run(
            run_dir, out_dir, dtype=dtype, overwrite=overwrite, model_id=model_id, revision=revision, say=stderr_line
        )
    if result.both_directions:
        sys.stderr.write(
            f"{result.which} translates both ways, so no target language is forced: `csas translate` needs "
            "--source-lang, and transformers users pass forced_bos_token_id=tokenizer.get_lang_id(target)\n"
        )
    sys.stdout.write(f"merged: {result.out_dir}\n")


@app.command()
def export(
    model: Annotated[
        Path, typer.Argument(metavar="RUN_OR_MERGED", help="A finished run (or RUN/best, a checkpoint) or a merged model.")
    ],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Where to write the exported model.")],
    export_format: Annotated[str, typer.Option("--format", help="Export format: ctranslate2.")] = "ctranslate2",
    quantization: Annotated[
        str, opt("quantization", "Weights: int8 (fastest on a CPU), int8_float16, float16 (GPUs) or float32.")
    ] = "int8",
    which: WhichOption = None,
    model_id: Annotated[
        Optional[str], opt("model_id", "A run's base on this machine (default: the one run.json records).")
    ] = None,
    revision: RevisionOption = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty OUT.")] = False,
) -> None:
    """Export a run or merged model to CTranslate2, for translate and evaluate many times faster (needs CTranslate2:
    pip install ctranslate2)."""
    from .commands.export import export_model

    with user_errors():
        result = export_model(
            model, out_dir, export_format=export_format, quantization=quantization, overwrite=overwrite, which=which,
            model_id=model_id, revision=revision, say=stderr_line,
        )  # fmt: skip
    probe = result.probe
    stderr_line(f"probe: {probe['identical']} of {probe['sentences']} sentences as generate translates them, chrF "
                f"{probe['chrf_against_generate']:.1f} against its translations")  # fmt: skip
    sys.stdout.write(f"exported: {result.out_dir}\n")


@app.command("merge-all")
def merge_all(
    runs_dir: Annotated[
        Path, typer.Argument(metavar="RUNS_DIR", help="A finetune-all output root (one run folder per model).")
    ],
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT_DIR", help="Output root: each run is merged into OUT_DIR/<run folder>.")
    ],
    dtype: DtypeOption = SAVE_DTYPE,
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as a run's base where that folder exists.")
    ] = None,
    overwrite: Annotated[bool, opt("overwrite", "Merge again into non-empty output folders.")] = False,
) -> None:
    """Merge every finished run of a finetune-all output root; unfinished runs are skipped."""
    from .commands.merge import merge_all as merge_every_run
    from .commands.merge import print_merge_summary

    with user_errors():
        outcomes = merge_every_run(
            runs_dir, out_dir, dtype=dtype, overwrite=overwrite, model_root=model_root,
            say=stderr_line,
        )  # fmt: skip
    print_merge_summary(outcomes)
    exit_for([o.status for o in outcomes])


# --- bench -----------------------------------------------------------------------------------------------------

BENCH_FLAGS = (
    "which", "random_init", "preset", "model_id", "revision", "data",
    Flag("batch_size", "Pairs per micro-batch (default: the finetune-all table's).", given_only=True),
    "grad_accum", "max_tokens", "steps", "warmup_steps", "device",
    Flag("bf16", "Mixed precision in bfloat16."),
    "fp16", "qlora", "lora_r", "lora_alpha", "lora_targets", "max_source_len", "max_target_len",
    Flag("seed", "Seed for weights, pairs and batch order."),
    "as_json",
)  # fmt: skip


@app.command()
@settings_options(BENCH_FLAGS, (BenchSettings, *SETTINGS))
def bench(
    values: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurement as JSON.")] = False,
) -> None:
    """Measure csas's training throughput and peak memory for one model on this machine (size a batch first)."""
    from .commands.bench import format_record, run_bench

    with user_errors():
        settings = BenchSettings.create(**values)
        record = run_bench(settings, say=stderr_line)
    if as_json:
        print_json(record)
    else:
        sys.stdout.write(format_record(record) + "\n")


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


def main() -> None:
    """Console entry point: usage errors (a mistyped value, an unknown flag) also come out as one line."""
    args = bare_resume_means_auto(sys.argv[1:]) or ["--help"]
    try:
        code = app(args=args, standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (Typer vendors click) are TyperExceptions
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "csas"
        sys.stderr.write(f"csas: error: {usage_message(exc.format_message(), ctx)} (see {command} --help)\n")
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("csas: error: interrupted\n")
        code = EXIT_CODES["interrupted"]
    sys.exit(code if isinstance(code, int) else 0)
