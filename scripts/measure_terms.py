"""Term success with and without glossary-aware training, on the shipped held-out pairs and glossary.

    python scripts/measure_terms.py [--model-id SNAPSHOT] [--epochs 1] [--ratio 0.5] [--lora-targets q_proj,k_proj,v_proj]

Trains two adapters of opus_mt_en_fr with the demo's settings (`make demo`), the same except that the second is
trained with `--glossary --term-annotation RATIO`, then scores on the held-out pairs, with the shipped glossary:
the base, the plain adapter, the plain adapter given annotated sources, the glossary-aware adapter on plain
sources and given annotated sources (`--apply-glossary`), each of the base, the plain adapter and the glossary-aware
adapter given annotated sources again with `--term-constraints`, and the references' own rate (the ceiling). Without
--model-id it builds the tiny pretrained OPUS-MT checkpoint `make demo` uses. Prints one line per model and the
figures as JSON last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "csas_cli" / "assets"
KEY = "opus_mt_en_fr"


def csas(*args: object) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "csas_cli", *map(str, args)], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"csas {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-id", help="the base (default: the tiny pretrained OPUS-MT checkpoint)")
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--ratio", default="0.5", help="--term-annotation of the glossary-aware adapter")
    parser.add_argument("--lora-targets", default="q_proj,k_proj,v_proj")
    args = parser.parse_args()
    glossary, held = ASSETS / "glossary.tsv", ASSETS / "heldout_pairs.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model_id
        if model is None:
            csas("tiny-models", work / "models", "--only", KEY)
            model = work / "models" / KEY
        common = ["--which", KEY, "--model-id", model, "--data", ASSETS / "sample_pairs.jsonl", "--lr", "3e-3",
                  "--epochs", args.epochs, "--logging-steps", "50", "--eval-steps", "1000", "--save-steps", "1000",
                  "--lora-targets", args.lora_targets, "--no-qlora", "--disable-tqdm"]  # fmt: skip
        csas("finetune", *common, "--output-dir", work / "plain")
        csas("finetune", *common, "--output-dir", work / "aware", "--glossary", glossary, "--term-annotation",
             args.ratio)  # fmt: skip
        rows = {}
        scoring = ["--data", held, "--max-new-tokens", "128", "--glossary", glossary, "--json"]
        runs = {
            "base": ["--which", KEY, "--model-id", model],
            "adapter": ["--model", work / "plain" / KEY],
            "adapter, annotated sources": ["--model", work / "plain" / KEY, "--apply-glossary"],
            "glossary-aware adapter": ["--model", work / "aware" / KEY],
            "glossary-aware adapter, annotated sources": ["--model", work / "aware" / KEY, "--apply-glossary"],
            "base, term constraints": ["--which", KEY, "--model-id", model, "--term-constraints"],
            "adapter, term constraints": ["--model", work / "plain" / KEY, "--term-constraints"],
            "glossary-aware adapter, annotated sources, term constraints": ["--model", work / "aware" / KEY,
                                                                          "--apply-glossary", "--term-constraints"],
        }
        for name, which in runs.items():
            report = json.loads(csas("evaluate", *which, *scoring))
            rows[name] = {"chrf": round(report["chrf"], 2), "terms": round(report["terms"]["success"], 3)}
            rows["references"] = {"terms": round(report["reference_terms"]["success"], 3)}
            print(f"{name:62s} chrF {rows[name]['chrf']:6.2f}  terms {rows[name]['terms']:.3f}", flush=True)
        print(f"{'references (the ceiling)':62s} {'':12s}terms {rows['references']['terms']:.3f}")
        print(json.dumps({"epochs": args.epochs, "ratio": args.ratio, "lora_targets": args.lora_targets, **rows}))


if __name__ == "__main__":
    main()
