"""What each command does beyond one training run, one module a command: finetune-all, sweep, translate, evaluate,
merge and merge-all, bench (with workloads.py), tiny-models; summary.py holds the closing tables."""
