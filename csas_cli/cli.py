"""The command line: parse options, build settings, call the core, turn CsasError into one line and an exit code.

No training logic lives here, and torch is imported only by the commands that need it, so `csas --help` is instant.
Every finetune.py flag is accepted in both spellings (`--grad-accum` and `--grad_accum`) because existing cluster
scripts call it with underscores.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from . import __version__
from .errors import CsasError
from .registry import DEFAULT_LORA_TARGETS, MODEL_KEYS, REGISTRY

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


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def split_keys(values: Optional[list[str]]) -> list[str]:
    return [k.strip() for v in values or [] for k in v.split(",") if k.strip()]


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
            lora_targets=parse_lora_targets(lora_targets), overwrite=overwrite, resume=resume,
        )  # fmt: skip
        if dry_run:
            from .train import dry_run_record

            print_json(dry_run_record(settings))
            return
        from .train import run_finetune

        result = run_finetune(settings)
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
    dry_run: Annotated[bool, opt("dry_run", "Validate the data and print the plans as a JSON array.")] = False,
    overwrite: Annotated[bool, opt("overwrite", "Retrain models whose run is finished.")] = False,
) -> None:
    """Fine-tune every registry model with finetune_all.py's table (bf16, plain LoRA, one epoch)."""
    from .finetune_all import all_settings

    with user_errors():
        overrides: dict[str, object] = {"overwrite": overwrite}
        if max_steps is not None:
            overrides["max_steps"] = max_steps
        settings_list = all_settings(
            data=data, output_dir=output_dir, only=split_keys(only), skip=split_keys(skip), model_root=model_root,
            overrides=overrides,
        )  # fmt: skip
        if dry_run:
            from .finetune_all import dry_run_all

            records, failed = dry_run_all(settings_list)
            print_json(records)
            for record in failed:
                sys.stderr.write(f"csas: error: {record['which']}: {record['error']}\n")
            if failed:
                raise typer.Exit(2)
            return
    from .finetune_all import run_all
    from .summary import print_summary

    outcomes = run_all(settings_list, say=lambda m: sys.stderr.write(m + "\n"), model_root=model_root)
    print_summary(outcomes)
    if any(o.status == "interrupted" for o in outcomes):
        raise typer.Exit(130)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


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
