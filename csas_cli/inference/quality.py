"""Quality flags of translations: the failures these model families are known for, which a corpus score hides.

- wrong_language: the output is not in the target language (the language identifier of `csas check-data`:
  py3langid over the Latin-script candidates, a probability of the target language under 0.1; outputs with under
  20 letters in words are not judged). mBART-50 and M2M100 produce this when the target code is not forced.
- copy: the output is the source, once normalised, or a near copy (difflib similarity >= 0.9, as check-data's
  copies); sources without letters (numbers, codes, table cells) are not judged.
- repetition: a loop, an n-gram of 1 to 4 words repeated three or more times in a row (`the stock the stock the
  stock`), what beam search falls into on an undertrained model; an n-gram without letters (`0 0 0`) and one that
  loops in the source too are not loops of the model's.
- length_ratio: the output is more than 3 times longer or shorter than the source, in characters (check-data's
  bound; pairs whose longer side is under 20 characters are not judged): truncations and run-on outputs. An empty
  output for a non-empty source is always flagged, however short the source, and so is an output of 20 characters
  or more for a blank source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..data.checks import LENGTH_RATIO, LENGTH_RATIO_MIN_CHARACTERS, copy_similarity
from ..data.langid import LANGID_MAX_PROBABILITY, language_probabilities
from ..data.normalisation import normalise

FLAGS = ("wrong_language", "copy", "repetition", "length_ratio")
EXAMPLES = 3
"""Examples kept per flag."""
LOOP_MAX_N = 4
LOOP_REPEATS = 3
_WORDS = re.compile(r"\w+")
_LETTERS = re.compile(r"[^\W\d_]")


def loops(text: str) -> list[str]:
    """Every n-gram (n up to LOOP_MAX_N words, with a letter) repeated LOOP_REPEATS times in a row in `text`."""
    words = [w.casefold() for w in _WORDS.findall(text)]
    found = []
    for n in range(1, LOOP_MAX_N + 1):
        for i in range(len(words) - LOOP_REPEATS * n + 1):
            gram = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(1, LOOP_REPEATS)):
                joined = " ".join(gram)
                if _LETTERS.search(joined) and joined not in found:
                    found.append(joined)
    return found


def repetition(text: str, source: str = "") -> str | None:
    """The repeated n-gram when `text` loops (see the module docstring) and `source` does not, else None."""
    in_source = set(loops(source)) if source else set()
    return next((gram for gram in loops(text) if gram not in in_source), None)


def length_outlier(source: str, output: str) -> str | None:
    src, out = len(source.strip()), len(output.strip())
    if not out:
        return "empty output" if src else None
    if not src:
        return f"{out} characters for a blank source" if out >= LENGTH_RATIO_MIN_CHARACTERS else None
    shorter, longer = sorted((src, out))
    if longer < LENGTH_RATIO_MIN_CHARACTERS or longer <= LENGTH_RATIO * shorter:
        return None
    return f"ratio {longer / shorter:.1f} ({src} vs {out} characters)"


def copied(source: str, output: str) -> str | None:
    src, out = normalise(source), normalise(output)
    if not _LETTERS.search(src):
        return None
    if src == out:
        return "output = source once normalised"
    ratio = copy_similarity(src, out)
    return None if ratio is None else f"similarity {ratio:.2f}"


@dataclass(frozen=True)
class Flagged:
    row: int
    """Index among the scored rows."""
    source: str
    output: str
    detail: str


@dataclass(frozen=True)
class QualityReport:
    rows: int
    flagged: dict[str, list[Flagged]]

    def count(self, flag: str) -> int:
        return len(self.flagged[flag])

    def to_dict(self) -> dict[str, Any]:
        return {
            flag: {
                "count": len(found),
                "share": len(found) / self.rows if self.rows else 0.0,
                "examples": [{"row": f.row, "source": f.source, "output": f.output, "detail": f.detail}
                             for f in found[:EXAMPLES]],  # fmt: skip
            }
            for flag, found in self.flagged.items()
        }

    def summary(self) -> str:
        """`wrong language 2 (1.1%), copies 0, repetition loops 1 (0.5%), length ratio 0`."""
        names = {"wrong_language": "wrong language", "copy": "copies", "repetition": "repetition loops",
                 "length_ratio": "length ratio"}  # fmt: skip
        parts = []
        for flag in FLAGS:
            n = self.count(flag)
            parts.append(f"{names[flag]} {n}" + (f" ({100 * n / self.rows:.1f}%)" if n else ""))
        return ", ".join(parts)


def quality_flags(sources: Sequence[str], outputs: Sequence[str], target_lang: str) -> QualityReport:
    """Flag each output against its source (see the module docstring)."""
    if len(sources) != len(outputs):
        raise ValueError("quality_flags: as many outputs as sources")
    flagged: dict[str, list[Flagged]] = {flag: [] for flag in FLAGS}
    for i, probabilities in enumerate(language_probabilities(list(outputs))):
        if probabilities is not None and probabilities.get(target_lang, 0.0) < LANGID_MAX_PROBABILITY:
            detected = max(probabilities.items(), key=lambda item: item[1])
            detail = f"detected {detected[0]} ({detected[1]:.2f}), expected {target_lang}"
            flagged["wrong_language"].append(Flagged(i, sources[i], outputs[i], detail))
    for i, (source, output) in enumerate(zip(sources, outputs)):
        for flag, check in (("copy", copied(source, output)), ("repetition", repetition(output, source)),
                            ("length_ratio", length_outlier(source, output))):  # fmt: skip
            if check is not None:
                detail = f"repeats {check!r}" if flag == "repetition" else check
                flagged[flag].append(Flagged(i, source, output, detail))
    return QualityReport(len(outputs), flagged)


__all__ = ["FLAGS", "QualityReport", "loops", "quality_flags", "repetition"]
