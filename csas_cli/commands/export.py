"""`csas export`: a run or merged model converted to CTranslate2, for translation many times faster than `generate`.

A run (RUN, RUN/best or a checkpoint folder) is merged first, as `csas merge` merges it (float32, checked), into a
temporary folder that is removed afterwards; a merged directory is converted as it is. The conversion is
CTranslate2's own converter with csas's two changes (inference/ctranslate.py), at `--quantization`:

- int8 (the default): 8-bit weights, the fastest on a CPU and a quarter of the size; a GPU computes it as
  int8_float16 where it can;
- int8_float16: 8-bit weights, float16 activations: for GPUs;
- float16: half the size, for GPUs (a CPU computes it in float32);
- float32: the model's own precision, for outputs as close to `generate`'s as the two engines allow.

Of a run directory the export takes best/, the best evaluation's adapter, where the run has one, else lora/
(`--adapter best|last`), as `csas merge` does. OUT_DIR holds CTranslate2's model.bin, config.json and
shared_vocabulary.json, the tokenizer files (the source language set for one-direction models, as `csas merge`
saves it), csas_export.json: the registry key, base, run, which adapter and its sha256, quantization, the decoding
settings taken from the model's generation_config, the engines' versions, and the probe's result; and README.md,
the model card (cards.py). It is written under a temporary name, checked, then renamed: before the rename
the export translates a probe batch (the first held-out sentences shipped with csas, in each direction the model
translates) next to the merged model's `generate`, and an export that does not agree with it is not saved.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..cards import write_card
from ..errors import ModelError, SettingsError
from ..files import now_iso, read_json_record, write_json_atomic
from ..inference.ctranslate import QUANTIZATIONS, ExportedModel, convert, decoding_settings, import_ctranslate2
from ..inference.generation import GenerationSettings, LoadedModel, Runtime, load_weights
from ..inference.source import EXPORT_RECORD, EXPORTED, MERGE_RECORD, RUN, ModelSource, resolve_source
from ..languages import Direction, directions_of, set_source_language
from ..progress import counted, say
from ..training.merging import AdapterChoice, adapter_sha256, check_out_dir, chosen_source, merge_run, replace_dir

FORMATS = ("ctranslate2",)
PROBE_SENTENCES = 16
"""Held-out sentences per direction the export must translate as the merged model does."""
PROBE_SETTINGS = GenerationSettings(num_beams=4, max_new_tokens=64, batch_size=PROBE_SENTENCES)
AGREEMENT = {"float32": 90.0, "float16": 80.0, "int8_float16": 60.0, "int8": 60.0}
"""Least chrF of the export's probe translations against the merged model's, by quantization: float32 decodes
the same network (differences are near ties), 8-bit weights change some words. A broken conversion scores under
20."""


def check_export_options(export_format: str, quantization: str) -> None:
    if export_format not in FORMATS:
        raise SettingsError(f"--format: expected one of {', '.join(FORMATS)}, got {export_format!r}")
    if quantization not in QUANTIZATIONS:
        raise SettingsError(f"--quantization: expected one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    which: str
    quantization: str
    probe: dict[str, Any]


def probe_sentences(direction: Direction) -> list[str]:
    """The first shipped held-out sentences in `direction`'s source language."""
    from ..data.pairs import load_examples
    from ..shipped import HELDOUT_PAIRS

    examples = load_examples(HELDOUT_PAIRS, [direction.source]).examples
    return [ex.source for ex in examples[:PROBE_SENTENCES]]


def export_model(
    model: Path,
    out_dir: Path,
    *,
    export_format: str = "ctranslate2",
    quantization: str = "int8",
    overwrite: bool = False,
    which: str | None = None,
    model_id: str | None = None,
    revision: str | None = None,
    adapter: str | None = None,
    say: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export MODEL (a run: best/ where it has one, or `adapter` best|last; RUN/best, RUN/lora, a checkpoint folder
    or a merged directory) to OUT_DIR (see the module docstring)."""
    check_export_options(export_format, quantization)
    import_ctranslate2()
    source, choice = chosen_source(Path(model), adapter, model_id, revision, "MODEL", which)
    if source.kind == EXPORTED:
        raise ModelError(f"MODEL {model}: already an exported model; export the run or merged model it came from")
    out_dir = Path(out_dir)
    check_out_dir(out_dir, source.run_dir or Path(source.model_id), overwrite)
    tell = say or (lambda line: None)
    pid = os.getpid()
    merged_dir = out_dir.parent / f".{out_dir.name}.merged-{pid}"
    staging = out_dir.parent / f".{out_dir.name}.tmp-{pid}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        merged = source
        if source.kind == RUN and choice is not None:
            tell(f"merging into its base first: {choice.describe()}")
            merge_run(choice.path, merged_dir, dtype="float32", overwrite=True, model_id=model_id, revision=revision,
                      say=say)  # fmt: skip
            merged = resolve_source(merged_dir, None, None, flag="MODEL")
        record = export_merged(merged, source, staging, quantization, tell, choice)
        write_card(staging, out_dir)
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(merged_dir, ignore_errors=True)
    return ExportResult(out_dir, source.which, quantization, record["probe"])


def export_merged(
    merged: ModelSource, source: ModelSource, staging: Path, quantization: str, tell: Callable[[str], None],
    choice: AdapterChoice | None = None,
) -> dict[str, Any]:
    """Convert the merged model into `staging`, with its tokenizer and csas_export.json, and check it there."""
    import ctranslate2
    import torch
    import transformers

    from ..inference.generation import translate_texts

    model, tokenizer = load_weights(merged, torch.float32)
    model.eval()
    spec = merged.spec
    directions = directions_of(spec.source_langs)
    loaded = LoadedModel(model=model, tokenizer=tokenizer, family=spec.family, device=torch.device("cpu"))
    probes = {d: probe_sentences(d) for d in directions}
    expected = {d: translate_texts(loaded, probes[d], d, PROBE_SETTINGS).lines for d in directions}
    decoding = decoding_settings(model.generation_config, tokenizer)
    tell(f"converting {source.label} to CTranslate2 ({quantization})")
    shutil.rmtree(staging, ignore_errors=True)
    convert(model, tokenizer, Path(merged.model_id), staging, quantization)
    if len(directions) == 1:  # saved in tokenizer_config.json, as csas merge does
        set_source_language(tokenizer, spec.family, directions[0])
    tokenizer.save_pretrained(str(staging))
    merge_record = read_json_record(Path(merged.model_id) / MERGE_RECORD)
    record = {
        "which": source.which,
        "format": "ctranslate2",
        "quantization": quantization,
        "base_model_id": source.base_model_id,
        "base_revision": source.base_revision,
        "run_dir": str(source.run_dir.resolve()) if source.run_dir else merge_record.get("run_dir"),
        "adapter": str(source.adapter.resolve()) if source.adapter else merge_record.get("adapter"),
        "adapter_sha256": adapter_sha256(source.adapter) if source.adapter else merge_record.get("adapter_sha256"),
        "adapter_choice": choice.kind if choice else merge_record.get("adapter_choice"),
        "adapter_step": choice.step if choice else merge_record.get("adapter_step"),
        "term_annotation": source.term_annotation,
        "merged_model": None if source.kind == RUN else str(Path(source.model_id).resolve()),
        "directions": [str(d) for d in directions],
        "decoding": decoding,
        "max_source_tokens": loaded.max_source_tokens,
        "ctranslate2_version": ctranslate2.__version__,
        "transformers_version": transformers.__version__,
        "exported": now_iso(),
    }
    write_json_atomic(staging / EXPORT_RECORD, record)
    record["probe"] = check_export(staging, merged, quantization, probes, expected)
    write_json_atomic(staging / EXPORT_RECORD, record)
    return record


def check_export(
    staging: Path, merged: ModelSource, quantization: str, probes: dict[Direction, list[str]],
    expected: dict[Direction, list[str]],
) -> dict[str, Any]:
    """Translate the probe batch with the export; refuse it when it does not agree with the merged model."""
    from ..inference.ctranslate import load_exported
    from ..inference.generation import translate_texts
    from ..inference.scoring import score

    exported: ExportedModel = load_exported(staging, merged.spec.family, Runtime(device="cpu"), flag="OUT_DIR")
    got: list[str] = []
    wanted: list[str] = []
    for direction, sentences in probes.items():
        got += translate_texts(exported, sentences, direction, PROBE_SETTINGS).lines
        wanted += expected[direction]
    identical = sum(a == b for a, b in zip(got, wanted))
    agreement = score(got, wanted)[1]
    probe = {"sentences": len(got), "identical": identical, "chrf_against_generate": round(agreement, 2)}
    if agreement < AGREEMENT[quantization]:
        raise ModelError(
            f"OUT_DIR: the {quantization} export does not translate as the merged model does (chrF {agreement:.1f} "
            f"against generate's translations of {counted(len(got), 'probe sentence')}, {identical} identical; "
            f"at least "
            f"{AGREEMENT[quantization]:.0f} expected); nothing was saved"
        )
    return probe


__all__ = ["AGREEMENT", "ExportResult", "FORMATS", "check_export_options", "export_model", "probe_sentences", "run"]


def run(model: Path, out_dir: Path, *, export_format: str = "ctranslate2", quantization: str = "int8",
        overwrite: bool = False, which: str | None = None, model_id: str | None = None,
        revision: str | None = None, adapter: str | None = None) -> None:  # fmt: skip
    """`csas export`: export, then say how the probe went and where the model is."""
    result = export_model(model, out_dir, export_format=export_format, quantization=quantization,
                          overwrite=overwrite, which=which, model_id=model_id, revision=revision, adapter=adapter,
                          say=say)  # fmt: skip
    probe = result.probe
    say(f"probe: {probe['identical']} of {counted(probe['sentences'], 'sentence')} as generate translates them, chrF "
        f"{probe['chrf_against_generate']:.1f} against its translations")  # fmt: skip
    sys.stdout.write(f"exported: {result.out_dir}\n")
