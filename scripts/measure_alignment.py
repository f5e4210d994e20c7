"""What `csas check-data` catches of misaligned pairs and documents: precision and recall against planted ones.

    python scripts/measure_alignment.py [--data PAIRS] [--publications 3] [--seeds 5] [--model-root DIR]
                                        [--score-with KEY ...] [--device cpu]

For each seed, the targets of --publications publications of the file (the shipped sample by default) are shuffled
among the rows of their direction inside the publication, as a memory whose document was misaligned is; a row
whose target did not move is not counted as planted. Then, as check-data computes them (data/alignment.py):

- rows: the misaligned check's precision and recall, by the lexical check alone, by the model's score alone (with
  --score-with: the tiny models of `csas tiny-models`, built here unless --model-root has them), and both as
  check-data combines them (a model's flag stands unless the lexical check vouches for the pair);
- publications: how many planted publications the per-publication summary lists, how many it lists that were not
  planted, and whether the planted ones come first.

Last, the cost: seconds per 100,000 pairs for the lexical check and for each model's scoring, on this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csas_cli.data.alignment import (  # noqa: E402
    PUBLICATION_CHECKS,
    misaligned,
    misaligned_by_score,
    publication_summary,
)
from csas_cli.data.checks import run_checks  # noqa: E402
from csas_cli.data.pairs import Example, load_examples  # noqa: E402


def plant(examples: list[Example], publications: int, seed: int) -> tuple[list[Example], set[int], set[str]]:
    """The rows with the targets of `publications` publications shuffled; the rows whose target moved; those
    publications."""
    rng = random.Random(seed)
    by_pub: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        if ex.pub_number is not None:
            by_pub[ex.pub_number].append(i)
    chosen = set(rng.sample(sorted(p for p, rows in by_pub.items() if len(rows) >= 6), publications))
    out = list(examples)
    moved = set()
    for pub in sorted(chosen):
        for lang in ("en", "fr"):
            rows = [i for i in by_pub[pub] if examples[i].source_lang == lang]
            targets = [examples[i].target for i in rows]
            rng.shuffle(targets)
            for i, target in zip(rows, targets):
                if target != examples[i].target:
                    out[i] = Example(examples[i].source, target, examples[i].source_lang, examples[i].target_lang,
                                     examples[i].pub_number, examples[i].line)  # fmt: skip
                    moved.add(i)
    return out, moved, chosen


def precision_recall(flagged: set[int], planted: set[int]) -> tuple[float, float]:
    hits = len(flagged & planted)
    return (hits / len(flagged) if flagged else 1.0), (hits / len(planted) if planted else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "csas_cli" / "assets" / "sample_pairs.jsonl")
    parser.add_argument("--publications", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--score-with", action="append", default=[], help="registry keys, e.g. opus_mt_en_fr")
    parser.add_argument("--model-root", type=Path, help="MODEL_ROOT/KEY snapshots (default: tiny models built here)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    examples = load_examples(args.data, ["en", "fr"]).examples
    scorer = None
    if args.score_with:
        from csas_cli.inference.generation import Runtime, load_for_inference
        from csas_cli.inference.pair_scores import PairScorer
        from csas_cli.inference.source import resolve_source
        from csas_cli.registry import REGISTRY

        root = args.model_root
        if root is None:
            from csas_cli.commands.tiny import build_tiny_models

            root = Path(tempfile.mkdtemp()) / "models"
            build_tiny_models(root, args.score_with)
        models = {}
        for key in args.score_with:
            loaded = load_for_inference(resolve_source(None, key, str(root / key)), runtime=Runtime(args.device))
            for lang in REGISTRY[key].source_langs:
                models[f"{lang}->{'fr' if lang == 'en' else 'en'}"] = loaded
        scorer = PairScorer(models)

    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    pub_found, pub_extra, first = [], [], []
    lexical_s, model_s = [], []
    for seed in range(args.seeds):
        rows, planted, chosen = plant(examples, args.publications, seed)
        judged = [i for i, ex in enumerate(rows) if ex.source and ex.target]
        start = time.perf_counter()
        lexical = set(misaligned(rows, judged).details)
        lexical_s.append((time.perf_counter() - start) / len(judged))
        results["lexical"].append(precision_recall(lexical, planted))
        flagged = set(lexical)
        if scorer is not None:
            start = time.perf_counter()
            values = scorer.score([rows[i] for i in judged])
            model_s.append((time.perf_counter() - start) / len(judged))
            scores = {i: v for i, v in zip(judged, values) if v is not None}
            results["model"].append(precision_recall(set(misaligned_by_score(scores)[0]), planted))
            flagged = set(misaligned(rows, judged, scores).details)
            results["both"].append(precision_recall(flagged, planted))
        others = {i for c in run_checks(rows) if c.name in PUBLICATION_CHECKS for i in c.flagged}
        found, _ = publication_summary(rows, flagged | others)
        listed = [f.publication for f in found]
        pub_found.append(len(chosen & set(listed)))
        pub_extra.append(len(set(listed) - chosen))
        first.append(set(listed[: len(chosen)]) == chosen)
    print(f"{args.data.name}: {len(examples)} pairs; {args.publications} publications shuffled per seed, "
          f"{args.seeds} seeds")  # fmt: skip
    for name, values in results.items():
        precision = statistics.mean(p for p, _ in values)
        recall = statistics.mean(r for _, r in values)
        print(f"rows, {name:8} precision {precision:.3f}  recall {recall:.3f}")
    print(f"publications: {sum(pub_found)} of {args.publications * args.seeds} planted listed, "
          f"{sum(pub_extra)} others listed; planted ones first in {sum(first)} of {args.seeds}")  # fmt: skip
    print(f"cost per 100,000 pairs: lexical {100_000 * statistics.median(lexical_s):.1f} s"
          + (f", model scoring {100_000 * statistics.median(model_s):.0f} s ({args.device})" if model_s else ""))
    json.dump({"results": {k: v for k, v in results.items()}}, sys.stderr)
    sys.stderr.write("\n")


if __name__ == "__main__":
    main()
