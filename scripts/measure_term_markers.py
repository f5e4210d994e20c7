"""Which marker strings can carry an inline term annotation: each family's own tokenizer must encode them without
unknown tokens, in few pieces, and they must be rare in real text (so that the model learns them as markers).

    python scripts/measure_term_markers.py [--model-id KEY=SNAPSHOT ...]

For each candidate pair of markers and each tokenizer (the tiny checkpoints of `csas tiny-models`, built with each
family's real tokenizer class, or the real snapshots given with --model-id), an annotated sentence is encoded and
the unknown tokens counted, with the pieces the opening marker takes; the count of the markers in the shipped sample
shows how rare they are in CSAS text. csas uses " [[" and "]]" (data/terms.py): no unknown token in any family,
three pieces, never in the sample.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

CANDIDATES = [(" ⟦", "⟧"), (" [[", "]]"), (" [", "]"), (" {", "}"), (" <", ">"), (" «", "»"), (" |", "|"),
              (" (", ")"), (" <t>", "</t>")]  # fmt: skip
SENTENCE = "The spawning stock biomass{open}biomasse du stock reproducteur{close} is in the Critical Zone."
KEYS = ("opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-id", action="append", default=[], help="KEY=SNAPSHOT, a real tokenizer to measure")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from csas_cli.commands.tiny import build_tiny_models
    from csas_cli.shipped import SAMPLE_PAIRS

    texts = " ".join(f"{r['source']} {r['target']}" for r in map(json.loads, SAMPLE_PAIRS.read_text().splitlines()))
    with tempfile.TemporaryDirectory() as tmp:
        sources = {f"tiny {k}": str(p) for k, p in build_tiny_models(Path(tmp), KEYS).items()}
        sources.update(dict(item.split("=", 1) for item in args.model_id))
        for name, path in sources.items():
            tokenizer = AutoTokenizer.from_pretrained(path)
            print(f"{name} ({type(tokenizer).__name__}, {tokenizer.vocab_size} pieces)")
            for open_, close in CANDIDATES:
                ids = tokenizer(SENTENCE.format(open=open_, close=close), add_special_tokens=False)["input_ids"]
                pieces = len(tokenizer(open_, add_special_tokens=False)["input_ids"])
                print(f"  {open_.strip():4s} {close:4s} unknown tokens {ids.count(tokenizer.unk_token_id)}  "
                      f"pieces of the opening marker {pieces}  in the sample {texts.count(open_.strip())}")


if __name__ == "__main__":
    main()
