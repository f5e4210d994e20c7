"""Language identification for `csas check-data`'s language check and the wrong_language quality flag: is a text
in its stated language?

py3langid's model restricted to LANGID_CANDIDATES (`judge_language`, one text at a time with py3langid's own
`rank`; `language_probabilities`, a whole file in batches with numpy, same results). Texts under LANGID_MIN_LETTERS
letters in words (`word_letters`) are too short to tell; a text mostly outside the Latin script is in the wrong
language whatever py3langid says.

Standard library, plus py3langid and numpy (imported on their first use).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from py3langid.langid import LanguageIdentifier

LANGID_CANDIDATES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "pt", "nl")
"""The languages py3langid chooses among. English and French, and the other large Latin-script languages that can
turn up in a Canadian science file: measured on the shipped files (scripts/measure_langid.py), adding them catches
German, Spanish, Italian, Portuguese and Dutch text at no false alarm, whereas py3langid's full list of 140 languages
takes short English for Nigerian Pidgin or Italian."""
LANGID_MAX_PROBABILITY = 0.1
"""A text is in the wrong language when py3langid gives its stated language a probability under this (among
LANGID_CANDIDATES; py3langid 0.4 normalises its scores with a temperature of sqrt(bytes), so short texts get soft
probabilities). The lowest probability a shipped text that is judged gets for its own language is 0.34."""
LANGID_MIN_LETTERS = 20
"""Texts with fewer letters in words are too short to tell ("In April 2019" gets 0.16 for English) and are not
judged. Only the letters of words count (`word_letters`): those of whitespace-separated tokens without a digit,
words of 2 or more capitals (acronyms) left out unless the whole text is in capitals (py3langid reads it
lower-cased). So a line of codes, "ISSN 1919-5044 ISBN 978-0-660-12345-6 No de cat. Fs70-6/2023-045F-PDF" (21
letters, 7 in words; "Portuguese" at 0.35), is too short to tell. Measured (scripts/measure_langid.py), the shipped
files keep no false alarm, and pretrain_pairs.jsonl's recall falls by 0.15 points (every text judged against the
other language, 0.9751 to 0.9736 of all texts) and 0.25 points (substituted targets, 0.9800 to 0.9775): short
headings such as "Snow crab in NAFO Division 4T" are no longer judged."""
LANGID_MAX_CHARACTERS = 300
"""A longer text is judged on its first 300 characters (cut at a space): as sure, and the time per text stays
bounded (py3langid's model walks every byte)."""
NON_LATIN_SHARE = 0.5
"""A text whose letters are more than this share outside the Latin script (Inuktitut syllabics, Cyrillic, ...) is
in the wrong language whatever py3langid says (as OpusFilter's CharacterScoreFilter)."""


_NOT_LETTERS = re.compile(r"[\W\d_]+")
_LATIN_LETTERS = re.compile(
    r"[a-zA-Z\u00aa\u00b5\u00ba\u00c0-\u024f\u0250-\u02af\u1e00-\u1eff\u2c60-\u2c7f"
    r"\ua720-\ua7ff\ufb00-\ufb06]+"
)
_NON_LATIN = "non-Latin script"
_BATCH = 2048
_IDENTIFIER: LanguageIdentifier | None = None
_BATCHED: _BatchedIdentifier | None = None


def _identifier() -> LanguageIdentifier:
    """py3langid's shipped model restricted to LANGID_CANDIDATES, loaded once (about 0.5 s)."""
    global _IDENTIFIER, _BATCHED
    if _IDENTIFIER is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(LANGID_CANDIDATES))
        _IDENTIFIER, _BATCHED = identifier, None
    return _IDENTIFIER


class _BatchedIdentifier:
    """py3langid's model run on many texts at once: LanguageIdentifier.rank's computation (its byte-level DFA walk,
    naive Bayes scores and probabilities with a temperature of sqrt(bytes)), with one numpy step per byte position
    for a whole batch of texts instead of one Python step per byte per text. About 3 times faster; the tests check
    that it gives py3langid's own probabilities."""

    def __init__(self, identifier: LanguageIdentifier) -> None:
        import numpy as np

        self.np = np
        self.classes = list(identifier.nb_classes)
        self.nextmove = np.frombuffer(identifier.tk_nextmove, dtype=np.dtype(identifier.tk_nextmove.typecode))
        self.rowbase = np.frombuffer(identifier.tk_row, dtype=np.dtype(identifier.tk_row.typecode)).astype(np.int64)
        self.rowbase <<= 8
        self.output = np.asarray(identifier.tk_output, dtype=np.int64)
        self.ptc = np.asarray(identifier.nb_ptc, dtype=np.float32)
        self.pc = np.asarray(identifier.nb_pc, dtype=np.float32)

    @staticmethod
    def encode(text: str) -> bytes:
        """As py3langid: an all-capitals text lower-cased, NFC, UTF-8."""
        if text.isupper():
            text = text.lower()
        return unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """The probability of each class for each text."""
        encoded = [self.encode(text) for text in texts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        found: list[dict[str, float]] = [{}] * len(encoded)
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            for i, row in zip(batch, self._batch([encoded[i] for i in batch]).tolist(), strict=True):
                found[i] = dict(zip(self.classes, row, strict=True))
        return found

    def _batch(self, batch: list[bytes]) -> Any:
        """Probabilities, one row per text; `batch` sorted by length, longest first."""
        np = self.np
        lengths = np.array([len(data) for data in batch], dtype=np.int64)
        width = int(lengths[0])
        grid = np.frombuffer(b"".join(data.ljust(width, b"\0") for data in batch), dtype=np.uint8)
        grid = grid.reshape(len(batch), width).astype(np.int64)
        state = np.zeros(len(batch), dtype=np.int64)
        # texts still walking at each position (lengths are descending)
        active = np.searchsorted(-lengths, -np.arange(width), side="left")
        rows, features = [], []
        for position in range(width):
            live = int(active[position])
            moved = self.nextmove[self.rowbase[state[:live]] + grid[:live, position]].astype(np.int64)
            state[:live] = moved
            feature = self.output[moved]
            hit = np.flatnonzero(feature >= 0)
            rows.append(hit)
            features.append(feature[hit])
        scores = np.zeros((len(batch), len(self.classes)), dtype=np.float32)
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        if len(row):
            keys, counts = np.unique(row * len(self.ptc) + np.concatenate(features), return_counts=True)
            text, feature = np.divmod(keys, len(self.ptc))
            weighted = np.log1p(counts.astype(np.float32))[:, None] * self.ptc[feature]
            starts = np.flatnonzero(np.r_[True, text[1:] != text[:-1]])
            scored = text[starts]
            scores[scored] = np.add.reduceat(weighted, starts, axis=0) + self.pc
            # a text without any feature keeps scores of 0: uniform, as py3langid
            scores[scored] /= np.sqrt(lengths[scored]).astype(np.float32)[:, None]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)


def _batched() -> _BatchedIdentifier:
    global _BATCHED
    identifier = _identifier()
    if _BATCHED is None:
        _BATCHED = _BatchedIdentifier(identifier)
    return _BATCHED


@dataclass(frozen=True)
class LanguageJudgement:
    """What the language check makes of one text."""

    expected: str
    """The stated language."""
    detected: str
    """The most likely of LANGID_CANDIDATES, or "non-Latin script"."""
    probability: float
    """py3langid's probability of `detected` (for a non-Latin text, the share of non-Latin letters)."""
    expected_probability: float
    """py3langid's probability of `expected` (0.0 for a non-Latin text)."""

    @property
    def wrong(self) -> bool:
        """The text is not in its stated language: expected_probability under LANGID_MAX_PROBABILITY."""
        return self.expected_probability < LANGID_MAX_PROBABILITY

    def describe(self) -> str:
        """E.g. "detected fr (0.99), expected en"."""
        return f"detected {self.detected} ({self.probability:.2f}), expected {self.expected}"


_ANY_DIGIT = re.compile(r"\d")
_CODE_TOKEN = re.compile(r"(?<!\S)[^\s\d]*\d\S*")
"""A whitespace-separated token with a digit in it (tried at token starts only, so linear)."""
_CAPITALS_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_]{2,}(?![^\W\d_])")
"""A word, to be tested with str.isupper (re has no class of capitals); found only in texts with two capitals in a
row."""
_TWO_CAPITALS = re.compile(r"[A-Z\u00c0-\u00d6\u00d8-\u00de\u0100-\u024f\u0391-\u03a9\u0400-\u042f]{2}")
"""Two capitals in a row (Latin, Greek and Cyrillic ones; a capital outside these only in a word of them)."""


def word_letters(text: str, letters: int | None = None) -> int:
    """The letters of `text` that count toward LANGID_MIN_LETTERS: those of the words (runs of letters) of its
    whitespace-separated tokens without a digit ("Fs70-6/2023-045E-PDF", "2J3KL" and "(2019)." have none), words of
    2 or more capitals ("ISSN", "NAFO") left out unless the whole text is in capitals. One-letter words count ("à",
    the "L" of "L'espèce"). `letters`: the number of letters of `text`, when known."""
    capitals = _TWO_CAPITALS.search(text) is not None and not text.isupper()
    if _ANY_DIGIT.search(text):
        if capitals:
            text = _CODE_TOKEN.sub(" ", text)
            letters = None
        elif letters is not None:
            return letters - len(_NOT_LETTERS.sub("", "".join(_CODE_TOKEN.findall(text))))
        else:
            text = _CODE_TOKEN.sub(" ", text)
    if letters is None:
        letters = len(_NOT_LETTERS.sub("", text))
    if not capitals:
        return letters
    return letters - sum(len(word) for word in _CAPITALS_WORD.findall(text) if word.isupper())


def _judged_part(text: str) -> tuple[str | None, float]:
    """The part of `text` that is judged (None: too short to tell) and the share of its letters that are not Latin."""
    if len(text) > LANGID_MAX_CHARACTERS:
        cut = text.rfind(" ", 0, LANGID_MAX_CHARACTERS + 1)
        text = text[: cut if cut > LANGID_MAX_CHARACTERS // 2 else LANGID_MAX_CHARACTERS]
    letters = _NOT_LETTERS.sub("", text)
    if len(letters) < LANGID_MIN_LETTERS or word_letters(text, len(letters)) < LANGID_MIN_LETTERS:
        return None, 0.0
    if max(letters) <= "\u024f":  # Basic Latin to Latin Extended-B: nothing to count
        return text, 0.0
    return text, len(_LATIN_LETTERS.sub("", letters)) / len(letters)


def language_probabilities(texts: Sequence[str]) -> list[dict[str, float] | None]:
    """py3langid's probabilities of LANGID_CANDIDATES for each text, computed in batches.

    None for a text with under LANGID_MIN_LETTERS letters in words (too short to tell, see word_letters);
    `{"non-Latin script": share}` for one whose letters are mostly outside the Latin script. A text is judged on its
    first LANGID_MAX_CHARACTERS characters.
    """
    found: list[dict[str, float] | None] = [None] * len(texts)
    pending: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        part, non_latin = _judged_part(text)
        if part is None:
            continue
        if non_latin > NON_LATIN_SHARE:
            found[i] = {_NON_LATIN: non_latin}
        else:
            pending.setdefault(part, []).append(i)
    if pending:
        for part, probabilities in zip(pending, _batched().probabilities(list(pending)), strict=True):
            for i in pending[part]:
                found[i] = probabilities
    return found


def judge_probabilities(probabilities: dict[str, float], lang: str) -> LanguageJudgement:
    """What the probabilities of a text (an entry of language_probabilities) say of it, stated to be in `lang`."""
    detected, probability = max(probabilities.items(), key=lambda item: item[1])
    return LanguageJudgement(lang, detected, probability, probabilities.get(lang, 0.0))


def judge_language(text: str, lang: str) -> LanguageJudgement | None:
    """Whether `text` is in `lang`, or None when it is too short to tell (under LANGID_MIN_LETTERS letters in
    words, see word_letters).

    One text at a time, with py3langid's own `rank`; `run_checks` judges a whole file in batches (same results)."""
    part, non_latin = _judged_part(text)
    if part is None:
        return None
    if non_latin > NON_LATIN_SHARE:
        return judge_probabilities({_NON_LATIN: non_latin}, lang)
    return judge_probabilities(dict(_identifier().rank(part)), lang)


__all__ = [
    "LANGID_CANDIDATES", "LANGID_MAX_CHARACTERS", "LANGID_MAX_PROBABILITY", "LANGID_MIN_LETTERS", "NON_LATIN_SHARE",
    "LanguageJudgement", "judge_language", "judge_probabilities", "language_probabilities", "word_letters",
]  # fmt: skip
