"""Inference: which model a command means (source.py), loading and generating with it (generation.py), and corpus
scores (scoring.py); used by translate, evaluate, merge and by evaluation during training."""
