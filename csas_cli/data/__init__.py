"""The data flow before the model: pairs read and split (pairs.py), tokenized (features.py), batched (batches.py)."""
