"""Folding a run's LoRA adapter into its base and saving a plain transformers model (`csas merge`, `merge-all` and
`export` call it).

The base is reloaded unquantized in fp32 even when the run trained with QLoRA: merging into 4-bit weights drifts
(peft#2321). The merge happens in fp32 and only the result is cast to `--dtype`. The default is float32 because a
LoRA update is small next to the weight it is added to, and bfloat16's 8-bit mantissa rounds part of it away;
bfloat16 halves the size (what merge_weights.py saved) at that cost.

The output directory holds safetensors weights, config.json, the tokenizer, a generation_config.json that forces the
target language's code for M2M100 and mBART-50 (not for m2m100_418m, which was trained both ways: `csas translate`
needs --source-lang with it, and plain transformers users set `forced_bos_token_id` per call), csas_merge.json
(which model, base, run, which adapter and its sha256) and README.md, the model card (cards.py). Of a run
directory the merge takes best/, the best evaluation's adapter, where the run has one, else lora/, the last step's
(`--adapter best|last` chooses; `choose_adapter`). It is written under a temporary name, checked, then renamed:
before the rename the saved model is reloaded with `AutoModelForSeq2SeqLM.from_pretrained` alone and must reproduce the
adapter's logits (this catches an lm_head that lost its tie to the embeddings, peft#2777).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..cards import write_card
from ..errors import ModelError, OutputError, SettingsError, one_line
from ..files import file_sha256, follow_umask, now_iso, read_json_record, write_json_atomic
from ..inference.generation import apply_adapter, load_weights
from ..inference.source import MERGE_RECORD, RUN, ModelSource, resolve_source
from ..languages import directions_of, model_generation_overrides, set_source_language
from ..layout import ADAPTER_DIR, AVERAGE_RECORD, BEST_DIR, STEP_DIR, Evaluation, RunRecord, run_state
from ..modeling import DTYPE_NAMES, SAVE_DTYPE, torch_dtype
from .rundir import lock_holder

DTYPES = tuple(DTYPE_NAMES.values())
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROBE = {
    "en": "The spawning stock biomass is expected to remain in the critical zone in 2025.",
    "fr": "La biomasse du stock reproducteur devrait rester dans la zone critique en 2025.",
}
"""A sentence run through the model before and after saving, in each source language."""


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise SettingsError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def adapter_sha256(adapter: Path) -> str | None:
    weights = adapter / ADAPTER_WEIGHTS
    return file_sha256(weights) if weights.is_file() else None


ADAPTER_CHOICES = ("best", "last")
"""--adapter: best/ (the best evaluation's adapter) or lora/ (the last step's)."""


def check_adapter(adapter: str | None) -> str | None:
    if adapter is not None and adapter not in ADAPTER_CHOICES:
        raise SettingsError(f"--adapter: expected best or last, got {adapter!r}")
    return adapter


@dataclass(frozen=True)
class AdapterChoice:
    """Which of a run's adapters a merge folds in, and why."""

    run_dir: Path
    path: Path
    """The adapter folder: RUN/best, RUN/lora or a checkpoint's adapter."""
    kind: str
    """best, last, checkpoint or averaged: what csas_merge.json and the model card record."""
    step: int | None
    """The step whose weights it holds."""
    best: Evaluation | None
    """The run's best evaluation (best/best.json), None without one."""
    last_step: int | None
    """The run's last step (lora/'s)."""
    defaulted: bool
    """Chosen for the user: a run directory given without --adapter."""

    def describe(self) -> str:
        """`best/ (step 10: eval_chrf 15.31, eval_loss 4.1234); lora/ is step 40`, for the line a merge says."""
        if self.kind == "checkpoint":
            return f"{self.path} (step {self.step})"
        if self.kind == "averaged":
            steps = read_json_record(self.path / AVERAGE_RECORD).get("steps") or []
            return f"{self.path} (the mean of steps {', '.join(map(str, steps))})"
        if self.kind == "best":
            if self.best is None:
                return f"{BEST_DIR}/ (its {BEST_DIR}/best.json is missing: the step is not known)"
            last = (f"; {ADAPTER_DIR}/ is step {self.last_step}" if self.last_step != self.best.step
                    else ", the last step's too")  # fmt: skip
            return f"{BEST_DIR}/ (step {self.best.step}: {self.best.scores()}){last}"
        if self.best is None:
            return f"{ADAPTER_DIR}/ (step {self.last_step}; the run has no {BEST_DIR}/: it made no evaluation)"
        return f"{ADAPTER_DIR}/ (step {self.last_step}); {BEST_DIR}/ is step {self.best.step}: {self.best.scores()}"


def choose_adapter(
    model: Path, run_dir: Path, named: Path, adapter: str | None = None, flag: str = "RUN_DIR"
) -> AdapterChoice:
    """The adapter `model` means with `--adapter` (None: not given). A run directory takes best/ where the run has
    one and `adapter` is not last, else lora/; a folder named itself (RUN/best, RUN/lora, a checkpoint) is that one,
    and an --adapter that says otherwise is refused. `run_dir` and `named`: the run and the adapter folder `model`
    resolves to (inference.source; RUN/lora for a run directory)."""
    check_adapter(adapter)
    record = RunRecord.read(run_dir)
    best, last_step = record.best, record.steps
    has_best = (run_dir / BEST_DIR / "adapter_config.json").is_file() and best is not None
    if Path(model).resolve() != run_dir.resolve():  # RUN/best, RUN/lora or a checkpoint: the folder says which
        folder = named.resolve()
        kind = ("best" if folder == (run_dir / BEST_DIR).resolve() else
                "last" if folder == (run_dir / ADAPTER_DIR).resolve() else
                "averaged" if (folder / AVERAGE_RECORD).is_file() else "checkpoint")  # fmt: skip
        if adapter is not None and adapter != kind:
            named_as = "a checkpoint's adapter" if kind == "checkpoint" else f"the {kind} adapter"
            raise SettingsError(f"--adapter {adapter}: {flag} {model} names {named_as} itself; pass the run directory "
                                f"{run_dir} with --adapter")  # fmt: skip
        match = STEP_DIR.match(named.parent.name)
        averaged = read_json_record(folder / AVERAGE_RECORD).get("steps") or [None] if kind == "averaged" else [None]
        step = (best.step if best else None) if kind == "best" else last_step if kind == "last" else (
            int(match.group(1)) if match else averaged[-1])  # fmt: skip
        return AdapterChoice(run_dir, named, kind, step, best, last_step, defaulted=False)
    if adapter == "best" and not has_best:
        raise ModelError(f"--adapter best: {run_dir} has no {BEST_DIR}/ (the run made no evaluation); pass --adapter "
                         "last for lora/, the last step's adapter")  # fmt: skip
    if has_best and adapter != "last":
        assert best is not None
        return AdapterChoice(run_dir, run_dir / BEST_DIR, "best", best.step, best, last_step, adapter is None)
    return AdapterChoice(run_dir, run_dir / ADAPTER_DIR, "last", last_step, best, last_step, adapter is None)


def chosen_source(model: Path, adapter: str | None, model_id: str | None, revision: str | None, flag: str,
                  which: str | None = None) -> tuple[ModelSource, AdapterChoice | None]:  # fmt: skip
    """`model` resolved, a run's to the adapter `choose_adapter` takes; the choice (None for a model directory)."""
    check_adapter(adapter)
    source = resolve_source(Path(model), which, model_id, flag=flag, revision=revision)
    if source.kind != RUN or source.adapter is None:
        if adapter is not None:
            raise SettingsError(f"--adapter {adapter}: {flag} {model} is a model directory, not a run; it has one set "
                                "of weights")  # fmt: skip
        return source, None
    assert source.run_dir is not None
    choice = choose_adapter(Path(model), source.run_dir, source.adapter, adapter, flag)
    if choice.path != source.adapter:
        source = resolve_source(choice.path, which, model_id, flag=flag, revision=revision)
    return source, choice


def is_within(path: Path, parent: Path) -> bool:
    path, parent = path.resolve(), parent.resolve()
    return path == parent or parent in path.parents


def check_out_dir(out_dir: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse, before anything loads, to replace what the user did not ask to replace (or a run itself)."""
    if is_within(run_dir, out_dir):
        raise OutputError(f"OUT_DIR {out_dir}: holds the run {run_dir}; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"OUT_DIR {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and run_state(out_dir) in ("finished", "unfinished"):
        raise OutputError(f"OUT_DIR {out_dir}: holds a csas run; choose another folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"OUT_DIR {out_dir}: exists and is not empty; pass --overwrite to replace it")


@dataclass(frozen=True)
class MergeResult:
    run_dir: Path
    out_dir: Path
    which: str
    dtype: str
    forced_bos_token_id: int | None
    both_directions: bool
    adapter: AdapterChoice | None = None


def merge_run(
    run_dir: Path,
    out_dir: Path,
    *,
    dtype: str = SAVE_DTYPE,
    overwrite: bool = False,
    model_id: str | None = None,
    revision: str | None = None,
    adapter: str | None = None,
    say: Callable[[str], None] | None = None,
) -> MergeResult:
    """Merge one finished run's adapter (RUN_DIR: best/ where it has one, or `adapter` best|last; RUN_DIR/best,
    RUN_DIR/lora, or a checkpoint folder of any run) into its unquantized base and save OUT_DIR (see the module
    docstring). `say` hears which adapter a run directory's default took."""
    check_dtype(dtype)
    check_adapter(adapter)
    source, choice = chosen_source(Path(run_dir), adapter, model_id, revision, "RUN_DIR")
    if choice is None:
        raise ModelError(f"RUN_DIR {run_dir}: a model directory, not a csas run; there is no adapter to merge")
    assert source.run_dir is not None and source.adapter is not None
    out_dir = Path(out_dir)
    holder = lock_holder(source.run_dir)
    if holder is not None:
        raise OutputError(f"RUN_DIR {run_dir}: a csas process is training into it ({holder}); merge it once that ends")
    check_out_dir(out_dir, source.run_dir, overwrite)
    if say is not None and choice.defaulted:
        say(f"merging {choice.describe()}")
    merged, tokenizer, probe = merged_model(source, say)
    overrides = model_generation_overrides(tokenizer, source.spec.family, source.spec.source_langs)
    for name, value in overrides.items():
        setattr(merged.generation_config, name, value)
    directions = directions_of(source.spec.source_langs)
    if len(directions) == 1:
        # Saved in tokenizer_config.json: AutoTokenizer.from_pretrained(out) then prefixes the right source code.
        set_source_language(tokenizer, source.spec.family, directions[0])
    merged = merged.to(torch_dtype(dtype))
    record = {
        "which": source.which,
        "base_model_id": source.model_id,
        "base_revision": source.base_revision,
        "run_dir": str(source.run_dir.resolve()),
        "adapter": str(source.adapter.resolve()),
        "adapter_sha256": adapter_sha256(source.adapter),
        "adapter_choice": choice.kind,
        "adapter_step": choice.step,
        "term_annotation": source.term_annotation,
        "dtype": dtype,
        "directions": [str(d) for d in directions],
        "forced_bos_token_id": merged.generation_config.forced_bos_token_id,
        "merged": now_iso(),
    }
    staging = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        merged.save_pretrained(str(staging))
        follow_umask(staging)
        tokenizer.save_pretrained(str(staging))
        write_json_atomic(staging / MERGE_RECORD, record)
        write_card(staging, out_dir)
        verify_saved(staging, probe, dtype)
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return MergeResult(
        Path(run_dir), out_dir, source.which, dtype, record["forced_bos_token_id"], len(directions) > 1, choice
    )


def merged_model(source: ModelSource, say: Callable[[str], None] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Base (fp32, unquantized, CPU) + adapter, merged; also the adapter's logits on a probe, for verify_saved."""
    import torch

    base, tokenizer = load_weights(source, torch.float32, say)
    assert source.adapter is not None
    model = apply_adapter(base, source.adapter)
    model.eval()
    probe = probe_inputs(tokenizer, source, model.get_base_model().config)
    with torch.inference_mode():
        probe["logits"] = model(**probe["inputs"]).logits.float()
    try:
        merged = model.merge_and_unload(safe_merge=True)
    except ValueError as exc:  # safe_merge found NaNs: the adapter is broken
        raise ModelError(f"{source.adapter}: cannot merge the adapter ({one_line(exc)})") from None
    return merged, tokenizer, probe


def probe_inputs(tokenizer: Any, source: ModelSource, config: Any) -> dict[str, Any]:
    """Encoder and decoder inputs from one sentence of the model's (first) source language."""
    import torch

    direction = directions_of(source.spec.source_langs)[0]
    set_source_language(tokenizer, source.spec.family, direction)
    ids = tokenizer([PROBE[direction.source]], return_tensors="pt")["input_ids"]
    decoder = torch.cat([torch.full((1, 1), config.decoder_start_token_id), ids[:, :-1]], dim=1)
    return {"inputs": {"input_ids": ids, "attention_mask": torch.ones_like(ids), "decoder_input_ids": decoder}}


def verify_saved(directory: Path, probe: dict[str, Any], dtype: str) -> None:
    """Reload with transformers alone; its logits must match the adapter's (to the saved dtype's precision)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    reloaded = AutoModelForSeq2SeqLM.from_pretrained(str(directory), dtype=torch.float32)
    reloaded.eval()
    if getattr(reloaded.config, "tie_word_embeddings", False):
        output, inputs = reloaded.get_output_embeddings(), reloaded.get_input_embeddings()
        if output is not None and not torch.equal(output.weight, inputs.weight):
            raise ModelError(f"{directory}: after reloading, lm_head no longer equals the shared embeddings")
    with torch.inference_mode():
        logits = reloaded(**probe["inputs"]).logits.float()
    reference = probe["logits"]
    error = (logits - reference).abs().max().item()
    scale = reference.abs().max().item() or 1.0
    tolerance = 1e-4 if dtype == "float32" else 5e-2
    if error > tolerance * max(scale, 1.0):
        raise ModelError(
            f"{directory}: the merged model does not reproduce the adapter's outputs (largest logit difference "
            f"{error:.3g}); the merge was not saved"
        )


def replace_dir(staging: Path, out_dir: Path) -> None:
    """Move the finished staging folder into place; an old OUT_DIR goes only once the new one is there."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
        else:
            out_dir.rmdir()
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
