"""`csas check-data`: what a pairs file holds, before GPU hours are booked.

One report: the rows per direction and per publication, then each check of data/checks.py (duplicates, copies,
length ratios, numbers, languages, and with --against the sentences and publications shared with a test file), the
misaligned pairs of data/alignment.py (a lexical check, and with --score-with a translation model's score:
inference/pair_scores.py) and, for each model chosen with --which/--all, the pairs its own tokenizer would cut at
--max-source-len/--max-target-len; last, the publications whose share of flagged rows stands out (a misaligned
document). Every check gives its count, its share and its first flagged rows (three, or --examples N) with their
line numbers and their sentences (cut at about 200 characters). The report is plain lines (it reads whole in a batch
log); --json gives the same as one object, with the line number of every flagged row and the sentences whole.
`--write-clean OUT --drop NAMES` writes the rows that pass the named checks as JSON Lines (`--drop-publications`
also leaves out the publications the summary lists). Nothing is dropped unless asked: training itself keeps every
row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.checks import (
    CHECK_NAMES,
    EXAMPLES_SHOWN,
    SHARED_CHECKS,
    TOO_LONG,
    CheckResult,
    Finding,
    kept_rows,
    overview,
    run_checks,
)
from ..data.alignment import (
    CORROBORATION,
    LEXICAL_ALPHA,
    MIN_ANCHORS,
    MISALIGNED,
    MODEL_Z,
    PUBLICATION_CHECKS,
    Misalignment,
    PublicationFlags,
    misaligned,
    publication_summary,
)
from ..data.pairs import Example, ReadCounts, ReadOptions, read_pairs
from ..data.pairs import check_jsonl_output, write_jsonl
from ..errors import SettingsError
from ..fields import setting
from ..progress import counted, print_json
from ..registry import MODEL_KEYS, REGISTRY, check_model_root, check_which, model_id_under, split_keys


SHOWN_CHARACTERS = 200
"""A sentence longer than this is cut in the text report."""


@dataclass(frozen=True)
class LengthCheck:
    """One model's tokenizer-length check: which rows it would cut, on which side."""

    key: str
    model_id: str
    result: CheckResult
    sources: int
    targets: int
    judged: int = 0
    """The rows of the model's directions with both sides non-empty: what its tokenizer encoded."""


@dataclass(frozen=True)
class Publications:
    """The per-publication summary: the publications whose share of flagged rows stands out."""

    flagged: list[PublicationFlags]
    rate: float
    """The file's share of flagged rows (among the rows with a publication)."""
    checks: tuple[str, ...]
    """The checks whose flags count."""
    publications: int = 0
    """Publications in the file."""


@dataclass(frozen=True)
class DataReport:
    path: Path
    overview: dict[str, Any]
    checks: list[CheckResult]
    lengths: list[LengthCheck]
    against: Path | None
    reading: ReadOptions = ReadOptions()
    """--locales and --publication-from, for the overview's words."""
    publications: Publications | None = None
    scored_with: tuple[str, ...] = ()
    """--score-with: the models whose scores the misaligned check used."""
    misalignment: Misalignment | None = None
    """The misaligned check's figures (the file's match rate, the model's threshold)."""

    def results(self) -> list[CheckResult]:
        return [*self.checks, *(length.result for length in self.lengths)]

    def to_dict(self, shown: int = EXAMPLES_SHOWN) -> dict[str, Any]:
        """The report as one object: every check's flagged lines, and `shown` examples (0: all)."""
        publications = self.publications
        return {
            "file": str(self.path),
            "against": None if self.against is None else str(self.against),
            "overview": self.overview,
            "checks": [c.to_dict(shown) for c in self.checks],
            "lengths": [self.length_dict(c, shown) for c in self.lengths],
            "scored_with": list(self.scored_with),
            "misaligned": None if self.misalignment is None else self.misalignment.to_dict(),
            "publications_flagged": [] if publications is None else [p.to_dict() for p in publications.flagged],
            "publications_flag_rate": None if publications is None else publications.rate,
        }

    @staticmethod
    def length_dict(check: LengthCheck, shown: int) -> dict[str, Any]:
        return {"which": check.key, "model_id": check.model_id, "sources_cut": check.sources,
                "targets_cut": check.targets, "judged": check.judged, **check.result.to_dict(shown)}  # fmt: skip


def chosen_keys(which: Sequence[str], all_models: bool) -> list[str]:
    if all_models and which:
        raise SettingsError("--all and --which: pass one of them")
    if all_models:
        return list(MODEL_KEYS)
    unknown = [k for k in which if k not in REGISTRY]
    if unknown:
        raise SettingsError(f"--which: unknown model {', '.join(unknown)}; choose from {', '.join(MODEL_KEYS)}")
    return list(dict.fromkeys(which))


def model_ids(keys: Sequence[str], model_id: str | None, model_root: Path | None) -> dict[str, str]:
    """Where each chosen model's tokenizer comes from: --model-id (one model), MODEL_ROOT/KEY, or the hub id."""
    check_model_root(model_root)
    if model_id is not None and len(keys) != 1:
        raise SettingsError("--model-id names one model's tokenizer; pass exactly one --which (or --model-root DIR)")
    if model_id is not None:
        return {keys[0]: model_id}
    return {key: model_id_under(model_root, key) or REGISTRY[key].hub_id for key in keys}


def parse_drop(
    drop: str | None, write_clean: Path | None, has_lengths: bool, has_against: bool, publications: bool = False
) -> list[str]:
    """The checks whose rows --write-clean leaves out (none, where `publications`: --drop-publications alone)."""
    if drop is None and write_clean is not None and publications:
        return []
    if (drop is None) != (write_clean is None):
        raise SettingsError("--write-clean OUT and --drop CHECKS go together: --drop names the checks to leave out "
                            "(or --drop-publications, the publications the summary lists)")  # fmt: skip
    if drop is None:
        return []
    names = [n.strip() for n in drop.split(",") if n.strip()]
    allowed = [n for n in (*CHECK_NAMES, MISALIGNED) if has_against or n not in SHARED_CHECKS]
    allowed += [TOO_LONG] if has_lengths else []
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        hint = "" if has_against else " (shared_* need --against)"
        hint += "" if has_lengths else f" ({TOO_LONG} needs --which or --all)"
        raise SettingsError(f"--drop: unknown check {', '.join(unknown) or '(none)'}; choose from "
                            f"{', '.join(allowed)}{hint}")  # fmt: skip
    return list(dict.fromkeys(names))


def load_tokenizers(sources: dict[str, str], revision: str | None) -> dict[str, Any]:
    """Each chosen model's tokenizer, loaded before any check runs: a model that cannot be read costs nothing."""
    from ..errors import ModelError
    from ..modeling import load_tokenizer, quiet_libraries
    from ..snapshots import check_revision

    quiet_libraries()
    tokenizers = {}
    for key, source in sources.items():
        check_revision(source, revision)
        try:
            tokenizers[key] = load_tokenizer(source, REGISTRY[key].family, revision)
        except ModelError as exc:
            raise ModelError(f"--which {key}: {exc}".replace("--model-id ", "", 1)) from None
    return tokenizers


def length_check(
    key: str, tokenizer: Any, examples: Sequence[Example], *, max_source_len: int, max_target_len: int,
    model_id: str = "",
) -> LengthCheck:
    """The rows of `key`'s directions that its own tokenizer would cut at the max lengths."""
    from ..data.features import tokenize_counted

    spec = REGISTRY[key]
    indices = [i for i, ex in enumerate(examples) if ex.source_lang in spec.source_langs and ex.source and ex.target]
    rows = [examples[i] for i in indices]
    _, cuts = tokenize_counted(tokenizer, spec.family, rows, max_source_len=max_source_len,
                               max_target_len=max_target_len, keep_ids=False)  # fmt: skip
    sources, targets = set(cuts.sources), set(cuts.targets)
    flagged = sorted(sources | targets)
    findings = []
    for j in flagged:
        side = "source and target" if j in sources and j in targets else ("source" if j in sources else "target")
        ex = rows[j]
        findings.append(Finding(ex.line, ex.source, ex.target, f"{side} cut"))
    langs = " and ".join(spec.source_langs)
    title = (f"{key}: pairs its tokenizer cuts at --max-source-len {max_source_len} / --max-target-len "
             f"{max_target_len} ({counted(len(sources), 'source')}, {counted(len(targets), 'target')}, of its "
             f"{counted(len(rows), 'row')} with "
             f"{langs} sources)")  # fmt: skip
    result = CheckResult(name=TOO_LONG, title=title, count=len(flagged), total=len(examples),
                         flagged=tuple(indices[j] for j in flagged), findings=tuple(findings))  # fmt: skip
    return LengthCheck(key, model_id, result, len(sources), len(targets), len(rows))


DROPPABLE = ", ".join((*CHECK_NAMES, "misaligned", TOO_LONG))
"""What --drop may name."""


@dataclass(frozen=True)
class DataChecks:
    """What `csas check-data` checks and writes: its options, each field its option (fields.setting). Keys of a
    repeatable option may also be comma-separated."""

    which: list[str] | None = setting(
        None, "Also count the pairs this model's tokenizer cuts (repeat or comma-separate)."
    )
    all_models: bool = setting(False, "Count the cut pairs for every registry model.", flag="all")
    model_id: str | None = setting(None, "The tokenizer of the one --which model: hub id or path.")
    model_root: Path | None = setting(None, "Use MODEL_ROOT/KEY's tokenizer where that folder exists.")
    revision: str | None = setting(None, "Hub revision of the one --which model's tokenizer.")
    max_source_len: int = setting(512, "Source tokens training keeps.")
    max_target_len: int = setting(512, "Target tokens training keeps.")
    against: Path | None = setting(
        None, "A test file: count the sentences and publications FILE shares with it."
    )
    write_clean: Path | None = setting(None, "Write the rows that pass the --drop checks here (JSON Lines).")
    drop: str | None = setting(None, f"Checks whose rows --write-clean leaves out, comma-separated: {DROPPABLE}.")
    overwrite: bool = setting(False, "Replace an existing --write-clean file.")
    examples: int = setting(EXAMPLES_SHOWN, "Flagged rows shown per check (0: all).")
    score_with: list[str] | None = setting(
        None, "Also score each pair's alignment with these translation models: registry keys (--model-id, "
        "--model-root) or run directories; both directions for the dual score."
    )
    drop_publications: bool = setting(
        False, "With --write-clean: also leave out the publications the summary flags."
    )
    device: str = setting("auto", "Where --score-with's models run: auto (the GPU when there is one), cpu or cuda.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "which", split_keys(self.which))
        object.__setattr__(self, "score_with", split_keys(self.score_with))


def run(path: Path, options: DataChecks, reading: ReadOptions, *, as_json: bool = False, bar: bool = False,
        say: Callable[[str], None] = lambda message: None) -> None:  # fmt: skip
    """`csas check-data`: check, then print the report (as JSON with `as_json`)."""
    report = check_data(path, options, reading, bar=bar, say=say)
    if as_json:
        print_json(report.to_dict(options.examples))
    else:
        print_report(report, options.examples)


def check_data(
    path: Path, options: DataChecks = DataChecks(), reading: ReadOptions = ReadOptions(), *, bar: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> DataReport:
    """Everything `csas check-data` does, up to the report; writes --write-clean when asked. `score_with`: registry
    keys or model directories whose scores the misaligned check uses too (inference/pair_scores.py)."""
    which, all_models, model_id, model_root = options.which, options.all_models, options.model_id, options.model_root
    revision, against, write_clean, drop = options.revision, options.against, options.write_clean, options.drop
    max_source_len, max_target_len, overwrite = options.max_source_len, options.max_target_len, options.overwrite
    score_with, drop_publications, device = options.score_with, options.drop_publications, options.device
    for flag, value in (("--max-source-len", max_source_len), ("--max-target-len", max_target_len)):
        if value < 1:
            raise SettingsError(f"{flag} must be at least 1, got {value}")
    keys = chosen_keys(which, all_models)
    sources = model_ids(keys, model_id, model_root) if keys else {}
    if revision is not None and len(keys) != 1:
        raise SettingsError("--revision goes with one --which (the hub revision of its tokenizer)")
    dropped = parse_drop(drop, write_clean, bool(keys), against is not None, drop_publications)
    if drop_publications and write_clean is None:
        raise SettingsError("--drop-publications leaves out rows of --write-clean OUT: pass --write-clean")
    scoring = scorer_sources(score_with, keys, model_id, model_root, revision)
    if write_clean is not None:
        inputs = (Path(path),) if against is None else (Path(path), Path(against))
        check_jsonl_output(write_clean, inputs, "--write-clean", overwrite)
    read = ReadCounts()
    examples = list(read_pairs(Path(path), reading, read))
    test = list(read_pairs(Path(against), reading)) if against is not None else None
    tokenizers = load_tokenizers(sources, revision)
    say(f"checking {counted(len(examples), 'row')}: duplicates, copies, lengths, numbers, languages, alignment")
    checks = run_checks(examples, against=test)
    scores = model_scores(examples, scoring, device, bar, say) if scoring else None
    at = next((k for k, c in enumerate(checks) if c.name in SHARED_CHECKS), len(checks))
    check, misalignment = misaligned_check(examples, scores, tuple(scoring))
    checks.insert(at, check)
    lengths = []
    for key, tokenizer in tokenizers.items():
        say(f"counting {key}'s tokens ({sources[key]})")
        lengths.append(length_check(key, tokenizer, examples, max_source_len=max_source_len,
                                    max_target_len=max_target_len, model_id=sources[key]))  # fmt: skip
    flagged = {i for c in checks if c.name in PUBLICATION_CHECKS for i in c.flagged}
    found, rate = publication_summary(examples, flagged)
    report = DataReport(Path(path), {**overview(examples), **read.to_dict()}, checks, lengths,
                        None if against is None else Path(against), reading,
                        Publications(found, rate, PUBLICATION_CHECKS, count_publications(examples)),
                        tuple(scoring), misalignment)  # fmt: skip
    if write_clean is not None:
        kept = kept_rows(examples, report.results(), dropped)
        if drop_publications:
            broken = {p.publication for p in found}
            kept = [ex for ex in kept if ex.pub_number not in broken]
            dropped = [*dropped, f"{counted(len(broken), 'publication')} flagged"]
        write_jsonl(write_clean, kept)
        say(f"--write-clean: {len(kept)} of {counted(len(examples), 'row')} written to {write_clean} (dropped: "
            f"{', '.join(dropped) or 'none'})")  # fmt: skip
    return report


def count_publications(examples: Sequence[Example]) -> int:
    return len({ex.pub_number for ex in examples if ex.pub_number is not None})


def misaligned_check(
    examples: Sequence[Example], scores: dict[int, float] | None, models: tuple[str, ...]
) -> tuple[CheckResult, Misalignment]:
    """The misaligned check: the lexical flags, and the model's where `scores` (row index -> score) are given."""
    rows = [i for i, ex in enumerate(examples) if ex.source and ex.target]
    found = misaligned(examples, rows, scores)
    lexical = found.lexical
    title = (f"pairs whose sides share too few anchors (numbers, names, cognates): a chance under {LEXICAL_ALPHA:g} "
             f"at the file's rate ({lexical.rate:.0%} shared; {counted(lexical.judged, 'pair')} with {MIN_ANCHORS}+ "
             "anchors judged)")  # fmt: skip
    if found.threshold is not None:
        title += (f"; or whose score under {', '.join(models)} is above {found.threshold:.2f} (the file's median "
                  f"{found.median:.2f} + {MODEL_Z:g} robust standard deviations; {counted(found.scored, 'pair')} "
                  f"scored) unless they share their anchors (a chance of {CORROBORATION:g} or more)")  # fmt: skip
    details = found.details
    flagged = tuple(sorted(details))
    findings = tuple(Finding(examples[i].line, examples[i].source, examples[i].target, details[i]) for i in flagged)
    return CheckResult(MISALIGNED, title, len(flagged), len(examples), flagged, findings), found


def scorer_sources(
    score_with: Sequence[str], keys: Sequence[str], model_id: str | None, model_root: Path | None,
    revision: str | None,
) -> dict[str, Any]:
    """--score-with's models as sources (inference/source.py), checked before anything loads: a registry key (its
    base from --model-id, MODEL_ROOT/KEY or the hub) or a run or merged model directory."""
    from ..inference.source import EXPORTED, resolve_source

    found: dict[str, Any] = {}
    named = [item for item in score_with if not Path(item).is_dir()]
    for item in score_with:
        if Path(item).is_dir():
            source = resolve_source(Path(item), None, None, flag="--score-with")
            if source.kind == EXPORTED:
                raise SettingsError(f"--score-with {item}: a CTranslate2 export scores no pairs; give the run or "
                                    "merged model it came from")  # fmt: skip
        else:
            check_which(item, "--score-with")
            if model_id is not None and set(named) | set(keys) != {item}:
                raise SettingsError("--model-id names one model; with several --which/--score-with keys use "
                                    "--model-root DIR")  # fmt: skip
            base = model_id or model_id_under(model_root, item) or REGISTRY[item].hub_id
            source = resolve_source(None, item, base, revision=revision)
        found[item] = source
    return found


def model_scores(
    examples: Sequence[Example], sources: dict[str, Any], device: str, bar: bool, say: Callable[[str], None]
) -> dict[int, float]:
    """Each pair's model score (inference/pair_scores.py), for the pairs a given model's directions cover."""
    from ..errors import ModelError
    from ..inference.generation import Runtime, load_for_inference
    from ..inference.pair_scores import PairScorer
    from ..progress import counting_bar

    models: dict[str, Any] = {}
    for item, source in sources.items():
        try:
            loaded = load_for_inference(source, say=say, runtime=Runtime(device))
        except ModelError as exc:
            raise ModelError(f"--score-with {item}: {exc}") from None
        for lang in source.spec.source_langs:
            direction = f"{lang}->{'fr' if lang == 'en' else 'en'}"
            if direction in models:
                raise SettingsError(f"--score-with {item}: two models translate {direction}; give one per direction")
            models[direction] = loaded
    rows = [i for i, ex in enumerate(examples) if ex.source and ex.target]
    scorer = PairScorer(models)
    chosen = [examples[i] for i in rows]
    say(f"scoring {counted(len(rows), 'pair')} with {', '.join(sources)} ({', '.join(scorer.directions())})")
    with counting_bar(scorer.work(chosen), bar, "scoring", say=say, unit="pairs") as advance:
        values = scorer.score(chosen, advance)
    return {i: v for i, v in zip(rows, values) if v is not None}


# -- the report ----------------------------------------------------------------------------------------------------


def report_lines(report: DataReport, shown: int = EXAMPLES_SHOWN) -> list[str]:
    """The report as plain lines, nothing a terminal width can cut: per check its count, share, name and what it
    counts, then `shown` flagged rows (0: all), each as its line number and why, then its two sentences (a long one
    cut, `shown_text`)."""
    o = report.overview
    lines = [f"{report.path}: {o_line(o, report.reading)}"]
    if report.against is not None:
        lines.append(f"compared with the test file {report.against}")
    lines += ["", f"{'rows':>7}  {'share':>6}  {'check':<20} what is counted"]
    for result in report.results():
        lines.append(f"{result.count:>7}  {100 * result.share:5.1f}%  {result.name:<20} {result.title}")
        findings = result.findings if shown <= 0 else result.findings[:shown]
        for f in findings:
            lines.append(f"{'':17}line {f.line}" + (f": {f.detail}" if f.detail else ""))
            lines += [f"{'':19}{shown_text(f.source)}", f"{'':19}{shown_text(f.target)}"]
        if len(findings) < result.count:
            lines.append(f"{'':17}... {result.count - len(findings)} more (--examples 0 shows them all; --json lists "
                         "every line)")  # fmt: skip
    return lines + publication_lines(report.publications)


def publication_lines(publications: Publications | None) -> list[str]:
    """The per-publication summary: each publication whose share of flagged rows stands out, highest first."""
    if publications is None:
        return []
    checks = ", ".join(publications.checks)
    if not publications.publications:
        return ["", "no publications to compare: no row names one (a TMX memory names its documents with "
                    "--publication-from tuid-prefix or prop:NAME)"]  # fmt: skip
    if not publications.flagged:
        return ["", f"no publication stands out: none holds far more rows flagged by {checks} than the file's "
                    f"{publications.rate:.1%}"]  # fmt: skip
    lines = ["", f"publications far above the file's share of rows flagged by {checks} ({publications.rate:.1%}): "
                 "misaligned documents, or ones to look at"]  # fmt: skip
    for found in publications.flagged:
        rows = counted(found.rows, "row")
        lines.append(f"{found.share:7.0%}  {found.publication}: {found.flagged} of {rows} flagged")
    return lines


def shown_text(text: str, width: int = SHOWN_CHARACTERS) -> str:
    """A flagged row's sentence on one line of the text report, cut at a space near `width` characters and marked
    as cut (`--json` keeps it whole)."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text.rfind(" ", width // 2, width)
    return f"{text[: cut if cut > 0 else width]} [... cut: {len(text)} characters, --json shows them all]"


def o_line(o: dict[str, Any], reading: ReadOptions = ReadOptions()) -> str:
    """The overview in one line: rows, directions, publications, what the reader skipped or chose between."""
    directions = ", ".join(f"{n} {d}" for d, n in o.get("directions", {}).items())
    rows = counted(o.get("rows", 0), "row")
    parts = [f"{rows} ({directions})" if directions else rows]
    units = ReadCounts.from_dict(o).describe(reading)
    if units:
        parts.append(units)
    if "publications" in o:
        parts.append(counted(o["publications"], "publication"))
    per = o.get("rows_per_publication")
    if isinstance(per, dict) and per:
        parts.append("rows per publication " + ", ".join(f"{k} {v}" for k, v in per.items()))
    if o.get("rows_without_pub_number"):
        parts.append(f"{counted(o['rows_without_pub_number'], 'row')} without pub_number")
    return "; ".join(parts)


def print_report(report: DataReport, shown: int = EXAMPLES_SHOWN, stream: Any = None) -> None:
    import sys

    out = stream or sys.stdout
    out.write("\n".join(report_lines(report, shown)) + "\n")


__all__ = ["TOO_LONG", "DataChecks", "DataReport", "LengthCheck", "check_data", "print_report", "report_lines", "run"]
