"""`csas evaluate`: translate the sources of a JSONL pairs file and score them against the targets with sacrebleu.

Only the rows of the model's direction are scored (the same validated reader and language filter as training).
BLEU and chrF are sacrebleu's corpus scores with its default settings (13a tokenization for BLEU, chrF with
character n-grams up to 6), reported with sacrebleu's signatures so that numbers from different runs can be
compared. `--compare-base` scores the run's (or merged model's) base model on the same rows.

JSON (`--json`): one model gives
    {"model", "which", "direction", "n", "bleu", "chrf", "bleu_signature", "chrf_signature"}
and with --compare-base
    {"base": {...}, "tuned": {...}, "delta": {"bleu": tuned - base, "chrf": tuned - base}}.

With `--glossary FILE` each model also gets its term success rate (csas_cli/data/terms.py: for every glossary term found
in a source, whether the translation uses the entry's target term) and its most-missed terms, and the report gives
the references' own rate, the ceiling a term metric can show on these rows; `--apply-glossary` translates sources
annotated with the glossary's target terms (for a model trained with --term-annotation; the base, which was not,
translates the plain sources, and each model's "apply_glossary" says which it got). Every report also flags
outputs in the wrong language, copies of the source, repetition loops and length-ratio outliers
(inference/quality.py). JSON adds, per model, "terms" (with a glossary), "apply_glossary" and "quality", and at the top level
"reference_terms". `--translations FILE` scores a file of translations (one line per scored row) instead of a model.

Whether the glossary fits the rows (data/fit.py): when the references' own rate is low, a warning names the entries
they contradict most (JSON "glossary_fit"); `--term-constraints` forces the entries the references confirm (or
those `--confirm-with DATA` confirms; all with `--constrain-all`), and says so (JSON "constrained_entries").

`--card` adds the tuned model's BLEU and chrF to the model card (README.md) of a merged or exported model as a
model-index entry (cards.py), replacing one of the same test file and direction; a run or a base has no card, and a
line says so.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..cards import CardResult, check_card, record_results
from ..data.aligned import aligned_paths
from ..data.fit import Fit, Forced, GlossaryOptions, fit_warning
from ..data.glossary import Glossary
from ..data.pairs import ReadOptions
from ..data.terms import TermScore, most_missed, term_success
from ..errors import SettingsError
from ..fields import setting
from ..inference.constraints import term_constraints_for
from ..inference.generation import GenerationSettings, Runtime
from ..inference.quality import QualityReport, quality_flags
from ..inference.scoring import score
from ..inference.source import EXPORTED, MERGED, ModelChoice, ModelSource
from ..languages import Direction
from ..progress import counted, print_json


@dataclass(frozen=True)
class Terms:
    """Term success of one set of translations against a glossary."""

    success: float | None
    hits: int
    occurrences: int
    most_missed: list[tuple[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "hits": self.hits, "occurrences": self.occurrences,
                "most_missed": [list(m) for m in self.most_missed]}  # fmt: skip


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
    quality: QualityReport | None = None
    terms: Terms | None = None
    apply_glossary: bool = False
    """The model translated sources annotated with the glossary's terms."""
    term_constraints: bool = False
    """The model translated with the glossary's terms as decoding constraints (inference/constraints.py)."""

    def to_dict(self) -> dict[str, Any]:
        record = {k: v for k, v in asdict(self).items() if k not in ("quality", "terms")}
        record["quality"] = None if self.quality is None else self.quality.to_dict()
        if self.terms is not None:
            record["terms"] = self.terms.to_dict()
        return record


def terms_of(
    glossary: Glossary | None, direction: Direction, sources: Sequence[str], outputs: Sequence[str]
) -> Terms | None:
    if glossary is None:
        return None
    return terms_from(glossary, term_success(glossary, sources, outputs, direction.source, direction.target))


def terms_from(glossary: Glossary, found: TermScore) -> Terms:
    return Terms(found.rate, found.hits, found.occurrences, most_missed(glossary, found))


@dataclass(frozen=True)
class GlossaryFit:
    """How the glossary fits the scored rows: the references' own term success (the ceiling) and, when it is low,
    the warning naming the entries they contradict most (data/fit.py)."""

    references: Terms
    warning: str | None
    contradicted: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.warning is None, "warning": self.warning, "contradicted": self.contradicted}


def glossary_fit(glossary: Glossary, direction: Direction, sources: Sequence[str],
                 references: Sequence[str]) -> tuple[GlossaryFit, Fit]:  # fmt: skip
    """The references' term success and per-entry use: the fit report, and the evidence for --term-constraints."""
    score = term_success(glossary, sources, references, direction.source, direction.target)
    fit = Fit.from_score(score, "the references")
    contradicted = [{"entry": glossary.entries[u.entry].label, "line": glossary.entries[u.entry].line,
                     "occurrences": u.occurrences, "used": u.used} for u in fit.contradicted()]  # fmt: skip
    return GlossaryFit(terms_from(glossary, score), fit_warning(glossary, fit), contradicted), fit


def scores_for(
    label: str, which: str, direction: Direction, sources: Sequence[str], hypotheses: Sequence[str],
    references: Sequence[str], glossary: Glossary | None = None, apply_glossary: bool = False,
    term_constraints: bool = False,
) -> Scores:
    bleu, chrf, bleu_sig, chrf_sig = score(hypotheses, references)
    return Scores(label, which, str(direction), len(references), bleu, chrf, bleu_sig, chrf_sig,
                  quality_flags(sources, hypotheses, direction.target),
                  terms_of(glossary, direction, sources, hypotheses), apply_glossary, term_constraints)  # fmt: skip


@dataclass(frozen=True)
class Report:
    tuned: Scores
    base: Scores | None = None
    fit: GlossaryFit | None = None
    """With --glossary: the references' own term success (the ceiling on these rows) and the fit warning."""
    forced: Forced | None = None
    """With --term-constraints: the entries forced, and why."""

    @property
    def reference_terms(self) -> Terms | None:
        return None if self.fit is None else self.fit.references

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.fit is not None:
            extra = {"reference_terms": self.fit.references.to_dict(), "glossary_fit": self.fit.to_dict()}
        if self.forced is not None:
            extra["constrained_entries"] = self.forced.to_dict()
        if self.base is None:
            return {**self.tuned.to_dict(), **extra}
        delta = {"bleu": self.tuned.bleu - self.base.bleu, "chrf": self.tuned.chrf - self.base.chrf}
        if self.tuned.terms is not None and self.base.terms is not None and None not in (
                self.tuned.terms.success, self.base.terms.success):
            delta["terms"] = self.tuned.terms.success - self.base.terms.success  # type: ignore[operator]
        return {"base": self.base.to_dict(), "tuned": self.tuned.to_dict(), "delta": delta, **extra}


@dataclass(frozen=True)
class Scoring:
    """What `csas evaluate` scores and where the model's translations go: the command's own options, each field its
    option (fields.setting)."""

    data: Path = setting(help="Pairs: .jsonl, .tmx, .tsv or SOURCE,TARGET files (the rows of the model's direction "
                         "are scored).")  # fmt: skip
    limit: int | None = setting(None, "Score only the first N rows of the direction.")
    compare_base: bool = setting(False, "Also score the base model, side by side.")
    hypotheses: Path | None = setting(None, "Write the model's translations here.")
    overwrite: bool = setting(False, "Replace an existing --hypotheses file.")
    translations: Path | None = setting(
        None, "Score this file of translations (a line per row) instead of a model."
    )
    card: bool = setting(False, "Add the scores to the model card (README.md) of the merged or exported model.")


def evaluate(
    scoring: Scoring, choice: ModelChoice, generation: GenerationSettings, *, runtime: Runtime = Runtime(),
    terms: GlossaryOptions = GlossaryOptions(), reading: ReadOptions = ReadOptions(), as_json: bool = False,
    bar: bool = False, say: Callable[[str], None] | None = None,
) -> None:
    """`csas evaluate`: score, then print the report (as JSON with `as_json`)."""
    report = run_evaluate(scoring, choice, generation, runtime=runtime, terms=terms, reading=reading, bar=bar,
                          say=say)  # fmt: skip
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)


def run_evaluate(
    scoring: Scoring, choice: ModelChoice, settings: GenerationSettings, *, runtime: Runtime = Runtime(),
    terms: GlossaryOptions = GlossaryOptions(), reading: ReadOptions = ReadOptions(), bar: bool = False,
    say: Callable[[str], None] | None = None,
) -> Report:
    """Everything `csas evaluate` does, up to the report; writes --hypotheses (the tuned model's) when asked."""
    from ..data.pairs import load_examples
    from ..data.terms import Annotator
    from ..files import check_output_file, write_lines
    from ..inference.generation import load_for_inference, translate_texts
    from ..inference.source import resolve_direction
    from ..progress import counting_bar
    from ..progress import say as progress_say

    tell = say if say is not None else progress_say
    data, limit, compare_base, overwrite = scoring.data, scoring.limit, scoring.compare_base, scoring.overwrite
    hypotheses_path, translations_path, apply_glossary = scoring.hypotheses, scoring.translations, terms.apply_glossary
    model, which, source_lang = choice.model, choice.which, choice.source_lang
    if limit is not None and limit < 1:
        raise SettingsError(f"--limit must be at least 1, got {limit}")
    if apply_glossary and terms.glossary is None:
        raise SettingsError("--apply-glossary needs --glossary FILE")
    if translations_path is not None:
        given = [name for name, on in (("--compare-base", compare_base), ("--apply-glossary", apply_glossary),
                                       ("--term-constraints", terms.term_constraints),
                                       ("--hypotheses", hypotheses_path is not None),
                                       ("--card", scoring.card)) if on]  # fmt: skip
        if given:
            raise SettingsError(f"--translations scores a file, no model translates: drop {' and '.join(given)}")
    glossary = terms.read()
    if translations_path is not None:
        if glossary is not None:
            tell(glossary.describe())
        return score_translations(data, translations_path, which, model, source_lang, limit, glossary, reading, tell)
    source = choice.source()
    direction = resolve_direction(source.spec, source_lang)
    if scoring.card and source.kind in (MERGED, EXPORTED):
        check_card(Path(source.model_id))  # someone's own README.md is refused before any work
    if glossary is not None and terms.term_constraints:
        term_constraints_for(glossary, source, direction)  # an exported model is refused before any work
    if glossary is not None:
        tell(glossary.describe())
    base_source = source.base() if compare_base else None
    check_output_file(hypotheses_path, overwrite, flag="--hypotheses")
    examples = load_examples(data, [direction.source], reading).examples[:limit]
    sources = [ex.source for ex in examples]
    references = [ex.target for ex in examples]
    fit, evidence = (None, None) if glossary is None else glossary_fit(glossary, direction, sources, references)
    if fit is not None and fit.warning is not None:
        tell(f"warning: {fit.warning}")
    forced = None
    constraints = None
    if glossary is not None and terms.term_constraints:
        forced = terms.forced(glossary, direction.source, direction.target, evidence, reading)
        tell(f"term constraints: {forced.describe()}")
        constraints = term_constraints_for(glossary, source, direction, forced.entries)
    annotated = sources
    apply_glossary = terms.annotates(source.term_annotation, tell, explain_off=False)
    if apply_glossary and glossary is not None:
        annotator = Annotator(glossary, direction.source, direction.target)
        annotated = [annotator.source(text) for text in sources]

    def translate(what: ModelSource, label: str, inputs: list[str]) -> list[str]:
        loaded = load_for_inference(what, say=tell, runtime=runtime)
        tell(f"{label}: scoring {what.label} on {counted(len(sources), 'row')} ({direction}) of {data}")
        try:
            with counting_bar(len(sources), bar, label, say=tell) as advance:
                return translate_texts(loaded, inputs, direction, settings, advance, constraints).lines
        finally:
            loaded.release()  # the base, if compared, loads next

    def scored(what: ModelSource, hypotheses: list[str], applied: bool) -> Scores:
        return scores_for(what.label, what.which, direction, sources, hypotheses, references, glossary, applied,
                          constraints is not None)  # fmt: skip

    hypotheses = translate(source, "translating", annotated)
    tuned = scored(source, hypotheses, apply_glossary)
    if hypotheses_path is not None:
        write_lines(hypotheses, hypotheses_path, flag="--hypotheses")
    base = None
    if base_source is not None:  # the base was not trained on annotated sources: it gets the plain ones (and the
        # constraints, which need no training)
        base = scored(base_source, translate(base_source, "translating (base)", sources), False)
    if scoring.card:
        add_to_card(source, data, direction, tuned, reading, tell)
    return Report(tuned, base, fit, forced)


def add_to_card(source: ModelSource, data: Path, direction: Direction, tuned: Scores, reading: ReadOptions,
                tell: Callable[[str], None]) -> None:  # fmt: skip
    """--card: the tuned model's scores into its model card; a line says where, or why there is none."""
    from ..data.pairs import pairs_sha256

    result = CardResult(data, pairs_sha256(data), direction, tuned.n, tuned.bleu, tuned.chrf, tuned.bleu_signature,
                        tuned.chrf_signature)  # fmt: skip
    path = record_results(Path(source.model_id), [result]) if source.kind in (MERGED, EXPORTED) else None
    if path is None:
        what = {"run": "a run directory", "base": "a base model"}.get(source.kind,
                                                                      "not a csas merged or exported model")
        tell(f"--card: {source.label} is {what}: it has no model card to add to (csas merge and csas export write "
             "one)")  # fmt: skip
    else:
        tell(f"--card: BLEU {tuned.bleu:.2f}, chrF {tuned.chrf:.2f} on {data.name} ({direction}) added to {path}")


def score_translations(
    data: Path, translations: Path, which: str | None, model: Path | None, source_lang: str | None,
    limit: int | None, glossary: Glossary | None, reading: ReadOptions = ReadOptions(),
    say: Callable[[str], None] = lambda message: None,
) -> Report:
    """`--translations FILE`: score given translations, one line per scored row of `data`, in its order."""
    from ..data.pairs import load_examples
    from ..errors import DataError
    from ..inference.source import resolve_direction
    from ..registry import LANGUAGES, REGISTRY, check_which, other_language

    if model is not None:
        raise SettingsError("--translations scores a file, not a model: drop --model")
    if which is not None:
        direction = resolve_direction(REGISTRY[check_which(which)], source_lang)
    elif source_lang is not None and source_lang.strip().lower() in LANGUAGES:
        lang = source_lang.strip().lower()
        direction = Direction(lang, other_language(lang))
    else:
        raise SettingsError("--translations: pass --source-lang en or fr (or --which KEY) to say which rows they are")
    examples = load_examples(data, [direction.source], reading).examples[:limit]
    try:
        text = translations.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--translations {translations}: cannot be read ({exc})") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]  # not splitlines: U+2028 may sit in a line
    if lines and lines[-1] == "":
        lines.pop()
    aligned = aligned_paths(data) is not None
    if aligned and len(lines) != len(examples) and examples and max(ex.line for ex in examples) <= len(lines):
        lines = [lines[ex.line - 1] for ex in examples]  # one line per line of the source file, as sacrebleu takes them
    if len(lines) != len(examples):
        per = "one line per row (or per line of the source file)" if aligned else "one line per row"
        raise DataError(f"--translations {translations}: {counted(len(lines), 'line')} for the {len(examples)} "
                        f"{direction} row{'' if len(examples) == 1 else 's'} "
                        f"of {data}; expected {per}, in order")  # fmt: skip
    sources, references = [ex.source for ex in examples], [ex.target for ex in examples]
    tuned = scores_for(str(translations), which or "-", direction, sources, lines, references, glossary)
    fit = None if glossary is None else glossary_fit(glossary, direction, sources, references)[0]
    if fit is not None and fit.warning is not None:
        say(f"warning: {fit.warning}")
    return Report(tuned, None, fit)


def rate(terms: Terms | None) -> str:
    return "-" if terms is None or terms.success is None else f"{terms.success:.3f}"


def print_report(report: Report, stream: Any = None) -> None:
    """A small table: BLEU, chrF, (term success,) rows per model (and the difference; the references' term success),
    the signatures, each model's quality flags and most-missed terms, and with a base the last lines
    `chrF before -> after: 33.9 -> 74.9` (and `terms before -> after: 0.412 -> 0.905`)."""
    from rich.table import Table

    from ..progress import table_console

    first = report.base or report.tuned
    glossary = report.reference_terms is not None
    table = Table("model", "BLEU", "chrF", *(["terms"] if glossary else []), "rows",
                  title=f"{first.which} {first.direction}")  # fmt: skip
    rows = [("base", report.base), ("tuned", report.tuned)] if report.base else [("", report.tuned)]
    for name, s in rows:
        assert s is not None
        terms = [rate(s.terms)] if glossary else []
        table.add_row(f"{name}: {s.model}" if name else s.model, f"{s.bleu:.2f}", f"{s.chrf:.2f}", *terms, str(s.n))
    if report.base is not None:
        delta = report.to_dict()["delta"]
        terms = [f"{delta['terms']:+.3f}" if "terms" in delta else ""] if glossary else []
        table.add_row("delta", f"{delta['bleu']:+.2f}", f"{delta['chrf']:+.2f}", *terms, "")
    if glossary:
        table.add_row("references (the ceiling)", "", "", rate(report.reference_terms), str(first.n))
    console = table_console(stream or sys.stdout)
    console.print(table)
    console.print(f"BLEU {report.tuned.bleu_signature}", markup=False)
    console.print(f"chrF {report.tuned.chrf_signature}", markup=False)
    for name, s in rows:
        assert s is not None
        who = f" ({name})" if name else ""
        if s.quality is not None:
            console.print(f"quality flags{who}: {s.quality.summary()}", markup=False)
        if s.terms is not None and s.terms.occurrences:
            missed = ", ".join(f"{label} ({n})" for label, n in s.terms.most_missed[:5]) or "none"
            how = [what for what, on in (("annotated sources", s.apply_glossary),
                                         ("term constraints", s.term_constraints)) if on]  # fmt: skip
            given = f" ({', '.join(how)})" if how else ""
            console.print(f"terms{who}: {s.terms.hits} of {s.terms.occurrences} used{given}; most missed: {missed}",
                          markup=False)  # fmt: skip
    if report.forced is not None:
        console.print(f"term constraints: {report.forced.describe()}", markup=False)
    if report.fit is not None and report.fit.warning is not None:
        console.print(f"warning: {report.fit.warning}", markup=False)
    if report.base is not None:  # last, so a script or a log shows what fine-tuning bought in one line
        console.print(f"chrF before -> after: {report.base.chrf:.1f} -> {report.tuned.chrf:.1f}", markup=False)
        if glossary:
            console.print(f"terms before -> after: {rate(report.base.terms)} -> {rate(report.tuned.terms)}",
                          markup=False)  # fmt: skip


__all__ = ["Report", "Scores", "Scoring", "evaluate", "print_report", "run_evaluate", "score"]
