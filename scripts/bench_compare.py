#!/usr/bin/env python
"""How long `csas compare` takes for the five models of a finetune-all root on two test sets, and how much of it a
rerun with one more model saves (the other models' translations are kept in --output-dir and reused).

It builds the tiny models (`csas tiny-models`), trains each for --steps steps on the shipped sample (finetune-all),
writes a general test set from the tiny bases' pretraining text, then times, through the real CLI:

1. `csas compare` over four of the runs on the held-out sample and the general set (first run: everything is
   translated, the bases too on the general set);
2. the same with the fifth run added (only it and its base translate);
3. the same again (nothing translates).

Printed: each wall time, what each translated and reused, and the ratios of 2 and 3 over 1. The decoding settings
are the given ones (--num-beams, --max-new-tokens); models are loaded on the CPU.

    python scripts/bench_compare.py
    python scripts/bench_compare.py --steps 20 --num-beams 4 --rows 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "csas_cli" / "assets"


def csas(*args: object, capture: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "csas_cli", *map(str, args)], env=env, text=True,
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"csas {' '.join(map(str, args[:2]))} failed:\n{done.stderr[-3000:]}")
    return done


def test_sets(folder: Path, rows: int) -> tuple[Path, Path]:
    heldout = ASSETS.joinpath("heldout_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    general = ASSETS.joinpath("pretrain_pairs.jsonl").read_text(encoding="utf-8").splitlines()[1000 : 1000 + rows]
    (folder / "heldout.jsonl").write_text("\n".join(heldout[:rows]) + "\n", encoding="utf-8")
    (folder / "general.jsonl").write_text("\n".join(general) + "\n", encoding="utf-8")
    return folder / "heldout.jsonl", folder / "general.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="Training steps per model (default: 5).")
    parser.add_argument("--rows", type=int, default=200, help="Rows of each test set (default: 200).")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--work-dir", type=Path, help="Keep the models, runs and translations here.")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    models, runs = work / "models", work / "runs"
    if not models.is_dir():
        csas("tiny-models", models)
    csas("finetune-all", "--data", ASSETS / "sample_pairs.jsonl", "--output-dir", runs, "--model-root", models,
         "--max-steps", args.steps, "--disable-tqdm")  # fmt: skip
    heldout, general = test_sets(work, args.rows)
    keys = sorted(p.name for p in runs.iterdir() if (p / "finished.json").is_file())
    translations = work / "translations"
    subprocess.run(["rm", "-rf", str(translations)], check=True)
    common = ["--data", heldout, "--data", general, "--output-dir", translations, "--num-beams", args.num_beams,
              "--max-new-tokens", args.max_new_tokens, "--device", "cpu", "--json"]  # fmt: skip
    timings = []
    for label, chosen in (("first run, 4 models", keys[:4]), ("one model added", keys),
                          ("rerun, nothing new", keys)):  # fmt: skip
        start = time.perf_counter()
        result = json.loads(csas("compare", *(runs / k for k in chosen), *common).stdout)
        seconds = time.perf_counter() - start
        timings.append(seconds)
        print(f"{label:22s} {seconds:7.1f} s  translated {len(result['translated']):2d}, reused "
              f"{len(result['reused']):2d}  ({', '.join(result['translated']) or 'nothing'})")  # fmt: skip
    print(f"one model added / first run: {timings[1] / timings[0]:.2f}")
    print(f"rerun / first run: {timings[2] / timings[0]:.2f}")
    print(f"(work directory: {work})")


if __name__ == "__main__":
    main()
