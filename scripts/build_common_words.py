"""Write csas's lists of common English and French words (csas_cli/assets/common_words.{en,fr}.txt).

    pip install wordfreq==3.1.1 && python scripts/build_common_words.py [--min-zipf 4.5]

A glossary entry that is one common word ("make", "out", "plant", "survey") is not forced into translations by
`--term-constraints` unless data confirm it or `--constrain-all` is given (data/fit.py): such words have many
senses, and a general-purpose termbase maps them to one of them. "Common" is a Zipf frequency of at least 4.5 in
wordfreq's combined corpora (about once in 30,000 words: "make" 6.1, "plant" 4.9, "survey" 4.7; "recruitment" 4.0,
"biomass" 3.4 are not), about 3,000 words per language. The lists are written once and shipped (wordfreq is not a
dependency of csas); their data is wordfreq's, under CC BY-SA 4.0, which each file's header says.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "csas_cli" / "assets"
WORD = re.compile(r"[^\W\d_]+(['’-][^\W\d_]+)*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-zipf", type=float, default=4.5)
    args = parser.parse_args()
    from importlib.metadata import version

    from wordfreq import iter_wordlist, zipf_frequency

    for lang in ("en", "fr"):
        words = []
        for word in iter_wordlist(lang, "large"):
            if zipf_frequency(word, lang, "large") < args.min_zipf:
                break
            if WORD.fullmatch(word) and len(word) > 1:
                words.append(word)
        header = (f"# Common {'English' if lang == 'en' else 'French'} words: Zipf frequency >= {args.min_zipf} in "
                  f"wordfreq {version('wordfreq')} ('large' list), most frequent first; written by\n"
                  "# scripts/build_common_words.py. Data: wordfreq (https://github.com/rspeer/wordfreq), "
                  "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).\n")
        path = ASSETS / f"common_words.{lang}.txt"
        path.write_text(header + "".join(w + "\n" for w in words), encoding="utf-8")
        print(f"{path}: {len(words)} words")


if __name__ == "__main__":
    main()
