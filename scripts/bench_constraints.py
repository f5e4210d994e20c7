#!/usr/bin/env python
"""What `--term-constraints` costs and buys: the same model translating the same sentences with and without the
glossary's terms as decoding constraints (inference/constraints.py).

Both ways run in csas's own code path (`translate_texts`), alternating within one run (plain, constrained, plain,
... for --rounds rounds) after one untimed warm-up batch each. Reported per way: the median sentences/s over the
rounds, chrF against the references and term success with the glossary. The last line is `slowdown: X.XXx` (plain
sentences/s over constrained).

    python scripts/bench_constraints.py [--which opus_mt_en_fr] [--model RUN_OR_MERGED] [--data held.jsonl]
                                        [--glossary terms.tsv] [--num-beams 4] [--rounds 3] [--device cpu]

Default: the tiny pretrained model of --which (what `make demo` fine-tunes) on the shipped held-out sentences of its
first source language, with the shipped glossary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csas_cli.registry import MODEL_KEYS  # noqa: E402 - after the path set-up

WAYS = ("plain", "constrained")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", default="opus_mt_en_fr", choices=MODEL_KEYS)
    parser.add_argument("--model", help="a run, merged model or base snapshot (default: the tiny pretrained model)")
    parser.add_argument("--data", help="held-out pairs (default: the shipped held-out pairs)")
    parser.add_argument("--glossary", help="default: the shipped glossary")
    parser.add_argument("--sentences", type=int, default=0, help="the first N sentences (0: all)")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench_translate import heldout  # this folder's: the same held-out sentences

    from csas_cli.commands.tiny import build_tiny_model
    from csas_cli.shipped import HELDOUT_PAIRS
    from csas_cli.data.glossary import read_glossary
    from csas_cli.data.terms import term_success
    from csas_cli.inference.constraints import TermConstraints
    from csas_cli.inference.generation import GenerationSettings, Runtime, load_for_inference, translate_texts
    from csas_cli.inference.scoring import score
    from csas_cli.inference.source import resolve_source
    from csas_cli.modeling import quiet_libraries

    quiet_libraries()
    glossary = read_glossary(Path(args.glossary) if args.glossary else HELDOUT_PAIRS.parent / "glossary.tsv")
    direction, sources, references = heldout(args.which, args.data, args.sentences)
    settings = GenerationSettings(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size)  # fmt: skip
    constraints = {"plain": None, "constrained": TermConstraints(glossary, direction.source, direction.target)}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else build_tiny_model(args.which, Path(tmp) / "model")
        recorded = any((model / record).is_file() for record in ("run.json", "csas_merge.json"))
        source = resolve_source(model, None, None) if recorded else resolve_source(None, args.which, str(model))
        loaded = load_for_inference(source, runtime=Runtime(args.device))
        for way in WAYS:
            translate_texts(loaded, sources[: args.batch_size], direction, settings, constraints=constraints[way])
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        lines: dict[str, list[str]] = {}
        for _ in range(args.rounds):
            for way in WAYS:
                start = time.perf_counter()
                lines[way] = translate_texts(loaded, sources, direction, settings, constraints=constraints[way]).lines
                rates[way].append(len(sources) / (time.perf_counter() - start))
    print(f"{source.label} ({direction}, {len(sources)} sentences, beam {args.num_beams}, {args.device}); "
          f"medians of {args.rounds} rounds")  # fmt: skip
    for way in WAYS:
        chrf = score(lines[way], references)[1]
        terms = term_success(glossary, sources, lines[way], direction.source, direction.target)
        print(f"{way:12s} {statistics.median(rates[way]):7.1f} sentences/s  chrF {chrf:6.2f}  "
              f"terms {terms.rate if terms.rate is not None else float('nan'):.3f} ({terms.hits}/{terms.occurrences})")
    print(f"slowdown: {statistics.median(rates['plain']) / statistics.median(rates['constrained']):.2f}x")


if __name__ == "__main__":
    main()
