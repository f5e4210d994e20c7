"""Tests for csas_cli.data.features: per-direction language codes and order-preserving batched tokenization."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import SAMPLE

from csas_cli.data.features import Cuts, TokenizedPair, tokenize_counted, tokenize_examples
from csas_cli.languages import set_languages
from csas_cli.data.pairs import Example
from csas_cli.registry import M2M100, MARIAN, MBART50, REGISTRY, Family, other_language

CODE_IDS = {None: None, "en": 1001, "fr": 1002, "en_XX": 2001, "fr_XX": 2002}
EOS = 2


class FakeTokenizer:
    """Records every language assignment and call; ids encode the language set at call time.

    Source ids: [code(src_lang)] + [word ids] + [EOS]; target ids: [code(tgt_lang)] + [word ids] + [EOS], code
    omitted when none is set (Marian). Word ids are the length of each word + 10, so they depend only on the text.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "assignments", [])
        object.__setattr__(self, "calls", [])
        object.__setattr__(self, "src_lang", None)
        object.__setattr__(self, "tgt_lang", None)

    def __setattr__(self, name: str, value: Any) -> None:
        self.assignments.append((name, value))
        object.__setattr__(self, name, value)

    def _encode(self, text: str, code: str | None, max_length: int) -> list[int]:
        words = [len(w) + 10 for w in text.split()]
        prefix = [] if code is None else [CODE_IDS[code]]
        ids = prefix + words
        return ids[: max_length - 1] + [EOS]  # truncation keeps </s>, as the real tokenizers do

    def __call__(self, text: Any = None, *, text_target: Any = None, max_length: int, truncation: bool) -> dict:
        assert truncation is True
        assert (text is None) != (text_target is None), "source and target are tokenized in separate calls"
        if text is not None:
            assert isinstance(text, list), "sources are tokenized in batches"
            self.calls.append(("source", self.src_lang, self.tgt_lang, list(text), max_length))
            return {"input_ids": [self._encode(t, self.src_lang, max_length) for t in text]}
        assert isinstance(text_target, list), "targets are tokenized in batches"
        self.calls.append(("target", self.src_lang, self.tgt_lang, list(text_target), max_length))
        return {"input_ids": [self._encode(t, self.tgt_lang, max_length) for t in text_target]}


def example(source: str, target: str, lang: str, line: int) -> Example:
    return Example(source, target, lang, other_language(lang), f"P{line}", line)


MIXED = [
    example("hello world", "bonjour le monde", "en", 1),
    example("le chat noir", "the black cat", "fr", 2),
    example("good morning to you", "bonjour a vous", "en", 3),
    example("merci", "thanks a lot", "fr", 4),
    example("a b c d e f g h", "x", "en", 5),
]


def expected_pair(ex: Example, family: Family, max_source_len: int = 512, max_target_len: int = 512) -> TokenizedPair:
    tok = FakeTokenizer()
    src_code, tgt_code = family.code(ex.source_lang), family.code(ex.target_lang)
    return TokenizedPair(
        tuple(tok._encode(ex.source, src_code, max_source_len)), tuple(tok._encode(ex.target, tgt_code, max_target_len))
    )


@pytest.mark.parametrize("family", [M2M100, MBART50], ids=lambda f: f.name)
def test_languages_set_per_row_direction(family: Family) -> None:
    tok = FakeTokenizer()
    pairs = tokenize_examples(tok, family, MIXED, max_source_len=512, max_target_len=512)
    assert len(pairs) == len(MIXED)
    for ex, pair in zip(MIXED, pairs):
        assert pair == expected_pair(ex, family), ex
        assert pair.input_ids[0] == CODE_IDS[family.code(ex.source_lang)]
        assert pair.labels[0] == CODE_IDS[family.code(ex.target_lang)]
    # Every call ran with the direction of the rows it tokenized.
    for kind, src, tgt, texts, _ in tok.calls:
        rows = [ex for ex in MIXED if (ex.source if kind == "source" else ex.target) in texts]
        assert rows and len(rows) == len(texts)
        for ex in rows:
            assert (src, tgt) == (family.code(ex.source_lang), family.code(ex.target_lang))
    # Both directions were tokenized, each with its own codes.
    directions = {(src, tgt) for _, src, tgt, _, _ in tok.calls}
    assert directions == {(family.code("en"), family.code("fr")), (family.code("fr"), family.code("en"))}


def test_mbart_codes_are_the_xx_variants() -> None:
    tok = FakeTokenizer()
    tokenize_examples(tok, MBART50, MIXED[:1], max_source_len=512, max_target_len=512)
    assert ("src_lang", "en_XX") in tok.assignments
    assert ("tgt_lang", "fr_XX") in tok.assignments


def test_m2m100_codes_are_bare() -> None:
    tok = FakeTokenizer()
    tokenize_examples(tok, M2M100, MIXED[1:2], max_source_len=512, max_target_len=512)
    assert ("src_lang", "fr") in tok.assignments
    assert ("tgt_lang", "en") in tok.assignments


def test_marian_languages_untouched() -> None:
    tok = FakeTokenizer()
    pairs = tokenize_examples(tok, MARIAN, MIXED, max_source_len=512, max_target_len=512)
    assert tok.assignments == []
    assert tok.src_lang is None and tok.tgt_lang is None
    for ex, pair in zip(MIXED, pairs):
        assert pair == expected_pair(ex, MARIAN)
        assert pair.input_ids[0] not in CODE_IDS.values()


@pytest.mark.parametrize("family", [M2M100, MBART50, MARIAN], ids=lambda f: f.name)
def test_order_preserved_across_mixed_directions(family: Family) -> None:
    # Interleaved directions, rows with equal texts in both directions: output i belongs to input i.
    rows = [example(f"w{'x' * i} " * (i + 1), f"t{'y' * i}", "en" if i % 3 else "fr", i + 1) for i in range(12)]
    pairs = tokenize_examples(FakeTokenizer(), family, rows, max_source_len=512, max_target_len=512)
    assert pairs == [expected_pair(ex, family) for ex in rows]


@pytest.mark.parametrize("family", [M2M100, MBART50, MARIAN], ids=lambda f: f.name)
def test_max_lengths_are_passed(family: Family) -> None:
    tok = FakeTokenizer()
    pairs = tokenize_examples(tok, family, MIXED, max_source_len=4, max_target_len=3)
    assert tok.calls
    # Each side is encoded one token past its limit (to tell which rows are cut), then the cut rows at the limit.
    for kind, _, _, _, max_length in tok.calls:
        assert max_length in ((5, 4) if kind == "source" else (4, 3))
    for ex, pair in zip(MIXED, pairs):
        assert len(pair.input_ids) <= 4 and len(pair.labels) <= 3
        assert pair.input_ids[-1] == EOS and pair.labels[-1] == EOS
        assert pair == expected_pair(ex, family, 4, 3)


@pytest.mark.parametrize("family", [M2M100, MBART50, MARIAN], ids=lambda f: f.name)
def test_cut_rows_are_counted_per_side(family: Family) -> None:
    codes = 0 if family.language_codes is None else 1
    # Source lengths (with </s> and the code): 3, 4, 5, 2, 9 (+codes); target lengths 4, 4, 4, 4, 2 (+codes).
    limit_source, limit_target = 3 + codes, 3 + codes
    pairs, cuts = tokenize_counted(FakeTokenizer(), family, MIXED, max_source_len=limit_source,
                                   max_target_len=limit_target)  # fmt: skip
    assert cuts.sources == (1, 2, 4)
    assert cuts.targets == (0, 1, 2, 3)
    assert cuts.to_dict() == {"sources": 3, "targets": 4}
    assert pairs == [expected_pair(ex, family, limit_source, limit_target) for ex in MIXED]
    only, counted = tokenize_counted(FakeTokenizer(), family, MIXED, max_source_len=limit_source,
                                     max_target_len=limit_target, keep_ids=False)  # fmt: skip
    assert only == [] and counted == cuts
    _, none_cut = tokenize_counted(FakeTokenizer(), family, MIXED, max_source_len=512, max_target_len=512)
    assert none_cut == Cuts()


@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr"])
def test_counted_truncation_equals_the_tokenizer_own(tiny_models, key: str) -> None:
    """Encoding one past the limit and again at the limit gives exactly what one truncating call gives."""
    from csas_cli.data.pairs import load_examples
    from csas_cli.modeling import load_tokenizer

    spec = REGISTRY[key]
    tok = load_tokenizer(str(tiny_models[key]), spec.family)
    rows = load_examples(SAMPLE, spec.source_langs).examples[:60]
    pairs, cuts = tokenize_counted(tok, spec.family, rows, max_source_len=24, max_target_len=20)
    assert 0 < len(cuts.sources) < len(rows) and 0 < len(cuts.targets) < len(rows)
    for i, (ex, pair) in enumerate(zip(rows, pairs)):
        set_languages(tok, spec.family, ex.source_lang, ex.target_lang)
        assert list(pair.input_ids) == tok([ex.source], max_length=24, truncation=True)["input_ids"][0]
        assert list(pair.labels) == tok(text_target=[ex.target], max_length=20, truncation=True)["input_ids"][0]
        full_source = len(tok([ex.source])["input_ids"][0])
        assert (i in cuts.sources) == (full_source > 24)
        full_target = len(tok(text_target=[ex.target])["input_ids"][0])
        assert (i in cuts.targets) == (full_target > 20)


def test_one_direction_one_batch() -> None:
    # Rows are tokenized in batches per direction, not one call per row.
    tok = FakeTokenizer()
    tokenize_examples(tok, M2M100, MIXED, max_source_len=512, max_target_len=512)
    assert len(tok.calls) == 4  # 2 directions x (source, target)
    assert sorted(len(texts) for _, _, _, texts, _ in tok.calls) == [2, 2, 3, 3]


def test_empty_input() -> None:
    tok = FakeTokenizer()
    assert tokenize_examples(tok, M2M100, [], max_source_len=8, max_target_len=8) == []
    assert tok.calls == []


def test_pairs_are_tuples() -> None:
    pairs = tokenize_examples(FakeTokenizer(), MARIAN, MIXED[:2], max_source_len=512, max_target_len=512)
    assert all(isinstance(p.input_ids, tuple) and isinstance(p.labels, tuple) for p in pairs)


def test_set_languages_direct() -> None:
    tok = FakeTokenizer()
    set_languages(tok, MBART50, "fr", "en")
    assert (tok.src_lang, tok.tgt_lang) == ("fr_XX", "en_XX")
    tok = FakeTokenizer()
    set_languages(tok, MARIAN, "fr", "en")
    assert tok.assignments == []


def test_registry_families() -> None:
    assert REGISTRY["m2m100_418m"].family is M2M100
    assert REGISTRY["mbart50_mmt_fr"].family is MBART50
    assert REGISTRY["mbart50_mmt_en"].family is MBART50
    assert REGISTRY["opus_mt_en_fr"].family is MARIAN
    assert REGISTRY["opus_mt_fr_en"].family is MARIAN
    assert MARIAN.language_codes is None
    assert dict(M2M100.language_codes) == {"en": "en", "fr": "fr"}
    assert dict(MBART50.language_codes) == {"en": "en_XX", "fr": "fr_XX"}
