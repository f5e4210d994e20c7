"""Each family's language codes as its tokenizer and its decoders need them, for both engines: one home.

M2M100 and mBART-50 tokenizers prefix a source with its language's code and must know the target's; generation
must start with the target's code token (transformers: `forced_bos_token_id` on `generation_config`; CTranslate2:
a target prefix). Marian checkpoints are one direction each and need none of it. Pure functions of a tokenizer, a
family (registry.Family) and a `Direction`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from .errors import ModelError
from .registry import Family, other_language


@dataclass(frozen=True)
class Direction:
    """One translation direction, in csas languages (en, fr)."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}->{self.target}"


def directions_of(source_langs: Sequence[str]) -> list[Direction]:
    """The directions a model trained on `source_langs` translates: each source language into the other."""
    return [Direction(s, other_language(s)) for s in source_langs]


def set_languages(tokenizer: Any, family: Family, source_lang: str, target_lang: str) -> None:
    """Point the tokenizer at one direction (a no-op for families without language codes)."""
    if family.language_codes is None:
        return
    tokenizer.src_lang = family.code(source_lang)
    tokenizer.tgt_lang = family.code(target_lang)


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


@contextmanager
def source_language(tokenizer: Any, family: Family, direction: Direction) -> Iterator[None]:
    """The tokenizer set to `direction` (set_source_language), and put back as it was afterwards."""
    kept = {name: getattr(tokenizer, name) for name in ("src_lang", "tgt_lang") if hasattr(tokenizer, name)}
    set_source_language(tokenizer, family, direction)
    try:
        yield
    finally:
        for name, value in kept.items():
            setattr(tokenizer, name, value)


def generation_overrides(tokenizer: Any, family: Family, direction: Direction) -> dict[str, Any]:
    """Fields to set on `generation_config` for `direction`: the forced first token for families with codes."""
    token_id = language_token_id(tokenizer, family, direction.target)
    return {} if token_id is None else {"forced_bos_token_id": token_id}


def target_prefix(tokenizer: Any, family: Family, direction: Direction) -> list[str] | None:
    """The target language's code token that M2M100 and mBART-50 must start with; None for Marian."""
    token_id = language_token_id(tokenizer, family, direction.target)
    return None if token_id is None else [tokenizer.convert_ids_to_tokens(token_id)]


def model_generation_overrides(tokenizer: Any, family: Family, source_langs: Sequence[str]) -> dict[str, Any]:
    """What a merged or exported model's generation_config must say: the target's code for a one-direction model
    with codes. A model trained both ways gets no forced first token (None clears one the base might have carried)."""
    if family.language_codes is None:
        return {}
    directions = directions_of(source_langs)
    if len(directions) > 1:
        return {"forced_bos_token_id": None}
    return generation_overrides(tokenizer, family, directions[0])
