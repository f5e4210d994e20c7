"""The command line: parse options, build settings, call the core, turn CsasError into one line and an exit code.

No training logic lives here, and torch is imported only by the commands that need it, so `csas --help` is instant.
Every finetune.py flag is accepted in both spellings (`--grad-accum` and `--grad_accum`) because existing cluster
scripts call it with underscores.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from . import __version__
from .errors import CsasError
from .preemption import PREEMPTED_EXIT_CODE
from .registry import DEFAULT_LORA_TARGETS, MODEL_KEYS, REGISTRY, SWEEP_CONSTANTS

app = typer.Typer(
    name="csas",
    help="Fine-tune English<->French translation models (OPUS-MT, M2M100, mBART-50) with LoRA/QLoRA.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def opt(name: str, help: str, **kwargs: object) -> object:
    """An option under its dashed name and its finetune.py underscore spelling."""
    dashed = "--" + name.replace("_", "-")
    names = [dashed] if "_" not in name else [dashed, "--" + name]
    return typer.Option(*names, help=help, **kwargs)


def fail(message: str, code: int = 2, label: str = "error") -> typer.Exit:
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
        raise fail("interrupted", 130) from None


def main_process() -> bool:
    """False on torchrun's ranks other than 0: they train but leave messages and results to rank 0."""
    return os.environ.get("RANK", "").strip() in ("", "0")


def say(message: str) -> None:
    if main_process():
        sys.stderr.write(message + "\n")


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def split_keys(values: Optional[list[str]]) -> list[str]:
    return [k.strip() for v in values or [] for k in v.split(",") if k.strip()]


def overrides_given(overwrite: bool, **given: object) -> dict[str, object]:
    """The settings a multi-run command was given: --overwrite and every option not left at None."""
    return {"overwrite": overwrite, **{k: v for k, v in given.items() if v is not None}}


def report_dry_run(records: list[dict], failed: list[dict], key: str) -> None:
    """Print the plans as a JSON array, then one error line per failed plan (named by `key`), exit 2 if any."""
    print_json(records)
    for record in failed:
        sys.stderr.write(f"csas: error: {record[key]}: {record['error']}\n")
    if failed:
        raise typer.Exit(2)


def exit_for(statuses: list[str]) -> None:
    """The exit code of a multi-run command: 75 if a run was stopped by a signal, 130 if interrupted, 1 if one
    failed, 0 otherwise (the first that applies)."""
    for status, code in (("stopped", PREEMPTED_EXIT_CODE), ("interrupted", 130), ("failed", 1)):
        if status in statuses:
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


@app.command()
def finetune(
    which: Annotated[str, opt("which", f"Registry key: {', '.join(MODEL_KEYS)}.")],
    data: Annotated[Path, opt("data", "Training pairs, JSON Lines.")] = Path("training_data.jsonl"),
    output_dir: Annotated[Path, opt("output_dir", "Output root; the run goes to OUTPUT_DIR/WHICH.")] = Path("outputs"),
    epochs: Annotated[float, opt("epochs", "Passes over the training split.")] = 1.0,
    lr: Annotated[float, opt("lr", "Peak learning rate.")] = 2e-4,
    batch_size: Annotated[int, opt("batch_size", "Pairs per micro-batch, per device.")] = 8,
    grad_accum: Annotated[int, opt("grad_accum", "Micro-batches per optimizer step.")] = 2,
    max_tokens: Annotated[
        Optional[int],
        opt("max_tokens", "Token-budget micro-batches: as many pairs as fit in N tokens, not --batch-size pairs."),
    ] = None,
    val_ratio: Annotated[float, opt("val_ratio", "Share held out for evaluation (whole publications).")] = 0.05,
    max_source_len: Annotated[int, opt("max_source_len", "Source tokens kept.")] = 512,
    max_target_len: Annotated[int, opt("max_target_len", "Target tokens kept.")] = 512,
    seed: Annotated[int, opt("seed", "Seed for split, initialisation and batch order.")] = 42,
    fp16: Annotated[bool, opt("fp16", "Mixed precision in float16 (CUDA).")] = False,
    bf16: Annotated[bool, opt("bf16", "Mixed precision in bfloat16; wins over --fp16.")] = False,
    no_qlora: Annotated[bool, opt("no_qlora", "Plain LoRA; without it the base is loaded in 4-bit (QLoRA).")] = False,
    save_steps: Annotated[int, opt("save_steps", "Steps between checkpoints (last 3 kept).")] = 1000,
    eval_steps: Annotated[int, opt("eval_steps", "Steps between evaluations.")] = 1000,
    logging_steps: Annotated[int, opt("logging_steps", "Steps between logged losses.")] = 50,
    warmup_ratio: Annotated[float, opt("warmup_ratio", "Share of steps warming up the learning rate.")] = 0.03,
    device_map: Annotated[str, opt("device_map", "Base model placement: auto, cpu, cuda:0, none.")] = "auto",
    disable_tqdm: Annotated[bool, opt("disable_tqdm", "Plain log lines instead of a progress bar.")] = False,
    lora_r: Annotated[int, opt("lora_r", "LoRA rank.")] = 32,
    lora_alpha: Annotated[int, opt("lora_alpha", "LoRA alpha.")] = 64,
    lora_dropout: Annotated[float, opt("lora_dropout", "LoRA dropout.")] = 0.05,
    max_steps: Annotated[Optional[int], opt("max_steps", "Optimizer steps; overrides --epochs.")] = None,
    max_train_samples: Annotated[
        Optional[int], opt("max_train_samples", "Train on at most N rows of the split (a seeded random subset).")
    ] = None,
    max_eval_samples: Annotated[
        Optional[int], opt("max_eval_samples", "Evaluate on at most N rows of the split (a seeded random subset).")
    ] = None,
    model_id: Annotated[
        Optional[str], opt("model_id", "Base model: hub id or local snapshot (default: the registry's).")
    ] = None,
    lora_targets: Annotated[
        str, opt("lora_targets", "Comma-separated module names, or all-linear.")
    ] = ",".join(DEFAULT_LORA_TARGETS),
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the plan as JSON; load nothing.")] = False,
    overwrite: Annotated[bool, opt("overwrite", "Replace a finished run in the output directory.")] = False,
    resume: Annotated[
        Optional[str], opt("resume", "Continue from the newest checkpoint (auto) or from a checkpoint folder.")
    ] = None,
    eval_chrf: Annotated[
        bool, opt("eval_chrf", "Also score chrF at every evaluation; the best evaluation is then the highest chrF.")
    ] = False,
    eval_chrf_samples: Annotated[
        int, opt("eval_chrf_samples", "Validation rows chrF translates (a seeded sample, the same every time).")
    ] = 200,
    eval_num_beams: Annotated[int, opt("eval_num_beams", "Beam width of the chrF translations (1: greedy).")] = 1,
    patience: Annotated[
        Optional[int], opt("patience", "Stop after N evaluations in a row without a new best (finishes normally).")
    ] = None,
) -> None:
    """Fine-tune one model (finetune.py's flags and defaults)."""
    from .settings import FinetuneSettings, parse_lora_targets

    with user_errors():
        settings = FinetuneSettings(
            which=which, data=data, output_dir=output_dir, epochs=epochs, lr=lr, batch_size=batch_size,
            grad_accum=grad_accum, val_ratio=val_ratio, max_source_len=max_source_len, max_target_len=max_target_len,
            seed=seed, fp16=fp16, bf16=bf16, no_qlora=no_qlora, save_steps=save_steps, eval_steps=eval_steps,
            logging_steps=logging_steps, warmup_ratio=warmup_ratio, device_map=device_map, disable_tqdm=disable_tqdm,
            lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, max_steps=max_steps, model_id=model_id,
            max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
            lora_targets=parse_lora_targets(lora_targets), overwrite=overwrite, resume=resume, eval_chrf=eval_chrf,
            eval_chrf_samples=eval_chrf_samples, eval_num_beams=eval_num_beams, patience=patience,
            max_tokens=max_tokens,
        )  # fmt: skip
        if dry_run:
            from .train import dry_run_record

            print_json(dry_run_record(settings))
            return
        from .train import run_finetune

        result = run_finetune(settings)
    if main_process():
        sys.stdout.write(f"adapter: {Path(result.run_dir) / 'lora'}\n")


@app.command("finetune-all")
def finetune_all(
    data: Annotated[Path, opt("data", "Training pairs, JSON Lines.")] = Path("training_data.jsonl"),
    output_dir: Annotated[Path, opt("output_dir", "Output root; each model goes to OUTPUT_DIR/KEY.")] = Path("outputs"),
    only: Annotated[Optional[list[str]], opt("only", "Train only these keys (repeat or comma-separate).")] = None,
    skip: Annotated[Optional[list[str]], opt("skip", "Leave out these keys (repeat or comma-separate).")] = None,
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as the base model where that folder exists.")
    ] = None,
    max_steps: Annotated[Optional[int], opt("max_steps", "Cap every model's optimizer steps.")] = None,
    max_tokens: Annotated[
        Optional[int],
        opt("max_tokens", "Token-budget micro-batches of N tokens for every model, not the table's batch sizes."),
    ] = None,
    eval_chrf: Annotated[
        bool, opt("eval_chrf", "Also score chrF at every evaluation; each model's best evaluation is the highest chrF.")
    ] = False,
    eval_chrf_samples: Annotated[
        Optional[int], opt("eval_chrf_samples", "Validation rows chrF translates (default: 200).")
    ] = None,
    patience: Annotated[
        Optional[int], opt("patience", "Stop a model after N evaluations in a row without a new best.")
    ] = None,
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the plans as a JSON array.")] = False,
    overwrite: Annotated[bool, opt("overwrite", "Retrain models whose run is finished.")] = False,
) -> None:
    """Fine-tune every registry model with finetune_all.py's table (bf16, plain LoRA, one epoch)."""
    from .finetune_all import all_settings

    with user_errors():
        overrides = overrides_given(
            overwrite, max_steps=max_steps, eval_chrf=eval_chrf or None, eval_chrf_samples=eval_chrf_samples,
            patience=patience, max_tokens=max_tokens,
        )  # fmt: skip
        settings_list = all_settings(
            data=data, output_dir=output_dir, only=split_keys(only), skip=split_keys(skip), model_root=model_root,
            overrides=overrides,
        )  # fmt: skip
        if dry_run:
            from .finetune_all import dry_run_all

            report_dry_run(*dry_run_all(settings_list), key="which")
            return
    from .finetune_all import run_all
    from .summary import print_summary

    outcomes = run_all(settings_list, say=say, model_root=model_root)
    if main_process():
        print_summary(outcomes)
    exit_for([o.status for o in outcomes])


# --- sweep -----------------------------------------------------------------------------------------------------


@app.command()
def sweep(
    which: Annotated[str, opt("which", f"Registry key: {', '.join(MODEL_KEYS)}.")],
    data: Annotated[Path, opt("data", "Training pairs, JSON Lines.")] = Path("training_data.jsonl"),
    output_dir: Annotated[
        Path, opt("output_dir", "Sweep root; trials go to OUTPUT_DIR/WHICH/trial-NN-..., results beside them.")
    ] = Path("sweeps"),
    lrs: Annotated[
        Optional[str], opt("lrs", "Learning rates, comma-separated, e.g. 1e-4,2e-4 (default: the model's grid).")
    ] = None,
    ranks: Annotated[Optional[str], opt("ranks", "LoRA ranks, comma-separated (default: the model's grid).")] = None,
    dropouts: Annotated[Optional[str], opt("dropouts", "LoRA dropouts, comma-separated (default: 0.05).")] = None,
    lora_alpha: Annotated[Optional[int], opt("lora_alpha", "One LoRA alpha for every trial (default: 2 x r).")] = None,
    max_steps: Annotated[
        Optional[int], opt("max_steps", f"Optimizer steps per trial (default: {SWEEP_CONSTANTS['max_steps']}).")
    ] = None,
    max_train_samples: Annotated[
        Optional[int],
        opt("max_train_samples", f"Training rows per trial (default: {SWEEP_CONSTANTS['max_train_samples']}).")
    ] = None,
    max_eval_samples: Annotated[
        Optional[int],
        opt("max_eval_samples", f"Validation rows per trial (default: {SWEEP_CONSTANTS['max_eval_samples']}).")
    ] = None,
    model_id: Annotated[
        Optional[str], opt("model_id", "Base model: hub id or local snapshot (default: the registry's).")
    ] = None,
    batch_size: Annotated[
        Optional[int], opt("batch_size", "Pairs per micro-batch (default: the finetune-all table's).")
    ] = None,
    grad_accum: Annotated[Optional[int], opt("grad_accum", "Micro-batches per optimizer step (default: 2).")] = None,
    max_tokens: Annotated[
        Optional[int],
        opt("max_tokens", "Token-budget micro-batches: as many pairs as fit in N tokens, not --batch-size pairs."),
    ] = None,
    seed: Annotated[Optional[int], opt("seed", "Seed for split, sample caps, initialisation (default: 42).")] = None,
    save_steps: Annotated[Optional[int], opt("save_steps", "Steps between checkpoints (default: 1000).")] = None,
    eval_steps: Annotated[Optional[int], opt("eval_steps", "Steps between evaluations (default: 1000).")] = None,
    logging_steps: Annotated[Optional[int], opt("logging_steps", "Steps between logged losses (default: 50).")] = None,
    bf16: Annotated[
        Optional[bool], typer.Option("--bf16/--no-bf16", help="Mixed precision in bfloat16 (default: on).")
    ] = None,
    qlora: Annotated[
        Optional[bool], typer.Option("--qlora/--no-qlora", help="4-bit QLoRA instead of plain LoRA (default: off).")
    ] = None,
    eval_chrf: Annotated[
        bool, opt("eval_chrf", "Also score chrF at every evaluation (the chrf column; needed for --metric chrf).")
    ] = False,
    eval_chrf_samples: Annotated[
        Optional[int], opt("eval_chrf_samples", "Validation rows chrF translates (default: 200).")
    ] = None,
    eval_num_beams: Annotated[
        Optional[int], opt("eval_num_beams", "Beam width of the chrF translations (default: 1, greedy).")
    ] = None,
    patience: Annotated[
        Optional[int], opt("patience", "Stop a trial after N evaluations in a row without a new best.")
    ] = None,
    metric: Annotated[str, opt("metric", "Rank trials by eval_loss, train_loss or chrf, best first.")] = "eval_loss",
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the trials' plans as a JSON array.")] = False,
    overwrite: Annotated[bool, opt("overwrite", "Retrain trials whose run is finished.")] = False,
) -> None:
    """Train a grid of learning rates x LoRA ranks x dropouts for one model; results in sweep_results.csv."""
    from .sweep import check_metric, dry_run_trials, parse_dropouts, parse_lrs, parse_ranks, sweep_settings

    with user_errors():
        check_metric(metric)
        overrides = overrides_given(
            overwrite, max_steps=max_steps, max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
            model_id=model_id, batch_size=batch_size, grad_accum=grad_accum, max_tokens=max_tokens, seed=seed,
            save_steps=save_steps, eval_steps=eval_steps, logging_steps=logging_steps, bf16=bf16,
            no_qlora=None if qlora is None else not qlora, eval_chrf=eval_chrf or None,
            eval_chrf_samples=eval_chrf_samples, eval_num_beams=eval_num_beams, patience=patience,
        )  # fmt: skip
        trials = sweep_settings(
            which, data=data, output_dir=output_dir,
            lrs=None if lrs is None else parse_lrs(lrs),
            ranks=None if ranks is None else parse_ranks(ranks),
            dropouts=None if dropouts is None else parse_dropouts(dropouts),
            lora_alpha=lora_alpha,
            overrides=overrides,
        )  # fmt: skip
        if dry_run:
            report_dry_run(*dry_run_trials(trials), key="trial")
            return
    from .summary import print_sweep_table
    from .sweep import run_sweep

    results, path = run_sweep(trials, say=say, write_results=main_process())
    if main_process():
        print_sweep_table(results, metric)
        sys.stdout.write(f"results: {path}\n")
    exit_for([r.status for r in results])


@app.command("tiny-models")
def tiny_models(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write OUT_DIR/<key> into.")],
    only: Annotated[Optional[list[str]], opt("only", "Build only these keys.")] = None,
) -> None:
    """Write a small offline checkpoint of each registry model's family (real tokenizer classes) for tests and demos."""
    from .finetune_all import select_keys
    from .tiny import build_tiny_models

    with user_errors():
        keys = select_keys(split_keys(only))
        built = build_tiny_models(out_dir, keys)
    for key, path in built.items():
        sys.stdout.write(f"{key}\t{path}\n")


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
            "lr": FINETUNE_ALL_TABLE[key].lr,
        }
        for i, (key, spec) in enumerate(REGISTRY.items())
    ]
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "key", "base model", "family", "trains on", "batch", "lr")
    for r in rows:
        table.add_row(
            str(r["index"]), r["key"], r["hub_id"], r["family"], "+".join(r["source_langs"]) + " sources",
            str(r["batch_size"]), f"{r['lr']:g}",
        )  # fmt: skip
    Console().print(table)


# Options shared by translate and evaluate: which model, which direction, how to generate.
ModelOption = Annotated[
    Optional[Path], typer.Option("--model", "-m", help="A finished run directory or a `csas merge` output directory.")
]
WhichOption = Annotated[
    Optional[str], opt("which", "Registry key: a base model alone, or a model directory without csas_merge.json.")
]
BaseOption = Annotated[
    Optional[str], opt("model_id", "Base model (hub id or local path): a run's base on this machine, or with --which.")
]
SourceLangOption = Annotated[
    Optional[str], opt("source_lang", "Source language, en or fr (required for m2m100_418m, which goes both ways).")
]
NumBeamsOption = Annotated[int, opt("num_beams", "Beam search width (1: greedy).")]
MaxNewTokensOption = Annotated[int, opt("max_new_tokens", "Most tokens generated per sentence.")]
BatchSizeOption = Annotated[int, opt("batch_size", "Sentences per batch (batches are sorted by length).")]


def show_progress() -> bool:
    from .progress import use_progress_bar

    return use_progress_bar(False, sys.stderr)


@app.command()
def translate(
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="Text file (a sentence per line), - for stdin, or .jsonl pairs.")
    ],
    model: ModelOption = None,
    which: WhichOption = None,
    model_id: BaseOption = None,
    source_lang: SourceLangOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing --output file.")] = False,
    num_beams: NumBeamsOption = 4,
    max_new_tokens: MaxNewTokensOption = 256,
    batch_size: BatchSizeOption = 16,
) -> None:
    """Translate a file with a finished run, a merged model or a base model: one output line per input line."""
    from .inference import GenerationSettings
    from .translate import run_translate

    with user_errors():
        run_translate(
            input_path=input_path, model=model, which=which, model_id=model_id, source_lang=source_lang,
            output=output, overwrite=overwrite, settings=GenerationSettings(num_beams, max_new_tokens, batch_size),
            say=lambda m: sys.stderr.write(m + "\n"), bar=show_progress(),
        )  # fmt: skip


@app.command()
def evaluate(
    data: Annotated[Path, opt("data", "Pairs, JSON Lines (the rows of the model's direction are scored).")],
    model: ModelOption = None,
    which: WhichOption = None,
    model_id: BaseOption = None,
    source_lang: SourceLangOption = None,
    limit: Annotated[Optional[int], opt("limit", "Score only the first N rows of the direction.")] = None,
    compare_base: Annotated[bool, opt("compare_base", "Also score the base model, side by side.")] = False,
    hypotheses: Annotated[Optional[Path], opt("hypotheses", "Write the model's translations here.")] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace an existing --hypotheses file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    num_beams: NumBeamsOption = 4,
    max_new_tokens: MaxNewTokensOption = 256,
    batch_size: BatchSizeOption = 16,
) -> None:
    """Score a run, a merged model or a base model with sacrebleu BLEU and chrF on a JSONL pairs file."""
    from .evaluate import print_report, run_evaluate
    from .inference import GenerationSettings

    with user_errors():
        report = run_evaluate(
            data=data, model=model, which=which, model_id=model_id, source_lang=source_lang, limit=limit,
            compare_base=compare_base, hypotheses_path=hypotheses, overwrite=overwrite,
            settings=GenerationSettings(num_beams, max_new_tokens, batch_size), bar=show_progress(),
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
    dtype: Annotated[str, opt("dtype", "Saved weights: float32 (exact), bfloat16 or float16 (half the size).")] = (
        "float32"
    ),
    model_id: Annotated[
        Optional[str], opt("model_id", "The run's base on this machine (default: the one run.json records).")
    ] = None,
    overwrite: Annotated[bool, opt("overwrite", "Replace a non-empty OUT_DIR.")] = False,
) -> None:
    """Fold a run's LoRA adapter into its (unquantized) base and save a standard transformers model directory."""
    from .merge import merge_run

    with user_errors():
        result = merge_run(run_dir, out_dir, dtype=dtype, overwrite=overwrite, model_id=model_id)
    if result.both_directions:
        sys.stderr.write(
            f"{result.which} translates both ways, so no target language is forced: `csas translate` needs "
            "--source-lang, and transformers users pass forced_bos_token_id=tokenizer.get_lang_id(target)\n"
        )
    sys.stdout.write(f"merged: {result.out_dir}\n")


@app.command("merge-all")
def merge_all(
    runs_dir: Annotated[
        Path, typer.Argument(metavar="RUNS_DIR", help="A finetune-all output root (one run folder per model).")
    ],
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT_DIR", help="Output root: each run is merged into OUT_DIR/<run folder>.")
    ],
    dtype: Annotated[str, opt("dtype", "Saved weights: float32 (exact), bfloat16 or float16 (half the size).")] = (
        "float32"
    ),
    model_root: Annotated[
        Optional[Path], opt("model_root", "Use MODEL_ROOT/KEY as a run's base where that folder exists.")
    ] = None,
    overwrite: Annotated[bool, opt("overwrite", "Merge again into non-empty output folders.")] = False,
) -> None:
    """Merge every finished run of a finetune-all output root; unfinished runs are skipped."""
    from .merge import merge_all as merge_every_run
    from .merge import print_merge_summary

    with user_errors():
        outcomes = merge_every_run(
            runs_dir, out_dir, dtype=dtype, overwrite=overwrite, model_root=model_root,
            say=lambda m: sys.stderr.write(m + "\n"),
        )  # fmt: skip
    print_merge_summary(outcomes)
    exit_for([o.status for o in outcomes])


# --- bench -----------------------------------------------------------------------------------------------------


@app.command()
def bench(
    which: Annotated[str, opt("which", f"Registry key: {', '.join(MODEL_KEYS)}.")],
    random_init: Annotated[
        bool, opt("random_init", "The model's real architecture with random weights: nothing is downloaded.")
    ] = False,
    preset: Annotated[
        Optional[str], opt("preset", "A small random-weight Marian model instead (small or tiny; opus_mt keys).")
    ] = None,
    model_id: Annotated[
        Optional[str], opt("model_id", "Base model: hub id or local snapshot (default: the registry's).")
    ] = None,
    data: Annotated[
        Optional[Path], opt("data", "Pairs (JSON Lines) to measure on; default: synthetic CSAS-like lengths.")
    ] = None,
    batch_size: Annotated[
        Optional[int], opt("batch_size", "Pairs per micro-batch (default: the finetune-all table's).")
    ] = None,
    grad_accum: Annotated[int, opt("grad_accum", "Micro-batches per optimizer step.")] = 2,
    max_tokens: Annotated[
        Optional[int],
        opt("max_tokens", "Token-budget micro-batches: as many pairs as fit in N tokens, not --batch-size pairs."),
    ] = None,
    steps: Annotated[int, opt("steps", "Timed optimizer steps.")] = 20,
    warmup_steps: Annotated[int, opt("warmup_steps", "Optimizer steps before the clock starts.")] = 3,
    device: Annotated[str, opt("device", "auto, cpu or cuda.")] = "auto",
    bf16: Annotated[bool, opt("bf16", "Mixed precision in bfloat16.")] = False,
    fp16: Annotated[bool, opt("fp16", "Mixed precision in float16 (CUDA).")] = False,
    no_qlora: Annotated[bool, opt("no_qlora", "Plain LoRA; without it the base is loaded in 4-bit (QLoRA).")] = False,
    lora_r: Annotated[int, opt("lora_r", "LoRA rank.")] = 32,
    lora_alpha: Annotated[int, opt("lora_alpha", "LoRA alpha.")] = 64,
    lora_targets: Annotated[
        str, opt("lora_targets", "Comma-separated module names, or all-linear.")
    ] = ",".join(DEFAULT_LORA_TARGETS),
    max_source_len: Annotated[int, opt("max_source_len", "Source tokens kept.")] = 512,
    max_target_len: Annotated[int, opt("max_target_len", "Target tokens kept.")] = 512,
    seed: Annotated[int, opt("seed", "Seed for weights, pairs and batch order.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurement as JSON.")] = False,
) -> None:
    """Measure csas's training throughput and peak memory for one model on this machine (size a batch first)."""
    from .bench import BenchSettings, format_record, run_bench
    from .settings import parse_lora_targets

    with user_errors():
        settings = BenchSettings(
            which=which, model_id=model_id, random_init=random_init, preset=preset, data=data, batch_size=batch_size,
            grad_accum=grad_accum, max_tokens=max_tokens, steps=steps, warmup_steps=warmup_steps, device=device,
            bf16=bf16, fp16=fp16,
            qlora=not no_qlora, lora_r=lora_r, lora_alpha=lora_alpha, lora_targets=parse_lora_targets(lora_targets),
            max_source_len=max_source_len, max_target_len=max_target_len, seed=seed,
        )  # fmt: skip
        record = run_bench(settings, say=lambda m: sys.stderr.write(m + "\n"))
    if as_json:
        print_json(record)
    else:
        sys.stdout.write(format_record(record) + "\n")


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
    try:  # recent Typer vendors click; its exception classes are the ones raised
        from typer._click import exceptions as click_errors
    except ImportError:  # older Typer uses click itself
        from click import exceptions as click_errors  # type: ignore[no-redef]

    try:
        code = app(args=bare_resume_means_auto(sys.argv[1:]), standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        code = 0
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "csas"
        sys.stderr.write(f"csas: error: {' '.join(exc.format_message().split())} (see {command} --help)\n")
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("csas: error: interrupted\n")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
