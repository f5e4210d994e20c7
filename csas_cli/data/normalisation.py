"""Text normalisation: two texts compared loosely, case, whitespace and punctuation aside (`normalise`).

Used by the checks of `csas check-data` (duplicates, copies, conflicts, shared sentences) and by the copy flag of
the translation quality flags. Standard library only.
"""

from __future__ import annotations

import unicodedata


class _Folding(dict):
    """str.translate table filled on demand: punctuation (P*), separators (Z*) and controls (Cc) become a space,
    format characters (Cf: soft hyphen, zero-width space, BOM) disappear, everything else stays."""

    def __missing__(self, code: int) -> str | None:
        category = unicodedata.category(chr(code))
        value: str | None = chr(code)
        if category[0] in "PZ" or category == "Cc":
            value = " "
        elif category == "Cf":
            value = None
        self[code] = value
        return value


_FOLDING = _Folding()


def normalise(text: str) -> str:
    """`text` compared loosely: NFKC, case-folded, every punctuation mark (Unicode category P*: apostrophes ’ ',
    quotes « » ", dashes, ...) and whitespace run made a single space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_FOLDING).split())


__all__ = ["normalise"]
