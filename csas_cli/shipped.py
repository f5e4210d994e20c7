"""The files csas ships in its package (assets/): the domain sample the demo and the tests train on, the held-out
publications the demo scores on, and the general text the tiny bases were pretrained on."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
SAMPLE_PAIRS = ASSETS / "sample_pairs.jsonl"
"""The shipped domain text: what csas fine-tunes on in tests and the demo."""
HELDOUT_PAIRS = ASSETS / "heldout_pairs.jsonl"
"""More of the domain, from later publications and with no sentence of SAMPLE_PAIRS: what the demo scores on."""
PRETRAIN_PAIRS = ASSETS / "pretrain_pairs.jsonl"
"""The shipped general text the tiny bases were pretrained on (disjoint templates from SAMPLE_PAIRS)."""
