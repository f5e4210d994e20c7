#!/usr/bin/env python3
"""How long `csas check-data` takes on a large file: 100,000 pairs by default, with one model's tokenizer.

The pairs are the shipped sample's and pretraining file's, repeated with a running number appended to both sides (so
they are not all duplicates, and the numbers check has figures to compare). Each stage is timed separately, in the
same process and on the same rows: reading the file (the baseline every command pays), the data checks, the
misaligned check (its lexical part), and the tokenizer-length count; the total is also given as a multiple of the reading time. Medians of --rounds runs.

    python scripts/bench_check_data.py [--pairs 100000] [--which opus_mt_en_fr] [--model-id DIR] [--rounds 3]

Without --model-id the tokenizer comes from a tiny checkpoint of the model's family built into a temporary folder
(`csas tiny-models`): the same tokenizer class as the real model, with a smaller SentencePiece vocabulary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csas_cli.commands.check_data import DataChecks, check_data, length_check, load_tokenizers  # noqa: E402
from csas_cli.data.alignment import misaligned  # noqa: E402
from csas_cli.data.checks import run_checks  # noqa: E402
from csas_cli.data.pairs import read_pairs  # noqa: E402

ASSETS = ROOT / "csas_cli" / "assets"


def write_pairs(path: Path, n: int) -> None:
    rows = []
    for name in ("sample_pairs.jsonl", "pretrain_pairs.jsonl"):
        rows += [json.loads(line) for line in (ASSETS / name).read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            if i >= len(rows):
                row["source"] = f"{row['source']} ({i})"
                row["target"] = f"{row['target']} ({i})"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--which", default="opus_mt_en_fr")
    parser.add_argument("--model-id", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.jsonl"
        write_pairs(data, args.pairs)
        model_id = args.model_id
        if model_id is None:
            from csas_cli.commands.tiny import build_tiny_models

            model_id = str(build_tiny_models(Path(tmp) / "models", [args.which])[args.which])
        tokenizer = load_tokenizers({args.which: model_id}, None)[args.which]
        stages: dict[str, list[float]] = {"read": [], "checks": [], "alignment": [], "tokenizer": [], "command": []}
        for _ in range(args.rounds):
            seconds, examples = timed(lambda: list(read_pairs(data)))
            stages["read"].append(seconds)
            stages["checks"].append(timed(lambda: run_checks(examples))[0])
            stages["alignment"].append(timed(lambda: misaligned(examples, range(len(examples))))[0])
            stages["tokenizer"].append(timed(lambda: length_check(
                args.which, tokenizer, examples, max_source_len=512, max_target_len=512))[0])
            stages["command"].append(timed(lambda: check_data(
                data, DataChecks(which=[args.which], model_id=model_id)))[0])
    median = {name: statistics.median(values) for name, values in stages.items()}
    print(f"check-data on {args.pairs:,} pairs with {args.which}'s tokenizer ({model_id}); medians of {args.rounds}")
    for name, seconds in median.items():
        print(f"  {name:<10} {seconds:7.2f} s  ({seconds / median['read']:5.1f} x reading)")
    verdict = "under" if median["command"] < 60 else "OVER"
    print(f"whole command: {median['command']:.1f} s, {verdict} the 60 s target")


if __name__ == "__main__":
    main()
