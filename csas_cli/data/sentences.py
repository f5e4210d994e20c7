"""Sentences of a paragraph: what `csas translate` gives a model trained on sentence pairs.

A line of several sentences given whole makes such a model drop or merge sentences and run into --max-new-tokens.
`split` cuts a line with sentencex (Wikimedia's segmenter, rules for English and French among ~300 languages), then
joins back the pieces that end in an abbreviation sentencex takes for a sentence end (`M.` before a French name,
`St.`, `Fig.`, `et al.`, `p. ex.`): decimals (2.5, 2,5) and the usual abbreviations stay whole. Each piece keeps the
spacing around it, so that `join` puts the translated sentences back with the source's own spacing: the pieces of a
line concatenate to the line itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ABBREVIATIONS = {
    "en": ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St.", "Mt.", "Fig.", "Figs.", "fig.", "figs.", "Eq.", "eq.",
           "e.g.", "i.e.", "et al.", "etc.", "vs.", "approx.", "No.", "no.", "Nos.", "Vol.", "vol.", "p.", "pp.",
           "Sect.", "sect.", "Ch.", "ch.", "cf.", "Jan.", "Feb.", "Mar.", "Apr.", "Aug.", "Sept.", "Sep.", "Oct.",
           "Nov.", "Dec.", "Can.", "U.S.", "sp.", "spp."),
    "fr": ("M.", "MM.", "Mme.", "Mmes.", "Mlle.", "Dr.", "Pr.", "St.", "Ste.", "Fig.", "fig.", "Éq.", "éq.",
           "p. ex.", "c.-à-d.", "c.", "cf.", "et al.", "etc.", "env.", "no.", "No.", "nos.", "vol.", "p.", "pp.",
           "chap.", "sect.", "janv.", "févr.", "avr.", "juill.", "sept.", "oct.", "nov.", "déc.", "sp.", "spp."),
}  # fmt: skip
"""Abbreviations after which a line does not end a sentence, by language (sentencex knows many; these are the ones
scientific reports use that it does not, or not in both languages)."""


@dataclass(frozen=True)
class Piece:
    """One sentence of a line with the spacing around it: `before + text + after` is that part of the line."""

    before: str
    text: str
    after: str


def ends_in_abbreviation(text: str, lang: str) -> bool:
    words = text.rstrip()
    return any(words == a or words.endswith((" " + a, "(" + a)) for a in ABBREVIATIONS.get(lang, ()))


def split(line: str, lang: str) -> list[Piece]:
    """The sentences of `line` in language `lang` (en or fr); a line without text is one empty piece."""
    from sentencex import segment

    if not line.strip():
        return [Piece(line, "", "")]
    parts = [p for p in segment(lang, line) if p]
    if "".join(parts) != line:  # sentencex gives the line back in pieces; where it would not, keep the line whole
        parts = [line]
    merged: list[str] = []
    for part in parts:
        if merged and (ends_in_abbreviation(merged[-1], lang) or not merged[-1].strip()):
            merged[-1] += part
        else:
            merged.append(part)
    pieces = []
    for part in merged:
        text = part.strip()
        start = part.index(text[0]) if text else len(part)
        pieces.append(Piece(part[:start], text, part[start + len(text):]))
    return pieces


def join(pieces: Sequence[Piece], translations: Sequence[str]) -> str:
    """A line again: each piece's translation with the piece's own spacing (`translations`: one per piece with
    text, in order)."""
    out, it = [], iter(translations)
    for piece in pieces:
        out.append(piece.before + (next(it) if piece.text else "") + piece.after)
    return "".join(out)


__all__ = ["ABBREVIATIONS", "Piece", "join", "split"]
