"""CTranslate2: converting a merged model to its format, and translating with an exported directory.

CTranslate2 (`pip install 'csas[fast]'`) is the inference engine built for these families: a C++ encoder-decoder
with int8/float16 weights and its own beam search, many times faster than `generate` on a CPU. csas converts with
CTranslate2's own converter, with two changes for what transformers 5 and csas's models hold:

- Marian: CTranslate2's loader drops the `<pad>` token and starts the decoder from a zero vector, which equals
  transformers' start (the pad token's embedding) only while that row is zero. It is not once the embeddings were
  trained (a full fine-tune, or csas's tiny models), so csas keeps `<pad>` as the decoder's start token and
  suppresses it in the output, as transformers' `bad_words_ids` does: the same computation for every checkpoint.
- mBART-50: the converter reads `config.normalize_before`, which transformers 5's MBartConfig no longer has; mBART
  normalises before each layer, so csas sets it, as the converter's M2M100 loader does. And the decoder starts
  from the model's `decoder_start_token_id` (`</s>`), as `generate` does: the converter leaves it unset unless the
  config names a tokenizer class.

Decoding follows `generate` as csas calls it: the beam width and the token budget of `--num-beams` and
`--max-new-tokens` (the target language's code, forced for M2M100 and mBART-50, is the first of the budget, as in
`generate`), and the model's generation_config for the rest (length penalty, repetition penalty, no-repeat n-gram
size, suppressed tokens), recorded at export in `csas_export.json`. Beam search's stopping rule differs between the two engines
(decoding_settings maps it); what remains, and is why float32 outputs are not always identical to `generate`'s:
that mapping is close rather than exact for transformers' default rule, and float32 sums in another order, which
decides near ties.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ModelError, SettingsError
from ..languages import Direction, source_language, target_prefix
from ..registry import Family
from .source import EXPORT_RECORD

MODEL_FILE = "model.bin"
CONFIG_FILE = "config.json"
VOCABULARIES = ("shared_vocabulary.json", "shared_vocabulary.txt")
QUANTIZATIONS = ("int8", "int8_float16", "float16", "float32")
INSTALL = "pip install 'csas[fast]' (or pip install ctranslate2)"


def import_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise SettingsError(f"CTranslate2 is not installed: {INSTALL}") from None
    return ctranslate2


def check_exported_files(directory: Path, flag: str) -> None:
    """The files csas needs in an exported directory, each named when missing."""
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise ModelError(f"{flag} {directory}: an exported model without {name}; export it again")
    if not any((directory / name).is_file() for name in VOCABULARIES):
        raise ModelError(f"{flag} {directory}: an exported model without {VOCABULARIES[0]}; export it again")
    if not (directory / "tokenizer_config.json").is_file():
        raise ModelError(f"{flag} {directory}: an exported model without its tokenizer (tokenizer_config.json); "
                         "export it with `csas export`, which copies the tokenizer files")  # fmt: skip


# -- decoding settings (pure) ---------------------------------------------------------------------------------------


DECODING_OPTIONS = ("length_penalty", "repetition_penalty", "no_repeat_ngram_size", "patience", "suppress_sequences")
"""The recorded decoding settings that are translate_batch options (forced_end shortens the budget instead)."""
PATIENCE = {True: 1.0, False: 3.0, "never": 6.0}
"""CTranslate2's beam patience for each of transformers' `early_stopping` values (see decoding_settings)."""


def decoding_settings(generation_config: Any, tokenizer: Any) -> dict[str, Any]:
    """The translate_batch options that make CTranslate2 decode as `generate` does with this generation_config:
    its length and repetition penalties, no-repeat n-gram size, suppressed tokens (`bad_words_ids`) and stopping
    rule. CTranslate2 stops once `patience x num_beams` hypotheses have ended: patience 1 is `early_stopping=True`;
    transformers' default (False) searches on while a running hypothesis may still beat the finished ones, which
    patience 3 follows best (float32, the 185 held-out English sentences: the tiny OPUS-MT 185 identical, 184 with
    patience 2, 170 with 1; the tiny mBART-50 181, 179 and 174; with early_stopping=True and patience 1, 185 of 185
    for OPUS-MT)."""

    def value(name: str, default: Any) -> Any:
        found = getattr(generation_config, name, None)
        return default if found is None else found

    suppressed = [tokenizer.convert_ids_to_tokens(list(ids)) for ids in value("bad_words_ids", [])]
    early = value("early_stopping", False)
    return {
        "length_penalty": float(value("length_penalty", 1.0)),
        "repetition_penalty": float(value("repetition_penalty", 1.0)),
        "no_repeat_ngram_size": int(value("no_repeat_ngram_size", 0)),
        "patience": PATIENCE.get(early, PATIENCE[False]),
        "suppress_sequences": suppressed,
        "forced_end": value("forced_eos_token_id", None) is not None,
    }


# -- conversion -------------------------------------------------------------------------------------------------------


@contextmanager
def csas_loaders() -> Iterator[None]:
    """CTranslate2's transformers loaders with csas's two changes (see the module docstring), for one conversion."""
    from ctranslate2.converters import transformers as ct2

    class MarianLoader(ct2.MarianMTLoader):
        def get_model_spec(self, model: Any) -> Any:
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return ct2.BartLoader.get_model_spec(self, model)  # the pad row stays

        def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
            config.eos_token = tokenizer.eos_token
            config.unk_token = tokenizer.unk_token
            config.decoder_start_token = tokenizer.pad_token

        def set_decoder(self, spec: Any, decoder: Any) -> None:
            ct2.BartLoader.set_decoder(self, spec, decoder)

        def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
            return ct2.BartLoader.get_vocabulary(self, model, tokenizer)

    class MBartLoader(ct2.MBartLoader):
        def get_model_spec(self, model: Any) -> Any:
            model.config.normalize_before = True
            return super().get_model_spec(model)

        def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
            ct2.BartLoader.set_config(self, config, model, tokenizer)  # the model's decoder start token, as generate
            if config.bos_token is None:  # a tokenizer that names no <s> (CTranslate2 needs a string)
                config.bos_token = tokenizer.convert_ids_to_tokens(model.config.bos_token_id or 0)

    loaders = ct2._MODEL_LOADERS
    kept = {name: loaders.get(name) for name in ("MarianConfig", "MBartConfig")}
    loaders["MarianConfig"], loaders["MBartConfig"] = MarianLoader(), MBartLoader()
    try:
        yield
    finally:
        for name, loader in kept.items():
            if loader is not None:
                loaders[name] = loader


def convert(model: Any, tokenizer: Any, model_dir: Path, out_dir: Path, quantization: str) -> None:
    """Convert the loaded transformers `model` (saved at `model_dir`, whose config the converter reads) into
    `out_dir`, with `quantization`."""
    import_ctranslate2()
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        """Takes csas's loaded model and tokenizer (read with csas's checks) instead of loading them again."""

        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            return model

        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            return tokenizer

    with csas_loaders():
        Converter(str(model_dir)).convert(str(out_dir), quantization=quantization, force=True)


# -- translating ---------------------------------------------------------------------------------------------------


@dataclass
class ExportedModel:
    """An exported model ready to translate: the CTranslate2 translator, the tokenizer and the decoding settings.
    It offers what translate_texts uses of a LoadedModel (generation.py)."""

    translator: Any
    tokenizer: Any
    family: Family
    decoding: dict[str, Any]
    source_limit: int
    device: str
    prefix: list[str] | None = field(default=None)

    @property
    def max_source_tokens(self) -> int:
        return self.source_limit

    @contextmanager
    def direction(self, direction: Direction) -> Iterator[None]:
        with source_language(self.tokenizer, self.family, direction):
            self.prefix = target_prefix(self.tokenizer, self.family, direction)
            try:
                yield
            finally:
                self.prefix = None

    def translate_batches(
        self, batches: Sequence[Sequence[Sequence[int]]], settings: Any, constraints: Sequence[Any] | None = None
    ) -> Iterator[list[str]]:
        """Each batch of tokenized sources translated, in order (generation.translate_encoded makes the batches). On
        a CPU every batch is handed to CTranslate2 at once, which translates as many in parallel as it has workers.
        CTranslate2's beam search takes no term constraints (constraints.term_constraints_for refuses them first)."""
        if constraints is not None:
            raise ModelError("an exported (CTranslate2) model cannot decode with term constraints")
        options = {key: self.decoding[key] for key in DECODING_OPTIONS if key in self.decoding}
        if not options.get("suppress_sequences"):
            options.pop("suppress_sequences", None)
        # generate forces </s> as the last of max_new_tokens when forced_eos_token_id is set: one token fewer to write
        budget = settings.max_new_tokens - (1 if self.decoding.get("forced_end") else 0)
        pending = []
        for input_ids in batches:
            tokens = [self.tokenizer.convert_ids_to_tokens(list(ids)) for ids in input_ids]
            pending.append(self.translator.translate_batch(
                tokens, target_prefix=None if self.prefix is None else [self.prefix] * len(tokens),
                beam_size=settings.num_beams, max_decoding_length=max(budget, 1), max_input_length=0,
                asynchronous=True, **options,
            ))  # fmt: skip
        for results in pending:
            try:
                hypotheses = [result.result().hypotheses[0] for result in results]
            except (RuntimeError, ValueError) as exc:  # a damaged model.bin, a token the vocabulary lacks, ...
                raise ModelError(f"CTranslate2 could not translate a batch ({' '.join(str(exc).split())})") from None
            ids = [self.tokenizer.convert_tokens_to_ids(tokens) for tokens in hypotheses]
            yield self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def release(self) -> None:
        self.translator = None


def read_vocabulary(directory: Path) -> list[str]:
    """The exported model's target vocabulary (CTranslate2 writes a JSON list, older versions one token a line)."""
    import json

    for name in VOCABULARIES:
        path = directory / name
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
                tokens = json.loads(text) if name.endswith(".json") else text.split("\n")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelError(f"{path}: cannot read the vocabulary ({exc})") from None
            if isinstance(tokens, list):
                return [t for t in tokens if isinstance(t, str)]
            raise ModelError(f"{path}: not a list of tokens")
    return []


def usable_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def translator_threads(device: str, threads: int) -> tuple[int, int]:
    """(inter_threads, intra_threads) for a CTranslate2 translator: on a CPU `threads` batches in parallel (0: one
    per usable core), one thread each; on a GPU one batch at a time (see load_exported)."""
    return (1, threads) if device == "cuda" else (threads or usable_cores(), 1)


def load_exported(directory: Path, family: Family, runtime: Any, flag: str = "--model") -> ExportedModel:
    """The exported directory's translator and tokenizer. On a CPU, CTranslate2 translates runtime.threads batches
    in parallel (default: one per usable core), each on one thread: batches of short sentences are too small to
    share out over threads (measured on the tiny models: int8 on two threads per batch ran at a tenth of the speed
    of two batches on one thread each). On a GPU, one batch at a time."""
    from ..modeling import load_tokenizer
    from .source import read_json_object

    ctranslate2 = import_ctranslate2()
    check_exported_files(directory, flag)
    record = read_json_object(directory / EXPORT_RECORD, "the export record") if (
        directory / EXPORT_RECORD).is_file() else {}  # fmt: skip
    try:
        tokenizer = load_tokenizer(str(directory), family)
    except ModelError as exc:
        raise ModelError(str(exc).replace("--model-id ", f"{flag} ", 1)) from None
    decoding = record.get("decoding")
    if not isinstance(decoding, dict):  # an export csas did not make: transformers' defaults, where they apply
        decoding = {"patience": PATIENCE[False], "suppress_sequences": []}
    vocabulary = set(read_vocabulary(directory))
    decoding = {**decoding, "suppress_sequences": [
        seq for seq in decoding.get("suppress_sequences") or [] if all(token in vocabulary for token in seq)]}
    device = runtime.resolved_device(cuda_available=ctranslate2.get_cuda_device_count() > 0)
    workers, threads = translator_threads(device, runtime.threads)
    try:
        translator = ctranslate2.Translator(str(directory), device=device, compute_type="default",
                                            inter_threads=workers, intra_threads=threads)  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{flag} {directory}: CTranslate2 cannot load it ({' '.join(str(exc).split())})") from None
    limit = record.get("max_source_tokens")
    limit = int(limit) if isinstance(limit, int) and limit > 0 else min(int(getattr(tokenizer, "model_max_length",
                                                                                  1024) or 1024), 1024)  # fmt: skip
    return ExportedModel(translator, tokenizer, family, decoding, limit, device)


__all__ = [
    "ExportedModel", "INSTALL", "QUANTIZATIONS", "check_exported_files", "convert", "decoding_settings",
    "import_ctranslate2", "load_exported", "translator_threads",
]  # fmt: skip
