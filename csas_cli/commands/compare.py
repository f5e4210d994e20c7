"""`csas compare`: several models on one or more test sets, each difference tested for significance.

The models (MODEL...: run directories, `RUN/best`, checkpoints, merged or exported models, finetune-all or sweep
output roots, whose finished runs are taken and unfinished ones named as left out; `--which KEY` adds a base model)
each translate the rows of every test set in their own direction(s) (M2M100 both ways). For each test set and
direction one table: a row per system, best chrF first, with BLEU, chrF and chrF's bootstrap 95% confidence
interval, term success with a glossary, and each system's difference to its baseline with the p-value of sacrebleu's
paired bootstrap resampling (inference/significance.py), in words as well as numbers.

The baseline is the first model given (of those translating that direction); with `--base`, each model's own base
model, scored beside it. A test set marked general (`--general FILE`, or a file whose name holds the word
`general`: general.jsonl, news-general.tsv) measures forgetting: there every model is compared with its base, and
one significantly worse than its base is flagged.

Translations are kept in `--output-dir` with what produced them (inference/stored.py): a comparison run again with
one more model translates only that model.

`--card` adds each merged or exported model's BLEU and chrF on every test set to its model card (cards.py).

JSON (`--json`): {"test_sets": [{"data", "direction", "general", "rows", "baseline", "signatures", "systems": [{"name",
"model", "kind", "baseline", "bleu", "chrf", "chrf_ci", "bleu_ci", "delta_chrf", "p_chrf", "delta_bleu", "p_bleu",
"terms", "significant", "worse_than_base", "verdict"}]}], "resamples", "seed", "alpha", "left_out", "translated",
"reused"}.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.rows import Example, ReadOptions
from ..errors import SettingsError
from ..inference.generation import GenerationSettings, Runtime
from ..inference.significance import ALPHA, RESAMPLES, Paired, bootstrap_seed, paired_bootstrap
from ..inference.source import BASE, EXPORTED, MERGED
from ..inference.systems import System, Systems, gather_systems
from ..languages import Direction
from ..progress import counted, print_json

GENERAL_WORD = re.compile(r"(?:^|[-_. ])general(?:$|[-_. ])", re.IGNORECASE)
"""The README's convention: a test set whose file name holds the word `general` is a general-domain set."""


def is_general(path: Path, marked: Sequence[Path] = ()) -> bool:
    """Whether `path` is a general-domain test set: marked with --general, or named so (GENERAL_WORD)."""
    resolved = {Path(p).resolve() for p in marked}
    return Path(path).resolve() in resolved or GENERAL_WORD.search(Path(path).stem) is not None


# --- translating, with what is already on disk reused ---------------------------------------------------------


@dataclass(frozen=True)
class TestSet:
    path: Path
    general: bool
    rows: dict[Direction, list[Example]]
    """The test set's rows by direction (only the directions that have rows)."""
    name: str
    """Its file name; with its folder's where two test sets share a file name."""


def read_test_sets(paths: Sequence[Path], general: Sequence[Path], reading: ReadOptions) -> list[TestSet]:
    from ..data.pairs import load_examples

    sets = []
    unique = list(dict.fromkeys(map(Path, paths)))
    shared = {p.name for p in unique if sum(q.name == p.name for q in unique) > 1}
    for path in unique:
        rows: dict[Direction, list[Example]] = {}
        for example in load_examples(path, ["en", "fr"], reading).examples:
            rows.setdefault(Direction(example.source_lang, example.target_lang), []).append(example)
        name = f"{path.resolve().parent.name}/{path.name}" if path.name in shared else path.name
        unique_name, n = name, 2
        while unique_name in {t.name for t in sets}:
            unique_name, n = f"{name} ({n})", n + 1
        name = unique_name
        sets.append(TestSet(path, is_general(path, general), dict(sorted(rows.items(), key=lambda kv: str(kv[0]))),
                            name))  # fmt: skip
    for path in map(Path, general):
        if path.resolve() not in {s.path.resolve() for s in sets}:
            raise SettingsError(f"--general {path}: not one of the --data test sets")
    return sets


@dataclass
class Translations:
    """Every system's translations, by (system name, test set path, direction); what was translated now and what
    was read back from --output-dir."""

    lines: dict[tuple[str, Path, Direction], list[str]] = field(default_factory=dict)
    translated: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def translate_all(
    work: dict[str, tuple[System, list[tuple[TestSet, Direction]]]], settings: GenerationSettings, runtime: Runtime,
    output_dir: Path, say: Callable[[str], None], bar: bool = False, annotate: Callable[[System], Any] | None = None,
) -> Translations:
    """Translate what `work` asks (system name -> the system and its test sets and directions), a model loaded
    once for all its test sets, and nothing that --output-dir already holds from the same model and settings.
    `annotate(system)`: a function that annotates a direction's sources with the glossary's terms for that system
    (`annotate(system)(sources, direction)`), or None where it translates them plain."""
    import torch

    from ..inference import generation, stored
    from ..progress import counting_bar

    out = Translations()
    device = runtime.resolved_device(torch.cuda.is_available())
    for name, (system, items) in work.items():
        fingerprint = stored.model_fingerprint(system.source)
        annotator = annotate(system) if annotate is not None else None
        decoding = {"num_beams": settings.num_beams, "max_new_tokens": settings.max_new_tokens, "device": device,
                    "annotated": annotator is not None}  # fmt: skip
        tag = f"b{settings.num_beams}-t{settings.max_new_tokens}" + ("-annotated" if annotator is not None else "")
        missing = []
        for test_set, direction in items:
            sources = [ex.source for ex in test_set.rows[direction]]
            if annotator is not None:
                sources = annotator(sources, direction)
            produced = stored.Produced(fingerprint, stored.sources_sha256(sources), str(direction), len(sources),
                                       decoding)  # fmt: skip
            paths = stored.paths_for(output_dir, name, test_set.name, str(direction), tag)
            what = f"{name} on {test_set.name} {direction}"
            lines = stored.load(*paths, produced)
            if lines is None:
                lines = stored.find(output_dir, test_set.name, str(direction), produced, tag)
                if lines is not None:  # kept under another name: copied under this one
                    stored.store(*paths, produced, lines, about(name, system, test_set))
            if lines is None:
                missing.append((test_set, direction, produced, paths, sources))
            else:
                out.lines[(name, test_set.path, direction)] = lines
                out.reused.append(what)
        if not missing:
            continue
        loaded = generation.load_for_inference(system.source, say=say, runtime=runtime)
        try:
            for test_set, direction, produced, paths, sources in missing:
                say(f"{name}: translating {counted(len(sources), 'row')} of {test_set.name} ({direction})")
                with counting_bar(len(sources), bar, f"{name} {direction}", say=say) as advance:
                    lines = generation.translate_texts(loaded, sources, direction, settings, advance).lines
                stored.store(*paths, produced, lines, about(name, system, test_set))
                out.lines[(name, test_set.path, direction)] = lines
                out.translated.append(f"{name} on {test_set.name} {direction}")
        finally:
            loaded.release()
    return out


def about(name: str, system: System, test_set: TestSet) -> dict[str, Any]:
    """What a kept translation's record says beside its key, for a reader."""
    return {"system": name, "model": system.source.label, "data": str(test_set.path)}


# --- the tables -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    system: System
    baseline: str | None
    """The system this one is compared with; None for a baseline."""
    scores: Paired
    terms: float | None
    worse_than_base: bool
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        s = self.scores
        return {"name": self.system.name, "model": self.system.source.label, "kind": self.system.source.kind,
                "baseline": self.baseline, "bleu": s.bleu, "chrf": s.chrf, "bleu_ci": s.bleu_ci, "chrf_ci": s.chrf_ci,
                "delta_chrf": s.delta_chrf, "p_chrf": None if s.delta_chrf == 0 else s.p_chrf,
                "delta_bleu": s.delta_bleu, "p_bleu": None if s.delta_bleu == 0 else s.p_bleu,
                "terms": self.terms, "significant": s.significant, "worse_than_base": self.worse_than_base,
                "verdict": self.verdict}  # fmt: skip


@dataclass(frozen=True)
class Table:
    test_set: TestSet
    direction: Direction
    against_bases: bool
    """Each system is compared with its base (--base, or a general set), not with the first model."""
    rows: list[Row]
    signatures: dict[str, str]

    @property
    def baseline(self) -> str | list[str]:
        names = list(dict.fromkeys(r.baseline for r in self.rows if r.baseline is not None))
        if not names:
            names = [r.system.name for r in self.rows if r.baseline is None]
        return names[0] if len(names) == 1 else names

    def to_dict(self) -> dict[str, Any]:
        return {"data": str(self.test_set.path), "direction": str(self.direction), "general": self.test_set.general,
                "rows": len(self.test_set.rows[self.direction]), "baseline": self.baseline,
                "signatures": self.signatures, "systems": [r.to_dict() for r in self.rows]}  # fmt: skip


def table_systems(systems: Systems, direction: Direction, against_bases: bool) -> list[System]:
    """The systems of one table: the models translating `direction`, and their bases when compared with them."""
    models = [s for s in systems.models if direction in s.directions]
    if not against_bases:
        return models
    names = {m.name for m in models}
    every = {s.name: s for s in (*systems.models, *systems.bases.values())}
    bases = [name for name in dict.fromkeys(s.base for s in models if s.base is not None) if name not in names]
    return [*models, *(every[name] for name in bases)]


def score_table(test_set: TestSet, direction: Direction, members: Sequence[System], against_bases: bool,
                lines: Translations, resamples: int, glossary: Any = None) -> Table:  # fmt: skip
    """One table: each system's scores against its baseline, best chrF first."""
    from ..data.terms import term_success

    rows_of = test_set.rows[direction]
    sources, references = [ex.source for ex in rows_of], [ex.target for ex in rows_of]
    hyps = {s.name: lines.lines[(s.name, test_set.path, direction)] for s in members}
    names = {s.name for s in members}
    # Who each system is compared with: its base (when compared with bases and its base is here), else the first.
    first = members[0].name
    baseline_of = {}
    for s in members:
        base = s.base if against_bases and s.base in names else None
        if against_bases and s.source.kind == BASE:
            base = None  # a base is a baseline
        baseline_of[s.name] = base if against_bases else (None if s.name == first else first)
    if against_bases:  # a model without a base here goes against the first base, or the first model
        fallback = next((s.name for s in members if s.source.kind == BASE), first)
        for s in members:
            if baseline_of[s.name] is None and s.source.kind != BASE and s.name != fallback:
                baseline_of[s.name] = fallback
    results: dict[str, Paired] = {}
    signatures: dict[str, str] = {}
    for baseline in dict.fromkeys(b for b in baseline_of.values() if b is not None):
        group = [name for name, b in baseline_of.items() if b == baseline]
        scored_baseline, scored, signatures = paired_bootstrap(hyps[baseline], [hyps[n] for n in group], references,
                                                               resamples)  # fmt: skip
        results.setdefault(baseline, scored_baseline)
        results.update(zip(group, scored))
    for name in names - set(results):  # a baseline alone in its table
        results[name], _, signatures = paired_bootstrap(hyps[name], [], references, resamples)
    rows = []
    for s in members:
        terms = None
        if glossary is not None:
            terms = term_success(glossary, sources, hyps[s.name], direction.source, direction.target).rate
        baseline, scores = baseline_of[s.name], results[s.name]
        worse = bool(test_set.general and baseline is not None and baseline == s.base and scores.significant
                     and scores.delta_chrf < 0)  # fmt: skip
        verdict = scores.verdict(baseline or "")
        if baseline is None and s.source.kind == BASE and against_bases:
            of = [m.name for m in members if baseline_of[m.name] == s.name and m.base == s.name]
            verdict = f"base of {', '.join(of)}" if of else "base"
        if worse:
            verdict = f"FORGETTING: {verdict}"
        rows.append(Row(s, baseline, scores, terms, worse, verdict))
    rows.sort(key=lambda r: -r.scores.chrf)
    return Table(test_set, direction, against_bases, rows, signatures)


@dataclass(frozen=True)
class Comparison:
    tables: list[Table]
    resamples: int
    seed: int | None
    left_out: list[str]
    no_base: list[str]
    translations: Translations

    def to_dict(self) -> dict[str, Any]:
        return {"test_sets": [t.to_dict() for t in self.tables], "resamples": self.resamples, "seed": self.seed,
                "alpha": ALPHA, "left_out": self.left_out, "no_base": self.no_base,
                "translated": self.translations.translated, "reused": self.translations.reused}  # fmt: skip


@dataclass(frozen=True)
class CompareOptions:
    """What `csas compare` compares, and how (its own options)."""

    models: tuple[Path, ...] = ()
    data: tuple[Path, ...] = ()
    general: tuple[Path, ...] = ()
    base: bool = False
    which: str | None = None
    model_id: str | None = None
    revision: str | None = None
    resamples: int = RESAMPLES
    output_dir: Path = Path("compare_translations")
    glossary: Path | None = None
    glossary_subject: str | None = None
    glossary_sheet: str | None = None
    apply_glossary: bool | None = None
    """Annotate the sources with the glossary's terms: True, False, or None: for the models trained to read them."""
    model_root: Path | None = None
    """The runs' and merged models' bases are MODEL_ROOT/KEY where that folder exists."""


def run_compare(options: CompareOptions, settings: GenerationSettings, *, runtime: Runtime = Runtime(),
                reading: ReadOptions = ReadOptions(), bar: bool = False,
                say: Callable[[str], None] | None = None) -> Comparison:  # fmt: skip
    """Everything `csas compare` does up to its tables."""
    from ..progress import say as progress_say

    tell = say if say is not None else progress_say
    if not options.data:
        raise SettingsError("--data: pass at least one test set")
    if options.resamples < 1:
        raise SettingsError(f"--resamples must be at least 1, got {options.resamples}")
    output_dir = Path(options.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise SettingsError(f"--output-dir {output_dir}: exists and is not a directory")
    seed = bootstrap_seed()  # a bad SACREBLEU_SEED is refused before anything translates
    if options.apply_glossary and options.glossary is None:
        raise SettingsError("--apply-glossary needs --glossary FILE")
    glossary = None
    if options.glossary is not None:
        from ..data.glossary import read_glossary

        glossary = read_glossary(options.glossary, options.glossary_subject, options.glossary_sheet)
        tell(glossary.describe())
    elif options.glossary_subject is not None or options.glossary_sheet is not None:
        raise SettingsError("--glossary-subject and --glossary-sheet apply to --glossary FILE")
    systems = gather_systems(options.models, options.which, options.model_id, options.revision, options.model_root)
    for what in systems.left_out:
        tell(f"left out: {what}")
    test_sets = read_test_sets(options.data, options.general, reading)
    plan: list[tuple[TestSet, Direction, list[System], bool]] = []
    for test_set in test_sets:
        against_bases = options.base or test_set.general
        for direction in test_set.rows:
            members = table_systems(systems, direction, against_bases)
            if members:
                plan.append((test_set, direction, members, against_bases))
        for system in systems.models:
            absent = [str(d) for d in system.directions if d not in test_set.rows]
            if absent:
                what = "is not scored on it" if len(absent) == len(system.directions) else "is scored one way only"
                tell(f"note: {test_set.name} has no {' or '.join(absent)} rows: {system.name} {what}")
    if not plan:
        sets = "; ".join(f"{t.name}: {', '.join(map(str, t.rows)) or 'no rows'}" for t in test_sets)
        wanted = ", ".join(sorted({str(d) for m in systems.models for d in m.directions}))
        raise SettingsError(f"--data: no test set has rows in a direction the models translate ({wanted}); they "
                            f"hold {sets}")  # fmt: skip
    if systems.no_base and any(against for *_, against in plan):
        records = "records" if len(systems.no_base) == 1 else "record"
        tell(f"note: {', '.join(systems.no_base)} {records} no base model: compared with the others, not a base")
    work: dict[str, tuple[System, list[tuple[TestSet, Direction]]]] = {}
    for test_set, direction, members, _ in plan:
        for s in members:
            work.setdefault(s.name, (s, []))[1].append((test_set, direction))
    annotate = None
    if glossary is not None:
        annotate = annotations(glossary, options.apply_glossary, tell)
    translations = translate_all(work, settings, runtime, output_dir, tell, bar, annotate)
    tables = [score_table(t, d, members, against, translations, options.resamples, glossary)
              for t, d, members, against in plan]  # fmt: skip
    return Comparison(tables, options.resamples, seed, systems.left_out, systems.no_base, translations)


def annotations(glossary: Any, apply_glossary: bool | None, say: Callable[[str], None]) -> Callable[[System], Any]:
    """For each system, how its sources are given: annotated with the glossary's terms where --apply-glossary
    says so or, without it, where the model was trained to read them (--term-annotation), as `csas evaluate`
    does; else plain (None)."""
    from ..data.terms import Annotator

    def annotate(system: System) -> Any:
        trained = system.source.term_annotation
        on = apply_glossary if apply_glossary is not None else bool(trained)
        if not on:
            return None
        if apply_glossary is None:
            say(f"{system.name}: the sources are annotated with the glossary's terms: the model was trained to read "
                f"them (--term-annotation {trained:g}; --no-apply-glossary translates them plain)")  # fmt: skip

        def annotated(sources: list[str], direction: Direction) -> list[str]:
            annotator = Annotator(glossary, direction.source, direction.target)
            return [annotator.source(text) for text in sources]

        return annotated

    return annotate


def shown_p(p: float | None, delta: float) -> str:
    """A p-value as the table shows it: `-` for no difference at all, where sacrebleu's p means nothing."""
    return "-" if p is None or delta == 0 else f"{p:.3f}"


def print_comparison(comparison: Comparison, stream: Any = None) -> None:
    """One table per test set and direction, and under each what its numbers mean."""
    from rich.markup import escape
    from rich.table import Column
    from rich.table import Table as RichTable

    from ..progress import table_console

    console = table_console(stream or sys.stdout)
    for table in comparison.tables:
        terms = any(r.terms is not None for r in table.rows)
        rows_n = len(table.test_set.rows[table.direction])
        general = ", general: forgetting checked" if table.test_set.general else ""
        # At a narrow terminal the names and verdicts fold onto more lines rather than lose their ends.
        columns = (Column("system", overflow="fold"), "BLEU", "chrF", "chrF 95% CI", "Δ chrF", "p", "Δ BLEU", "p",
                   *(["terms"] if terms else []), Column("verdict", overflow="fold"))  # fmt: skip
        title = f"{table.test_set.name} {table.direction} ({counted(rows_n, 'row')}{general})"
        out = RichTable(*columns, title=escape(title))
        for r in table.rows:
            s = r.scores
            baseline = r.baseline is None
            out.add_row(
                escape(r.system.name), f"{s.bleu:.2f}", f"{s.chrf:.2f}", f"±{s.chrf_ci:.2f}",
                "" if baseline else f"{s.delta_chrf:+.2f}", "" if baseline else shown_p(s.p_chrf, s.delta_chrf),
                "" if baseline else f"{s.delta_bleu:+.2f}", "" if baseline else shown_p(s.p_bleu, s.delta_bleu),
                *([("-" if r.terms is None else f"{r.terms:.3f}")] if terms else []), escape(r.verdict),
            )  # fmt: skip
        console.print(out)
        against = "each model against its base" if table.against_bases else f"against {table.baseline}"
        console.print(f"{against}; p: paired bootstrap resampling (sacrebleu), {comparison.resamples} resamples, seed "
                      f"{comparison.seed}; significant: p < {ALPHA} on chrF", markup=False)  # fmt: skip
        for r in table.rows:
            if r.worse_than_base:
                console.print(f"forgetting: {r.system.name} is significantly worse than its base ({r.baseline}) on "
                              f"{table.test_set.name} (chrF {r.scores.delta_chrf:+.2f}, p = {r.scores.p_chrf:.3f})",
                              markup=False)  # fmt: skip
        for metric, signature in table.signatures.items():
            console.print(f"{metric} {signature}", markup=False)
        console.print("")
    if comparison.left_out:
        console.print(f"left out: {', '.join(comparison.left_out)}", markup=False)


def compare(options: CompareOptions, settings: GenerationSettings, *, runtime: Runtime = Runtime(),
            reading: ReadOptions = ReadOptions(), as_json: bool = False, card: bool = False,
            bar: bool = False) -> None:  # fmt: skip
    """`csas compare`: compare, then print the tables (or the JSON); with `card`, add the scores to the model card
    of each merged or exported model."""
    if card:
        from ..cards import check_card

        for path in options.models:  # a model card csas did not write is refused before any work
            check_card(Path(path))
    comparison = run_compare(options, settings, runtime=runtime, reading=reading, bar=bar)
    if as_json:
        print_json(comparison.to_dict())
    else:
        print_comparison(comparison)
    if card:
        write_cards(comparison)


def write_cards(comparison: Comparison, say: Callable[[str], None] | None = None) -> None:
    """--card: each merged or exported model's scores, test set by test set, in its model card (cards.py); the
    runs and bases compared have none, and a line says so."""
    from ..cards import CardResult, record_results
    from ..data.pairs import pairs_sha256
    from ..inference.scoring import score
    from ..progress import say as progress_say

    tell = say if say is not None else progress_say
    results: dict[str, tuple[System, list[CardResult]]] = {}
    hashes: dict[Path, str] = {}
    for table in comparison.tables:
        rows = table.test_set.rows[table.direction]
        path = table.test_set.path
        sha = hashes[path] = hashes.get(path) or pairs_sha256(path)
        # The scores are the table's (sacrebleu's corpus scores); the card takes the plain signatures, without the
        # paired test's resamples and seed, which depend on no translation: one score() gives them.
        first = comparison.translations.lines[(table.rows[0].system.name, path, table.direction)]
        _, _, bleu_signature, chrf_signature = score(first, [ex.target for ex in rows])
        for row in table.rows:
            result = CardResult(path, sha, table.direction, len(rows), row.scores.bleu, row.scores.chrf,
                                bleu_signature, chrf_signature)  # fmt: skip
            results.setdefault(row.system.name, (row.system, []))[1].append(result)
    without = []
    for name, (system, scored) in results.items():
        path = record_results(Path(system.source.model_id), scored) if system.source.kind in (MERGED, EXPORTED) \
            else None  # fmt: skip
        if path is None:
            without.append(name)
        else:
            tell(f"{name}: {counted(len(scored), 'result')} added to its model card {path}")
    if without:
        what = "is not a merged or exported model" if len(without) == 1 else "are not merged or exported models"
        tell(f"--card: {', '.join(without)} {what}: no model card to add to (csas merge or csas export writes one)")


__all__ = ["CompareOptions", "Comparison", "compare", "gather_systems", "is_general", "print_comparison",
           "run_compare"]  # fmt: skip
