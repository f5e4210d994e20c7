"""Inference: which model a command means, loading it for generation, and each family's generation settings.

A model source is one of three things, resolved by `resolve_source` before any weights load:

- a finished run directory (`run.json`, `lora/`, `finished.json`): the base named in run.json (or `--model-id`,
  since a cluster path differs from the training machine) with the adapter applied, and the run's tokenizer files;
- a merged directory (written by `csas merge`, or any transformers model directory with `--which`): loaded as is;
- a base model alone: `--which KEY`, from `--model-id` or the registry's hub id.

The base is always loaded unquantized, even for a QLoRA run: bf16 on a GPU with native bfloat16, else fp32.
Generation settings are per family and pure: M2M100 and mBART-50 must be forced to start with the target
language's code (on `generation_config`, the only place transformers 5 reads it), Marian needs nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import ModelError, SettingsError
from .features import set_languages
from .outputs import ADAPTER_DIR, BEST_DIR, FINISHED, RUN_JSON, run_state
from .registry import LANGUAGES, REGISTRY, Family, ModelSpec, check_which, other_language

ADAPTER_FOLDERS = (ADAPTER_DIR, BEST_DIR)
"""A run's adapters: lora/ (the last step) and best/ (the best evaluation); `--model RUN/best` uses the latter."""

MERGE_RECORD = "csas_merge.json"
"""Provenance written by `csas merge` into a merged directory; it names the registry key."""

RUN = "run"
MERGED = "merged"
BASE = "base"


@dataclass(frozen=True)
class Direction:
    """One translation direction, in csas languages (en, fr)."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}->{self.target}"


@dataclass(frozen=True)
class ModelSource:
    """What to load, resolved from the flags: weights, adapter, tokenizer and the registry key they belong to."""

    kind: str
    """run, merged or base."""
    which: str
    """Registry key: decides the family and the directions."""
    model_id: str
    """The weights to load: a run's base, the merged directory, or the base model."""
    adapter: Path | None
    """A run's adapter folder; None otherwise."""
    tokenizer_id: str
    """Where the tokenizer files are: the run or merged directory when it holds them, else the base."""
    base_model_id: str | None
    """The base a run or merged directory came from (what --compare-base scores); the model itself for a base."""
    label: str
    """How reports name this model."""
    flag: str
    """The flag that named the weights, for error messages (--model or --model-id)."""
    base_from_record: bool = False
    """True when model_id comes from run.json rather than --model-id (it may not exist on this machine)."""

    @property
    def spec(self) -> ModelSpec:
        return REGISTRY[self.which]

    @classmethod
    def in_training(cls, which: str, model_id: str, run_dir: Path) -> "ModelSource":
        """The model a run is training (its adapter still in memory), for the chrF evaluations during training."""
        return cls(
            kind=RUN, which=which, model_id=model_id, adapter=None, tokenizer_id=model_id, base_model_id=model_id,
            label=str(run_dir), flag="--model-id",
        )

    def base(self) -> "ModelSource":
        """The base model alone, for --compare-base."""
        if self.kind == BASE:
            raise SettingsError("--compare-base: the model is already a base model; pass --model RUN_OR_MERGED_DIR")
        if self.base_model_id is None:
            raise SettingsError(
                f"--compare-base: {self.label} does not record its base model; pass --model-id BASE"
            )
        return ModelSource(
            kind=BASE, which=self.which, model_id=self.base_model_id, adapter=None, tokenizer_id=self.base_model_id,
            base_model_id=self.base_model_id, label=self.base_model_id, flag="--model-id",
            base_from_record=self.base_from_record,
        )  # fmt: skip


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(record, dict):
        raise ModelError(f"{path}: {what} is not a JSON object")
    return record


def has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file()


def resolve_source(
    model: Path | None, which: str | None, model_id: str | None, flag: str = "--model"
) -> ModelSource:
    """Turn `--model` / `--which` / `--model-id` into a ModelSource (reads small JSON files, loads no weights).

    `--model-id` always means the base: the base a run's adapter is applied to, the base --compare-base scores
    for a merged directory, or the model itself with `--which` alone. `flag` names `model` in messages.
    """
    if which is not None:
        check_which(which)
    if model is None:
        if which is None:
            raise SettingsError(
                "pass --model RUN_OR_MERGED_DIR, or --which KEY (with --model-id PATH) for a base model"
            )
        base_id = model_id or REGISTRY[which].hub_id
        return ModelSource(
            kind=BASE, which=which, model_id=base_id, adapter=None, tokenizer_id=base_id, base_model_id=base_id,
            label=base_id, flag="--model-id",
        )  # fmt: skip
    model = Path(model)
    if not model.exists():
        raise ModelError(f"{flag} {model}: no such directory")
    if not model.is_dir():
        raise ModelError(f"{flag} {model}: not a directory (expected a run or merged model directory)")
    if model.name in ADAPTER_FOLDERS and (model / "adapter_config.json").is_file():
        parent_state = run_state(model.parent)
        if parent_state in ("finished", "unfinished"):  # RUN/best (the best evaluation's adapter) or RUN/lora
            return run_source(model.parent, parent_state, which, model_id, flag, adapter=model)
    state = run_state(model)
    if state in ("finished", "unfinished"):
        return run_source(model, state, which, model_id, flag)
    if (model / "config.json").is_file():
        return merged_source(model, which, model_id, flag)
    raise ModelError(
        f"{flag} {model}: neither a csas run ({RUN_JSON}, {ADAPTER_DIR}/, {FINISHED}) nor a model directory "
        "(config.json)"
    )


def run_source(
    run_dir: Path, state: str, which: str | None, model_id: str | None, flag: str, adapter: Path | None = None
) -> ModelSource:
    """A finished run with its final adapter (lora/), or with `adapter` (its best/ folder)."""
    if state != "finished":
        raise ModelError(
            f"{flag} {run_dir}: an unfinished run (no {FINISHED}); finish it with `csas finetune ... --resume auto`"
        )
    if not (run_dir / RUN_JSON).is_file():
        raise ModelError(f"{flag} {run_dir}: no {RUN_JSON}; cannot tell which model this run trained")
    plan = read_json_object(run_dir / RUN_JSON, "the run record").get("plan")
    if not isinstance(plan, dict) or plan.get("which") not in REGISTRY or not isinstance(plan.get("model_id"), str):
        raise ModelError(f"{flag} {run_dir}: {RUN_JSON} has no plan with a registry key and a model id")
    run_which = plan["which"]
    if which is not None and which != run_which:
        raise SettingsError(f"--which {which}: {run_dir} is a {run_which} run")
    label = str(run_dir if adapter is None else adapter)
    adapter = adapter or run_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"{flag} {run_dir}: no adapter ({ADAPTER_DIR}/adapter_config.json is missing)")
    base_id = model_id or plan["model_id"]
    return ModelSource(
        kind=RUN, which=run_which, model_id=base_id, adapter=adapter,
        tokenizer_id=str(run_dir) if has_tokenizer(run_dir) else base_id, base_model_id=base_id,
        label=label, flag="--model-id", base_from_record=model_id is None,
    )  # fmt: skip


def merged_source(directory: Path, which: str | None, model_id: str | None, flag: str) -> ModelSource:
    record: dict[str, Any] = {}
    if (directory / MERGE_RECORD).is_file():
        record = read_json_object(directory / MERGE_RECORD, "the merge record")
    recorded = record.get("which")
    if recorded is not None and recorded not in REGISTRY:
        raise ModelError(f"{directory / MERGE_RECORD}: unknown registry key {recorded!r}")
    if which is not None and recorded is not None and which != recorded:
        raise SettingsError(f"--which {which}: {directory} is a merged {recorded} model")
    key = which or recorded
    if key is None:
        raise SettingsError(
            f"{flag} {directory}: a model directory without {MERGE_RECORD}; pass --which KEY to say which registry "
            "model it is"
        )
    base_id = model_id or record.get("base_model_id")
    return ModelSource(
        kind=MERGED, which=key, model_id=str(directory), adapter=None,
        tokenizer_id=str(directory) if has_tokenizer(directory) else (base_id or str(directory)),
        base_model_id=base_id, label=str(directory), flag=flag, base_from_record=model_id is None,
    )  # fmt: skip


def resolve_direction(spec: ModelSpec, source_lang: str | None) -> Direction:
    """The direction a model translates: its only source language, or --source-lang when it trains both ways."""
    if source_lang is None:
        if len(spec.source_langs) > 1:
            both = " and ".join(f"{s}->{other_language(s)}" for s in spec.source_langs)
            raise SettingsError(f"--source-lang: {spec.key} translates both ways ({both}); pass --source-lang en or fr")
        source = spec.source_langs[0]
    else:
        source = source_lang.strip().lower()
        if source not in LANGUAGES:
            raise SettingsError(f"--source-lang: expected en or fr, got {source_lang!r}")
        if source not in spec.source_langs:
            only = ", ".join(f"{s}->{other_language(s)}" for s in spec.source_langs)
            raise SettingsError(f"--source-lang {source}: {spec.key} translates {only} only")
    return Direction(source, other_language(source))


# -- per-family generation settings (pure) -------------------------------------------------------------------


def language_token_id(tokenizer: Any, family: Family, lang: str) -> int | None:
    """The token generation must start with for target `lang`: its language code; None for Marian.

    M2M100 codes ("fr") name tokens "__fr__", which only `get_lang_id` resolves; mBART-50 codes ("fr_XX") are the
    tokens themselves.
    """
    code = family.code(lang)
    if code is None:
        return None
    get_lang_id = getattr(tokenizer, "get_lang_id", None)
    try:
        token_id = get_lang_id(code) if get_lang_id is not None else tokenizer.convert_tokens_to_ids(code)
    except KeyError:
        token_id = None
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ModelError(f"the {type(tokenizer).__name__} has no language token for {code!r}")
    return int(token_id)


def set_source_language(tokenizer: Any, family: Family, direction: Direction) -> None:
    """M2M100 and mBART-50 tokenizers prefix sources with src_lang's code (and must know tgt_lang); Marian: no-op."""
    set_languages(tokenizer, family, direction.source, direction.target)


def generation_overrides(tokenizer: Any, family: Family, direction: Direction) -> dict[str, Any]:
    """Fields to set on `generation_config` for `direction`: the forced first token for families with codes."""
    token_id = language_token_id(tokenizer, family, direction.target)
    return {} if token_id is None else {"forced_bos_token_id": token_id}


@dataclass(frozen=True)
class GenerationSettings:
    """How translations are generated: beam search width, length cap, sentences per batch."""

    num_beams: int = 4
    max_new_tokens: int = 256
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


# -- loading ---------------------------------------------------------------------------------------------------


def inference_device() -> Any:
    import torch

    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def inference_dtype(device: Any) -> Any:
    """bf16 on a GPU that computes it natively (emulated bf16 is slow, fp16 overflows BART-family layers), else fp32."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float32


@dataclass
class LoadedModel:
    """A model ready to generate: weights (with the adapter, if any) in eval mode, and its tokenizer."""

    model: Any
    tokenizer: Any
    source: ModelSource
    device: Any

    @property
    def family(self) -> Family:
        return self.source.spec.family

    @property
    def transformers_model(self) -> Any:
        """The underlying transformers model: its generation_config is the one generate() reads (peft delegates)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if get_base is not None else self.model

    @property
    def max_source_tokens(self) -> int:
        """Longest input the model takes: the tokenizer's limit, and the position table for fixed-position families."""
        limits = [getattr(self.tokenizer, "model_max_length", None)]
        if self.family.fixed_positions:
            limits.append(getattr(self.transformers_model.config, "max_position_embeddings", None))
        usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
        return min(usable) if usable else 1024

    def use_direction(self, direction: Direction) -> None:
        """Point tokenizer and generation config at one direction."""
        set_source_language(self.tokenizer, self.family, direction)
        config = self.transformers_model.generation_config
        for name, value in generation_overrides(self.tokenizer, self.family, direction).items():
            setattr(config, name, value)

    def generate_ids(self, input_ids: Sequence[Sequence[int]], settings: GenerationSettings) -> Any:
        """Token ids generated for one batch of tokenized sources (a tensor, decoder start token first)."""
        import torch

        batch = self.tokenizer.pad({"input_ids": [list(ids) for ids in input_ids]}, return_tensors="pt")
        with torch.inference_mode():
            # Keyword arguments only: PeftModelForSeq2SeqLM.generate takes no positional ones (peft#232).
            return self.model.generate(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
                num_beams=settings.num_beams,
                max_new_tokens=settings.max_new_tokens,
                do_sample=False,
            )

    def decode(self, ids: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def release(self) -> None:
        """Free the weights (before --compare-base loads a second model)."""
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass


def reflag(exc: ModelError, source: ModelSource) -> ModelError:
    """modeling's messages name --model-id; say which flag or record the path really came from."""
    message = str(exc)
    if source.flag != "--model-id":
        message = message.replace("--model-id ", f"{source.flag} ", 1)
    elif source.base_from_record:
        message += f" (the base recorded in {RUN_JSON} or {MERGE_RECORD}; pass --model-id PATH to use another copy)"
    return ModelError(message)


def load_weights(source: ModelSource, dtype: Any) -> tuple[Any, Any]:
    """The tokenizer and the unquantized weights of `source.model_id` in `dtype`, checked against the key's family."""
    from .modeling import check_loading_info, load_config, load_tokenizer, one_line, quiet_libraries

    quiet_libraries()
    from transformers import AutoModelForSeq2SeqLM

    try:
        config = load_config(source.model_id, source.spec.family, source.which)
        tokenizer = load_tokenizer(source.tokenizer_id)
        try:
            model, info = AutoModelForSeq2SeqLM.from_pretrained(
                source.model_id, config=config, dtype=dtype, use_safetensors=True, trust_remote_code=False,
                output_loading_info=True,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - truncated files, missing safetensors, ...
            raise ModelError(f"--model-id {source.model_id}: cannot load the model ({one_line(exc)})") from None
        check_loading_info(info, source.model_id)
    except ModelError as exc:
        raise reflag(exc, source) from None
    return model, tokenizer


def load_for_inference(source: ModelSource, device: Any = None) -> LoadedModel:
    """Load tokenizer and unquantized weights, apply the adapter, switch to eval mode."""
    device = device if device is not None else inference_device()
    model, tokenizer = load_weights(source, inference_dtype(device))
    if source.adapter is not None:
        model = apply_adapter(model, source.adapter)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, device=device)


def apply_adapter(model: Any, adapter: Path) -> Any:
    """The base wrapped with the run's LoRA adapter (inference mode: nothing trainable, no dropout)."""
    from peft import PeftModel

    from .modeling import one_line

    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except Exception as exc:  # noqa: BLE001 - a damaged adapter or one made for another base
        raise ModelError(f"{adapter}: cannot apply the adapter to its base ({one_line(exc)})") from None


__all__ = [
    "BASE",
    "Direction",
    "GenerationSettings",
    "LoadedModel",
    "MERGED",
    "MERGE_RECORD",
    "ModelSource",
    "RUN",
    "generation_overrides",
    "inference_dtype",
    "language_token_id",
    "load_for_inference",
    "load_weights",
    "resolve_direction",
    "resolve_source",
    "set_source_language",
]
