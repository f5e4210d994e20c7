"""Training: a run's life cycle (run.py), the recipe and its loop (recipe.py), the loss, evaluation during training,
checkpoints and resuming, preemption, torchrun, and the one writer of the run directory (rundir.py)."""
