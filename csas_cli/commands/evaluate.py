"""`csas evaluate`: translate the sources of a JSONL pairs file and score them against the targets with sacrebleu.

Only the rows of the model's direction are scored (the same validated reader and language filter as training).
BLEU and chrF are sacrebleu's corpus scores with its default settings (13a tokenization for BLEU, chrF with
character n-grams up to 6), reported with sacrebleu's signatures so that numbers from different runs can be
compared. `--compare-base` scores the run's (or merged model's) base model on the same rows.

JSON (`--json`): one model gives
    {"model", "which", "direction", "n", "bleu", "chrf", "bleu_signature", "chrf_signature"}
and with --compare-base
    {"base": {...}, "tuned": {...}, "delta": {"bleu": tuned - base, "chrf": tuned - base}}.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import SettingsError
from ..inference.generation import GenerationSettings
from ..inference.scoring import score
from ..inference.source import Direction, ModelSource


@dataclass(frozen=True)
class Scores:
    """Corpus scores of one model on one set of rows."""

    model: str
    which: str
    direction: str
    n: int
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scores_for(
    source: ModelSource, direction: Direction, hypotheses: Sequence[str], references: Sequence[str]
) -> Scores:
    bleu, chrf, bleu_sig, chrf_sig = score(hypotheses, references)
    return Scores(source.label, source.which, str(direction), len(references), bleu, chrf, bleu_sig, chrf_sig)


@dataclass(frozen=True)
class Report:
    tuned: Scores
    base: Scores | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.base is None:
            return self.tuned.to_dict()
        return {
            "base": self.base.to_dict(),
            "tuned": self.tuned.to_dict(),
            "delta": {"bleu": self.tuned.bleu - self.base.bleu, "chrf": self.tuned.chrf - self.base.chrf},
        }


def run_evaluate(
    *,
    data: Path,
    model: Path | None,
    which: str | None,
    model_id: str | None,
    source_lang: str | None,
    limit: int | None,
    compare_base: bool,
    hypotheses_path: Path | None,
    overwrite: bool,
    settings: GenerationSettings,
    bar: bool,
    revision: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Report:
    """Everything `csas evaluate` does, up to the report; writes --hypotheses (the tuned model's) when asked."""
    from ..data.pairs import load_examples
    from ..files import check_output_file, write_lines
    from ..inference.generation import load_for_inference, translate_texts
    from ..inference.source import resolve_direction, resolve_source
    from ..progress import counting_bar
    from ..progress import say as progress_say

    if limit is not None and limit < 1:
        raise SettingsError(f"--limit must be at least 1, got {limit}")
    source = resolve_source(model, which, model_id, revision=revision)
    direction = resolve_direction(source.spec, source_lang)
    base_source = source.base() if compare_base else None
    check_output_file(hypotheses_path, overwrite, flag="--hypotheses")
    examples = load_examples(data, [direction.source]).examples[:limit]
    sources = [ex.source for ex in examples]
    references = [ex.target for ex in examples]

    tell = say if say is not None else progress_say

    def translate(what: ModelSource, label: str) -> list[str]:
        loaded = load_for_inference(what, say=tell)
        tell(f"{label}: scoring {what.label} on {len(sources)} rows ({direction}) of {data}")
        try:
            with counting_bar(len(sources), bar, label, say=tell) as advance:
                return translate_texts(loaded, sources, direction, settings, advance).lines
        finally:
            loaded.release()  # the base, if compared, loads next

    hypotheses = translate(source, "translating")
    tuned = scores_for(source, direction, hypotheses, references)
    if hypotheses_path is not None:
        write_lines(hypotheses, hypotheses_path, flag="--hypotheses")
    base = None
    if base_source is not None:
        base = scores_for(base_source, direction, translate(base_source, "translating (base)"), references)
    return Report(tuned, base)


def print_report(report: Report, stream: Any = None) -> None:
    """A small table: BLEU, chrF and rows per model (and the difference), the signatures, and with a base a last
    line `chrF before -> after: 33.9 -> 74.9`."""
    from rich.table import Table

    from ..progress import table_console

    first = report.base or report.tuned
    table = Table("model", "BLEU", "chrF", "rows", title=f"{first.which} {first.direction}")
    rows = [("base", report.base), ("tuned", report.tuned)] if report.base else [("", report.tuned)]
    for name, s in rows:
        assert s is not None
        table.add_row(f"{name}: {s.model}" if name else s.model, f"{s.bleu:.2f}", f"{s.chrf:.2f}", str(s.n))
    if report.base is not None:
        delta = report.to_dict()["delta"]
        table.add_row("delta", f"{delta['bleu']:+.2f}", f"{delta['chrf']:+.2f}", "")
    console = table_console(stream or sys.stdout)
    console.print(table)
    console.print(f"BLEU {report.tuned.bleu_signature}", markup=False)
    console.print(f"chrF {report.tuned.chrf_signature}", markup=False)
    if report.base is not None:  # last, so a script or a log shows what fine-tuning bought in one line
        console.print(f"chrF before -> after: {report.base.chrf:.1f} -> {report.tuned.chrf:.1f}", markup=False)


__all__ = ["Report", "Scores", "print_report", "run_evaluate", "score"]
