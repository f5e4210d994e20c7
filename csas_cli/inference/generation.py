"""Generation: loading a model source for inference, each family's generation settings, and translating batches.

The base is always loaded unquantized, even for a QLoRA run: bf16 on a GPU with native bfloat16, else fp32.
Generation settings are per family and pure: M2M100 and mBART-50 must be forced to start with the target
language's code (on `generation_config`, the only place transformers 5 reads it), Marian needs nothing.

`translate_encoded` is the one generation loop: `csas translate` and `csas evaluate` call it through
`translate_texts`, and evaluation during training calls it on the validation pairs' token ids with the model in
training. It takes a LoadedModel (transformers' `generate`) or an exported model (ctranslate.py's ExportedModel,
CTranslate2's beam search), which offer the same few methods. Sentences are batched by token length (longest first, so running out of memory shows at once) and put
back in input order; a translation that contains a line break has it replaced by a space, so output line N always
belongs to input line N.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ModelError, SettingsError, one_line
from ..fields import check_bounds, setting
from ..languages import Direction, generation_overrides, source_language
from ..layout import RUN_JSON
from ..registry import Family
from .source import EXPORTED, MERGE_RECORD, ModelSource

# Everything str.splitlines() breaks on: none of it may survive inside one output line.
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ONE_LINE = str.maketrans({c: " " for c in _LINE_BREAKS})


@dataclass(frozen=True)
class GenerationSettings:
    """How translations are generated (`csas translate` and `csas evaluate` take these as options)."""

    num_beams: int = setting(4, "Beam search width (1: greedy).", at_least=1)
    """Beam search width; 1 is greedy decoding."""
    max_new_tokens: int = setting(256, "Most tokens generated per sentence.", at_least=1)
    """Most tokens generated per sentence (the language code and </s> count)."""
    batch_size: int = setting(16, "Sentences per batch (batches are sorted by length).", at_least=1)
    """Sentences per generation batch; batches are sorted by length, and the output put back in input order."""

    def __post_init__(self) -> None:
        check_bounds(self)


DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    """Where translation runs (`--device`, `--threads` of translate and evaluate)."""

    device: str = setting("auto", "Where to translate: auto (the GPU when there is one), cpu or cuda.")
    """auto (the GPU when there is one), cpu or cuda."""
    threads: int = setting(
        0, "CPU threads: torch threads, or batches in parallel for an exported model (0: default)."
    )
    """CPU threads: torch's thread count for `generate`, the batches CTranslate2 translates in parallel for an
    exported model (one thread each); 0: torch's default, one batch per usable core."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise SettingsError(f"--device: expected one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.threads < 0:
            raise SettingsError(f"--threads must be at least 0, got {self.threads}")

    def resolved_device(self, cuda_available: bool) -> str:
        if self.device == "cuda" and not cuda_available:
            raise SettingsError("--device cuda: no CUDA device is visible here; pass --device cpu")
        return "cuda" if self.device == "cuda" or (self.device == "auto" and cuda_available) else "cpu"


# -- a loaded model ----------------------------------------------------------------------------------------------


def inference_device(runtime: Runtime | None = None) -> Any:
    import torch

    name = (runtime or Runtime()).resolved_device(torch.cuda.is_available())
    return torch.device("cuda", 0) if name == "cuda" else torch.device("cpu")


def inference_dtype(device: Any) -> Any:
    """bf16 on a GPU that computes it natively (emulated bf16 is slow, fp16 overflows BART-family layers), else fp32."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float32


@dataclass
class LoadedModel:
    """A model ready to generate, and its tokenizer: loaded for inference, or the model a run is training."""

    model: Any
    tokenizer: Any
    family: Family
    device: Any

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

    @contextmanager
    def direction(self, direction: Direction) -> Iterator[None]:
        """Point the tokenizer and the generation config at one direction, and put back what they said before."""
        tokenizer, config = self.tokenizer, self.transformers_model.generation_config
        forced_bos = config.forced_bos_token_id
        with source_language(tokenizer, self.family, direction):
            for name, value in generation_overrides(tokenizer, self.family, direction).items():
                setattr(config, name, value)
            try:
                yield
            finally:
                config.forced_bos_token_id = forced_bos

    def generate_ids(
        self, input_ids: Sequence[Sequence[int]], settings: GenerationSettings, constraints: Any = None
    ) -> Any:
        """Token ids generated for one batch of tokenized sources (a tensor, decoder start token first);
        `constraints`, a constraints.BatchConstraints, puts the glossary's terms in."""
        import torch
        from transformers import LogitsProcessorList

        processors = LogitsProcessorList(
            [] if constraints is None else [constraints.processor(settings.num_beams, settings.max_new_tokens)]
        )

        batch = self.tokenizer.pad({"input_ids": [list(ids) for ids in input_ids]}, return_tensors="pt")
        with torch.inference_mode():
            # Keyword arguments only: PeftModelForSeq2SeqLM.generate takes no positional ones (peft#232).
            return self.model.generate(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
                num_beams=settings.num_beams,
                max_new_tokens=settings.max_new_tokens,
                do_sample=False,
                logits_processor=processors,
            )

    def decode(self, ids: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def translate_batches(
        self, batches: Sequence[Sequence[Sequence[int]]], settings: GenerationSettings,
        constraints: Sequence[Any] | None = None,
    ) -> Iterator[list[str]]:
        """Each batch of tokenized sources translated, in order, one after the other (`constraints`: each batch's
        constraints.BatchConstraints)."""
        for k, input_ids in enumerate(batches):
            yield self.decode(self.generate_ids(input_ids, settings, None if constraints is None else constraints[k]))

    def release(self) -> None:
        """Free the weights (before --compare-base loads a second model)."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# -- translating ---------------------------------------------------------------------------------------------------


def single_line(text: str) -> str:
    """`text` on one line: line breaks become spaces, ends stripped."""
    return text.translate(_ONE_LINE).strip()


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (ties keep input order)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def fit_length(ids: Sequence[int], limit: int) -> list[int]:
    """Cut a tokenized source to `limit` tokens, keeping its closing token (</s>) so the encoder sees an end."""
    ids = list(ids)
    return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]


def translate_encoded(
    loaded: LoadedModel,
    encoded: Sequence[Sequence[int]],
    settings: GenerationSettings,
    advance: Callable[[int], None] = lambda n: None,
    plan: Any = None,
) -> list[str]:
    """Translate tokenized sources (in the direction `loaded.direction` set) in length-sorted batches; one line per
    source, in input order; `advance(n)` is called after each batch of n sentences; `plan` (a
    constraints.ConstraintPlan, one entry per source) constrains the terms."""
    out = [""] * len(encoded)
    batches = length_sorted_batches([len(ids) for ids in encoded], settings.batch_size)
    inputs = [[encoded[j] for j in batch] for batch in batches]
    translated = (loaded.translate_batches(inputs, settings) if plan is None else
                  loaded.translate_batches(inputs, settings, [plan.batch(batch) for batch in batches]))  # fmt: skip
    for batch, lines in zip(batches, translated):
        for j, text in zip(batch, lines):
            out[j] = single_line(text)
        advance(len(batch))
    return out


@dataclass(frozen=True)
class Translation:
    lines: list[str]
    """One translation per input sentence, in input order; "" for an empty input line."""
    truncated: int
    """Inputs longer than the model takes, cut to fit."""


def translate_texts(
    loaded: LoadedModel,
    texts: Sequence[str],
    direction: Direction,
    settings: GenerationSettings,
    advance: Callable[[int], None] = lambda n: None,
    constraints: Any = None,
) -> Translation:
    """Translate `texts` with `loaded` in `direction`; `advance(n)` is called after each batch of n sentences;
    `constraints` (a constraints.TermConstraints) puts its glossary's target terms into the translations."""
    wanted = [i for i, text in enumerate(texts) if text.strip()]
    out = [""] * len(texts)
    if not wanted:
        return Translation(out, 0)
    limit = loaded.max_source_tokens
    with loaded.direction(direction):
        inputs = [texts[i].strip() for i in wanted]
        encoded = loaded.tokenizer(inputs)["input_ids"]
        truncated = sum(len(ids) > limit for ids in encoded)
        fitted = [fit_length(ids, limit) for ids in encoded]
        plan = None
        if constraints is not None:  # a cut source is constrained by what is left of it
            seen = [text if len(ids) <= limit else loaded.tokenizer.decode(fit, skip_special_tokens=True)
                    for text, ids, fit in zip(inputs, encoded, fitted)]  # fmt: skip
            plan = constraints.plan(loaded.tokenizer, seen)
        lines = translate_encoded(loaded, fitted, settings, advance, plan)
    for i, line in zip(wanted, lines):
        out[i] = line
    return Translation(out, truncated)


# -- loading -------------------------------------------------------------------------------------------------------


def reflag(exc: ModelError, source: ModelSource) -> ModelError:
    """modeling's messages name --model-id; say which flag or record the path really came from."""
    message = str(exc)
    if source.flag != "--model-id":
        message = message.replace("--model-id ", f"{source.flag} ", 1)
    elif source.base_from_record:
        message += f" (the base recorded in {RUN_JSON} or {MERGE_RECORD}; pass --model-id PATH to use another copy)"
    return ModelError(message)


def load_weights(source: ModelSource, dtype: Any, say: Callable[[str], None] | None = None) -> tuple[Any, Any]:
    """The tokenizer and the unquantized weights of `source.model_id` in `dtype`, checked against the key's family;
    `say` hears how pickled weights were read."""
    from ..modeling import from_pretrained, load_config, load_tokenizer, quiet_libraries

    quiet_libraries()
    family = source.spec.family
    try:
        config = load_config(source.model_id, family, source.which, source.revision_of(source.model_id))
        tokenizer = load_tokenizer(source.tokenizer_id, family, source.revision_of(source.tokenizer_id))
        model, weights = from_pretrained(
            source.model_id, config, revision=source.revision_of(source.model_id), dtype=dtype
        )
    except ModelError as exc:
        raise reflag(exc, source) from None
    notice = None if weights is None else weights.notice(source.model_id)
    if notice and say is not None:
        say(notice)
    return model, tokenizer


def load_for_inference(
    source: ModelSource, device: Any = None, say: Callable[[str], None] | None = None, runtime: Runtime | None = None
) -> Any:
    """A LoadedModel: tokenizer and unquantized weights, the adapter applied, in eval mode; or, for an exported
    directory, ctranslate.py's ExportedModel. `runtime` says where (and on how many CPU threads)."""
    runtime = runtime or Runtime()
    if source.kind == EXPORTED:
        from .ctranslate import load_exported

        return load_exported(Path(source.model_id), source.spec.family, runtime, source.flag)
    if runtime.threads:
        import torch

        torch.set_num_threads(runtime.threads)
    device = device if device is not None else inference_device(runtime)
    model, tokenizer = load_weights(source, inference_dtype(device), say)
    if source.adapter is not None:
        model = apply_adapter(model, source.adapter)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, family=source.spec.family, device=device)


def apply_adapter(model: Any, adapter: Path) -> Any:
    """The base wrapped with the run's LoRA adapter (inference mode: nothing trainable, no dropout)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except Exception as exc:  # noqa: BLE001 - a damaged adapter or one made for another base
        raise ModelError(f"{adapter}: cannot apply the adapter to its base ({one_line(exc)})") from None


__all__ = [
    "DEVICES", "GenerationSettings", "LoadedModel", "Runtime", "Translation", "apply_adapter", "fit_length",
    "inference_dtype", "length_sorted_batches", "load_for_inference", "load_weights", "single_line",
    "translate_encoded", "translate_texts",
]  # fmt: skip
