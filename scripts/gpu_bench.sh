#!/usr/bin/env bash
# The GPU measurements of docs/performance.md, on a machine that has csas's dependencies (torch, transformers, peft,
# typer, rich, sacrebleu) but not csas itself: it runs from this checkout, offline, random-init weights only.
#
#   scripts/gpu_bench.sh OUT_DIR [main|variants|sizing] [WHICH]
#
#   main      bench_vs_hf.py --device cuda --random-init --which WHICH (default all): csas vs the HF path for the
#             three architectures at the finetune-all table's batch sizes (OUT_DIR/main-WHICH.txt, .json); one
#             architecture at a time (opus_mt_en_fr, m2m100_418m, mbart50_mmt_fr) fits a shorter job
#   variants  mbart-50 with each engine variant (cuDNN attention allowed, full logits, pad8, merged micro-batches),
#             to see what each element buys there (OUT_DIR/variants.txt)
#   sizing    csas bench for each architecture, plain LoRA and QLoRA (needs bitsandbytes), fixed batches and a
#             token budget (OUT_DIR/sizing.jsonl)
#
# Each stage also writes OUT_DIR/versions.txt (GPU, driver, library versions). Stages are separate so that each
# fits a time-limited job; run them in the order above.
set -euo pipefail

out=${1:?usage: scripts/gpu_bench.sh OUT_DIR [main|variants|sizing] [WHICH]}
stage=${2:-main}
which=${3:-all}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
bench_vs_hf=("python3" "$root/scripts/bench_vs_hf.py" --device cuda --random-init)

case $stage in
  main | variants | sizing) ;;
  *)
    echo "gpu_bench.sh: unknown stage '$stage'; choose main, variants or sizing" >&2
    exit 2
    ;;
esac

mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
    echo "nvidia-smi: not available"
  python3 -c 'from csas_cli.files import library_versions; print(library_versions())'
} >"$out/versions.txt"

case $stage in
  main)
    "${bench_vs_hf[@]}" --which "$which" --json "$out/main-$which.json" | tee "$out/main-$which.txt"
    ;;
  variants)
    : >"$out/variants.txt"
    for variant in cudnn-sdpa full-logits pad8 merged; do
      "${bench_vs_hf[@]}" --which mbart50_mmt_fr --rounds 2 --csas-variant "$variant" | tee -a "$out/variants.txt"
    done
    ;;
  sizing)
    : >"$out/sizing.jsonl"
    for key in opus_mt_en_fr m2m100_418m mbart50_mmt_fr; do
      for flags in "--no-qlora" "" "--no-qlora --max-tokens 4096"; do
        # One JSON line per measurement; a failed one (QLoRA without bitsandbytes, say) is recorded and skipped.
        # shellcheck disable=SC2086  # $flags is a list of flags
        if record=$(python3 -m csas_cli bench --which "$key" --random-init --bf16 --device cuda --steps 10 \
          $flags --json); then
          python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])))' "$record" >>"$out/sizing.jsonl"
        else
          echo "{\"which\": \"$key\", \"flags\": \"$flags\", \"failed\": true}" >>"$out/sizing.jsonl"
        fi
      done
    done
    ;;
esac
