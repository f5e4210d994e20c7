"""The command line: each command declares its options and makes one call into commands/; a CsasError becomes one
line and an exit code.

No training logic lives here, and torch is imported only by the commands that need it, so `csas --help` is instant.
Options are made from the fields of settings objects (options.py): a command lists its flags, in the order `--help`
shows them, receives their values as one dict and builds its settings objects from it (`values.of(ModelChoice)`),
so an option shared by several commands (the model choice, decoding, the glossary, how pairs are read) is declared
once, on its field. Every finetune.py flag is accepted in both spellings (`--grad-accum` and `--grad_accum`) because
existing cluster scripts call it with underscores.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .commandline import bar, exit_with, user_errors
from .commands.check_data import DataChecks
from .commands.evaluate import Scoring
from .data.fit import GlossaryOptions
from .errors import EXIT_CODES
from .inference.generation import GenerationSettings, Runtime
from .inference.source import ModelChoice
from .modeling import SAVE_DTYPE
from .options import (
    BENCH_FLAGS,
    EVALUATE_GLOSSARY,
    FINETUNE_ALL_FLAGS,
    FINETUNE_FLAGS,
    Flag,
    GENERATION,
    GLOSSARY,
    MODEL_CHOICE,
    READING,
    RUNTIME,
    SWEEP_FLAGS,
    Values,
    WholeFlags,
    bare_resume_means_auto,
    opt,
    settings_options,
    usage_message,
)
from .registry import SweepGrid
from .settings import GROUPS, CorpusSettings
from .training.batch import model_defaults
from .training.sweep import SWEEP_ROOT, trial_defaults
from .training.workloads import BenchSettings

app = typer.Typer(
    name="csas",
    help="Fine-tune English<->French translation models (OPUS-MT, M2M100, mBART-50) with LoRA/QLoRA.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SETTINGS = tuple(GROUPS.values())
"""Where `csas finetune`'s options come from: the settings groups (settings.py)."""
DECODING = (GenerationSettings, ModelChoice, GlossaryOptions, Runtime, CorpusSettings)
"""Where translate's and evaluate's options come from: decoding, the model choice, the glossary, the device, and
how pairs are read (CorpusSettings' --locales and --publication-from)."""


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

DryRunOption = Annotated[bool, opt("dry_run", "Validate the data and print the plan as JSON; load nothing.")]
PlansDryRunOption = Annotated[bool, opt("dry_run", "Validate the data and print the plans as a JSON array.")]
ResumeNoOp = Annotated[
    Optional[str], opt("resume", "Accepted as `auto` only, for scripts: unfinished runs are always resumed.")
]


@app.command(cls=WholeFlags)
@settings_options(FINETUNE_FLAGS, SETTINGS)
def finetune(values: Values, dry_run: DryRunOption = False) -> None:
    """Fine-tune one model (finetune.py's flags and defaults)."""
    from .commands import finetune as command

    with user_errors():
        command.run(values, values.given, dry_run=dry_run)


@app.command("finetune-all", cls=WholeFlags)
@settings_options(FINETUNE_ALL_FLAGS, SETTINGS, model_defaults())
def finetune_all(
    values: Values,
    only: Annotated[Optional[list[str]], opt("only", "Train only these keys (repeat or comma-separate).")] = None,
    skip: Annotated[Optional[list[str]], opt("skip", "Leave out these keys (repeat or comma-separate).")] = None,
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as the base model where that folder exists.")
    ] = None,
    dry_run: PlansDryRunOption = False,
    resume: ResumeNoOp = None,
) -> None:
    """Fine-tune every registry model with finetune_all.py's table (bf16, plain LoRA, one epoch)."""
    from .commands import finetune_all as command

    with user_errors():
        code = command.run(values, only=only, skip=skip, model_root=model_root, dry_run=dry_run, resume=resume)
    exit_with(code)


GRID_DROPOUTS = ",".join(map(str, SweepGrid.dropouts))
"""The dropouts of every model's sweep grid (registry.SweepGrid's default)."""

@app.command(cls=WholeFlags)
@settings_options(SWEEP_FLAGS, SETTINGS, {**trial_defaults(), "output_dir": SWEEP_ROOT})
def sweep(
    values: Values,
    lrs: Annotated[
        Optional[str], opt("lrs", "Learning rates, comma-separated, e.g. 1e-4,2e-4 (default: the model's grid).")
    ] = None,
    ranks: Annotated[Optional[str], opt("ranks", "LoRA ranks, comma-separated (default: the model's grid).")] = None,
    dropouts: Annotated[
        Optional[str], opt("dropouts", f"LoRA dropouts, comma-separated (default: {GRID_DROPOUTS}).")
    ] = None,
    metric: Annotated[Optional[str], opt("metric", "Rank trials by eval_loss, train_loss or chrf, best first "
                                         "(default: chrf where every trial has one, else eval_loss).")] = None,
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the trials' plans as a JSON array.")] = False,
    resume: ResumeNoOp = None,
) -> None:
    """Train a grid of learning rates x LoRA ranks x dropouts for one model; results in sweep_results.csv."""
    from .commands import sweep as command

    with user_errors():
        code = command.run(values, lrs=lrs, ranks=ranks, dropouts=dropouts, metric=metric, dry_run=dry_run,
                           resume=resume)  # fmt: skip
    exit_with(code)


# --- check-data, convert, split, check-glossary ------------------------------------------------------------------

PAIRS_HELP = "Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files."
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")]


@app.command("check-data", cls=WholeFlags)
@settings_options(("path", *(f.name for f in DataChecks.__dataclass_fields__.values()), *READING, "as_json"),
                  (DataChecks, CorpusSettings))  # fmt: skip
def check_data(
    values: Values,
    path: Annotated[Path, typer.Argument(metavar="FILE", help=PAIRS_HELP)],
    as_json: JsonOption = False,
) -> None:
    """Report what a pairs file holds before training: duplicates, copies, length ratios, numbers, languages,
    pairs each model would cut, and overlap with a test file."""
    from .commands import check_data as command
    from .data.rows import ReadOptions
    from .progress import say

    with user_errors():
        command.run(path, values.of(DataChecks), ReadOptions.of(values), as_json=as_json, bar=bar(), say=say)


@app.command(cls=WholeFlags)
@settings_options(("source", "out", "overwrite", *READING), (CorpusSettings,))
def convert(
    values: Values,
    source: Annotated[Path, typer.Argument(metavar="IN", help=PAIRS_HELP)],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Where to write them as csas's JSON Lines (- for stdout).")
    ],
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing OUT.")] = False,
) -> None:
    """Write any pairs file csas reads as JSON Lines: what training reads, row by row."""
    from .commands import convert as command
    from .data.rows import ReadOptions

    with user_errors():
        command.run(source, out, overwrite=overwrite, reading=ReadOptions.of(values))


@app.command(cls=WholeFlags)
@settings_options(("data", "train_out", "test_out", "test_ratio", "seed", "overwrite", *READING), (CorpusSettings,))
def split(
    values: Values,
    data: Annotated[Path, typer.Argument(metavar="DATA", help=PAIRS_HELP)],
    train_out: Annotated[Path, opt("train_out", "Where to write the training rows (JSON Lines).")],
    test_out: Annotated[Path, opt("test_out", "Where to write the test rows (JSON Lines).")],
    test_ratio: Annotated[float, opt("test_ratio", "Share of the rows held out, in whole publications.")] = 0.05,
    seed: Annotated[int, opt("seed", "Seed of the choice: one seed, the same files.")] = 42,
    overwrite: Annotated[bool, opt("overwrite", "Replace existing output files.")] = False,
) -> None:
    """Cut a test file of whole publications from a pairs file, and the training file of the rest."""
    from .commands import split as command
    from .data.rows import ReadOptions

    with user_errors():
        command.run(data, train_out, test_out, test_ratio=test_ratio, seed=seed, overwrite=overwrite,
                    reading=ReadOptions.of(values))  # fmt: skip


@app.command("check-glossary", cls=WholeFlags)
@settings_options(("path", "glossary_subject", "glossary_sheet", "against", *READING, "examples", "as_json"),
                  (GlossaryOptions, CorpusSettings))  # fmt: skip
def check_glossary(
    values: Values,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A glossary: .tsv, .csv, .xlsx or .tbx.")],
    against: Annotated[
        Optional[Path], opt("against", "Pairs (.jsonl, .tmx, .tsv): how often each entry's target is used there.")
    ] = None,
    examples: Annotated[int, opt("examples", "Entries, conflicts and contradicted entries shown (0: all).")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Show what csas reads from a glossary (layout, entries kept, rows skipped and why, conflicts) and, with
    --against, how well it fits that data."""
    from .commands import check_glossary as command
    from .data.rows import ReadOptions

    with user_errors():
        command.run(path, subject=values.get("glossary_subject"), sheet=values.get("glossary_sheet"),
                    against=against, reading=ReadOptions.of(values), examples=examples, as_json=as_json)  # fmt: skip


# --- tiny-models, config show, models ---------------------------------------------------------------------------


@app.command("tiny-models", cls=WholeFlags)
def tiny_models(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write OUT_DIR/<key> into.")],
    only: Annotated[Optional[list[str]], opt("only", "Build only these keys.")] = None,
) -> None:
    """Write a small offline checkpoint of each registry model's family (real tokenizer classes) for tests and demos."""
    from .commands import tiny as command

    with user_errors():
        command.run(out_dir, only)


config_app = typer.Typer(help="The settings file: \\[training], \\[quantization], \\[models.KEY] as TOML.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(config_app, name="config")


@config_app.command("show", cls=WholeFlags)
def config_show(
    which: Annotated[Optional[list[str]], opt("which", "Only these models (repeat or comma-separate).")] = None,
    config: Annotated[Optional[Path], opt("config", "Show the settings this file comes to, over the table.")] = None,
) -> None:
    """Print the effective settings as TOML: the finetune-all table (and --config's file), to start a file from."""
    from .commands import models as command

    with user_errors():
        command.show_config(which, config)


@app.command(cls=WholeFlags)
def models(as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False) -> None:
    """List the model registry and the finetune-all table."""
    from .commands import models as command

    command.run(as_json=as_json)


# --- translate, evaluate, merge, export, merge-all ------------------------------------------------------------------

DtypeOption = Annotated[str, opt("dtype", "Saved weights: float32 (exact), bfloat16 or float16 (half the size).")]
AdapterOption = Annotated[Optional[str], opt("adapter", "best (best/) or last (lora/): default best where it exists.")]


@app.command(cls=WholeFlags)
@settings_options(("input_path", *MODEL_CHOICE, "output", "overwrite", "split", *GENERATION, *GLOSSARY, *READING,
                   *RUNTIME), DECODING)  # fmt: skip
def translate(
    values: Values,
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="Text file (a line per paragraph or sentence), - for stdin, or "
                            "pairs: .jsonl, .tmx, .tsv, SOURCE,TARGET files (the rows in the model's source language).")
    ],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing --output file.")] = False,
    split: Annotated[bool, typer.Option("--split/--no-split", help="Translate each line sentence by sentence (--no-"
                                        "split: each line whole).")] = True,  # fmt: skip
) -> None:
    """Translate a file with a finished run, a merged or exported model, or a base model: one output line per input
    line."""
    from .commands.translate import run_translate
    from .data.rows import ReadOptions

    with user_errors():
        run_translate(input_path, values.of(ModelChoice), values.of(GenerationSettings), output=output,
                      overwrite=overwrite, runtime=values.of(Runtime), terms=values.of(GlossaryOptions),
                      reading=ReadOptions.of(values), bar=bar(), split=split)  # fmt: skip


@app.command(cls=WholeFlags)
@settings_options(("data", *MODEL_CHOICE, "limit", "compare_base", "hypotheses", "overwrite", "as_json", "card",
                   *GENERATION, *EVALUATE_GLOSSARY, "translations", *READING, *RUNTIME),
                  (Scoring, *DECODING))  # fmt: skip
def evaluate(
    values: Values, as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False
) -> None:
    """Score a run, a merged or exported model, or a base model with sacrebleu BLEU and chrF on a pairs file (.jsonl,
    .tmx, .tsv), with quality flags, and term success with --glossary."""
    from .commands import evaluate as command
    from .data.rows import ReadOptions

    with user_errors():
        command.evaluate(values.of(Scoring), values.of(ModelChoice), values.of(GenerationSettings),
                         runtime=values.of(Runtime), terms=values.of(GlossaryOptions), reading=ReadOptions.of(values),
                         as_json=as_json, bar=bar())  # fmt: skip


@app.command(cls=WholeFlags)
@settings_options(("data", "general", "base", Flag("which", "A base model to compare too: its registry key "
                   "(--model-id: its weights)."), "model_id", "revision", "resamples", "output_dir", "as_json",
                   "card", "model_root", *GENERATION, Flag("glossary", "Glossary: every system's term success."),
                   "glossary_subject", "glossary_sheet", Flag("apply_glossary", toggle=True), *READING, *RUNTIME),
                  DECODING)  # fmt: skip
def compare(
    values: Values,
    models: Annotated[Optional[list[Path]], typer.Argument(metavar="MODEL...", help="Runs (RUN, RUN/best), merged "
                                                           "or exported models, finetune-all or sweep roots.")] = None,
    data: Annotated[list[Path], opt("data", "A test set (repeat for several): .jsonl, .tmx, .tsv, SOURCE,TARGET.")] = [],
    general: Annotated[list[Path], opt("general", "A --data test set of general text: forgetting is checked on "
                                       "it.")] = [],  # fmt: skip
    base: Annotated[bool, opt("base", "Also score each model's base, and compare each model with it.")] = False,
    resamples: Annotated[int, opt("resamples", "Bootstrap resamples of the significance test.")] = 1000,
    output_dir: Annotated[Path, opt("output_dir", "Where the translations are kept (and reused).")] = Path(
        "compare_translations"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    card: Annotated[bool, opt("card", "Add the scores to the model card of each merged or exported model.")] = False,
    model_root: Annotated[Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as a run's base where that folder "
                                              "exists.")] = None,  # fmt: skip
) -> None:
    """Compare models on test sets: BLEU, chrF with its confidence interval, the significance of each difference
    (paired bootstrap), and forgetting on general text."""
    from .commands import compare as command
    from .data.rows import ReadOptions

    with user_errors():
        options = command.CompareOptions(
            tuple(models or ()), tuple(data), tuple(general), base, values.get("which"), values.get("model_id"),
            values.get("revision"), resamples, output_dir, values.get("glossary"), values.get("glossary_subject"),
            values.get("glossary_sheet"), values.get("apply_glossary"), model_root,
        )  # fmt: skip
        command.compare(options, values.of(GenerationSettings), runtime=values.of(Runtime),
                        reading=ReadOptions.of(values), as_json=as_json, card=card, bar=bar())  # fmt: skip


@app.command(cls=WholeFlags)
@settings_options(("run_dir", "out_dir", "adapter", "dtype", Flag("model_id", "The run's base on this machine "
                   "(default: the one run.json records)."), "revision", "overwrite"), (ModelChoice,))  # fmt: skip
def merge(
    values: Values,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run directory (run.json, lora/, "
                                            "finished.json), RUN/best or RUN/lora.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="Where to write the merged transformers model.")],
    adapter: AdapterOption = None,
    dtype: DtypeOption = SAVE_DTYPE,
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty OUT_DIR.")] = False,
) -> None:
    """Fold a run's LoRA adapter into its (unquantized) base and save a standard transformers model directory."""
    from .commands import merge as command

    with user_errors():
        command.run(run_dir, out_dir, dtype=dtype, model_id=values.get("model_id"), revision=values.get("revision"),
                    overwrite=overwrite, adapter=adapter)  # fmt: skip


@app.command(cls=WholeFlags)
@settings_options(("model", "out_dir", "adapter", "export_format", "quantization", "which",
                   Flag("model_id", "A run's base on this machine (default: the one run.json records)."), "revision",
                   "overwrite"), (ModelChoice,))  # fmt: skip
def export(
    values: Values,
    model: Annotated[Path, typer.Argument(metavar="RUN_OR_MERGED", help="A finished run (or RUN/best, a checkpoint) "
                                          "or a merged model.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Where to write the exported model.")],
    adapter: AdapterOption = None,
    export_format: Annotated[str, typer.Option("--format", help="Export format: ctranslate2.")] = "ctranslate2",
    quantization: Annotated[
        str, opt("quantization", "Weights: int8 (fastest on a CPU), int8_float16, float16 (GPUs) or float32.")
    ] = "int8",
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty OUT.")] = False,
) -> None:
    """Export a run or merged model to CTranslate2, for translate and evaluate many times faster (needs CTranslate2:
    pip install ctranslate2)."""
    from .commands import export as command

    with user_errors():
        command.run(model, out_dir, export_format=export_format, quantization=quantization, overwrite=overwrite,
                    adapter=adapter, which=values.get("which"), model_id=values.get("model_id"),
                    revision=values.get("revision"))  # fmt: skip


@app.command("merge-all", cls=WholeFlags)
def merge_all(
    runs_dir: Annotated[Path, typer.Argument(metavar="RUNS_DIR", help="A finetune-all output root (one run folder "
                                             "per model).")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="Output root: each run is merged into "
                                            "OUT_DIR/<run folder>.")],
    adapter: AdapterOption = None,
    dtype: DtypeOption = SAVE_DTYPE,
    model_root: Annotated[Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as a run's base where that folder "
                                              "exists.")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Merge again into non-empty output folders.")] = False,
) -> None:
    """Merge every finished run of a finetune-all output root; unfinished runs are skipped."""
    from .commands import merge as command

    with user_errors():
        code = command.run_all(runs_dir, out_dir, dtype=dtype, model_root=model_root, overwrite=overwrite,
                               adapter=adapter)  # fmt: skip
    exit_with(code)


@app.command(cls=WholeFlags)
def average(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory with checkpoints.")],
    last: Annotated[Optional[int], opt("last", "Average the newest N adapters the run kept (the final step's "
                                       "too).")] = None,  # fmt: skip
    steps: Annotated[Optional[str], opt("steps", "Average these steps' adapters, comma-separated.")] = None,
    output: Annotated[Optional[Path], opt("output", "Where to write the adapter (default: RUN/averaged).")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty --output.")] = False,
) -> None:
    """Average a run's last checkpoints into one adapter (the mean of their weight updates, exactly), which
    translate, evaluate, compare, merge and export take like lora/."""
    from .commands import average as command

    with user_errors():
        command.run(run_dir, last=last, steps=steps, output=output, overwrite=overwrite)


@app.command(cls=WholeFlags)
def report(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Run directories, or output roots of "
                                                "finetune-all or sweep (every run under them).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="report.html (the page, figures embedded) "
                                                   "or a .png (the figures); default: PATH/report.html.")] = None,
    metric: Annotated[Optional[str], opt("metric", "Order the table by loss, eval_loss or eval_chrf, best first "
                                         "(default: what the runs chose their best by).")] = None,
) -> None:
    """Draw the curves of one run or many (training loss, evaluation loss and chrF, learning rate) with a table of
    each run, as one self-contained HTML page or a PNG (needs csas[report])."""
    from .commands import report as command

    with user_errors():
        command.run(paths, output, metric)


# --- bench -----------------------------------------------------------------------------------------------------


@app.command(cls=WholeFlags)
@settings_options(BENCH_FLAGS, (BenchSettings, *SETTINGS))
def bench(
    values: Values,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurement as JSON.")] = False,
) -> None:
    """Measure csas's training throughput and peak memory for one model on this machine (size a batch first)."""
    from .commands import bench as command

    with user_errors():
        command.run(BenchSettings.create(**values), as_json=as_json)


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


__all__ = ["app", "main"]
