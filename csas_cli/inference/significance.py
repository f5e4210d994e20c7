"""Whether one system's translations are better than another's, or the difference is noise: sacrebleu's paired
bootstrap resampling (Koehn 2004; what `sacrebleu --paired-bs` runs for WMT-style comparisons).

`paired_bootstrap` scores every system against one baseline on the same rows with sacrebleu's own `PairedTest`:
BLEU and chrF, each with its bootstrap 95% confidence interval and, for each system but the baseline, the p-value
of its difference to the baseline. The resamples are drawn from sacrebleu's seed (SACREBLEU_SEED, 12345 unless
set), so a comparison gives the same p-values every time it runs. Pure apart from sacrebleu; tested against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

RESAMPLES = 1000
"""Bootstrap resamples: sacrebleu's default for the paired bootstrap test."""
ALPHA = 0.05
"""A difference with a p-value below this is significant."""


def bootstrap_seed() -> int | None:
    """The seed sacrebleu's resampling uses: SACREBLEU_SEED, 12345 unless set, None for `none` (unseeded). A value
    sacrebleu would fail on, or 0 (which its paired test takes as no seed at all), is refused in one line."""
    from ..errors import SettingsError

    seed = os.environ.get("SACREBLEU_SEED", "12345").strip()
    if seed.lower() == "none":
        return None
    try:
        value = int(seed)
    except ValueError:
        raise SettingsError(f"SACREBLEU_SEED={seed!r}: expected a whole number, or none for no seed") from None
    if value <= 0:
        raise SettingsError(f"SACREBLEU_SEED={seed}: sacrebleu's paired test takes 0 (or less) as no seed; set a "
                            "positive number, or none")  # fmt: skip
    return value


@dataclass(frozen=True)
class Paired:
    """One system's scores against the baseline of its comparison."""

    bleu: float
    chrf: float
    bleu_ci: float
    """Half the width of BLEU's bootstrap 95% confidence interval (the interval is the score +/- this)."""
    chrf_ci: float
    p_bleu: float | None
    """The p-value of the BLEU difference to the baseline; None for the baseline itself."""
    p_chrf: float | None
    delta_bleu: float
    """This system's score minus the baseline's (0 for the baseline)."""
    delta_chrf: float

    @property
    def significant(self) -> bool:
        """Its chrF differs from the baseline's with p < ALPHA (chrF is the figure csas chooses models by). No
        difference at all is never significant: sacrebleu's p-value, following multeval, counts a resample as
        extreme only when its difference exceeds the real one, so identical translations get the smallest p."""
        return self.p_chrf is not None and self.p_chrf < ALPHA and self.delta_chrf != 0

    def verdict(self, baseline: str) -> str:
        """In words: `baseline`, `better than B (p = 0.002)`, `worse than B (p = 0.010)`, `no significant
        difference from B (p = 0.412)`, or `the same chrF as B`."""
        if self.p_chrf is None:
            return "baseline"
        if self.delta_chrf == 0:
            return f"the same chrF as {baseline}"
        p = f"p = {self.p_chrf:.3f}"
        if not self.significant:
            return f"no significant difference from {baseline} ({p})"
        return f"{'better' if self.delta_chrf > 0 else 'worse'} than {baseline} ({p})"


def optional(value: float | None) -> float | None:
    return None if value is None else float(value)


def paired_bootstrap(
    baseline: Sequence[str], systems: Sequence[Sequence[str]], references: Sequence[str], resamples: int = RESAMPLES
) -> tuple[Paired, list[Paired], dict[str, str]]:
    """The baseline's scores, each system's against it (in `systems`' order), and the signatures (`BLEU`, `chrF`:
    sacrebleu's, with the resamples and the seed). Every hypothesis list holds one line per reference."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    for hypotheses in (baseline, *systems):
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    named = [("baseline", list(baseline)), *((f"system {i}", list(h)) for i, h in enumerate(systems))]
    test = PairedTest(named, {"BLEU": BLEU(), "chrF": CHRF()}, [list(references)], test_type="bs",
                      n_samples=resamples)  # fmt: skip
    signatures, scores = test()
    bleu_key, chrf_key = [key for key in scores if key != "System"]
    bleu, chrf = scores[bleu_key], scores[chrf_key]
    base_bleu, base_chrf = bleu[0].score, chrf[0].score
    results = [Paired(float(b.score), float(c.score), float(b.ci), float(c.ci), optional(b.p_value),
                      optional(c.p_value), float(b.score - base_bleu), float(c.score - base_chrf))
               for b, c in zip(bleu, chrf)]  # fmt: skip
    named_signatures = {"BLEU": str(signatures[bleu_key]), "chrF": str(signatures[chrf_key])}
    return results[0], results[1:], named_signatures


__all__ = ["ALPHA", "Paired", "RESAMPLES", "bootstrap_seed", "paired_bootstrap"]
