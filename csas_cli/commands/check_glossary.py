"""`csas check-glossary FILE`: what csas reads from a glossary, before it is used, and with `--against DATA` how
well it fits that data.

The report: the layout recognised, the entries kept, the records skipped by reason (data/glossary.py), the forms
left out as retired, the terms that several entries give different targets, the entries that are single common
words (which `--term-constraints` does not force without evidence: data/fit.py), and a few entries as examples.
`--against DATA` (pairs: the training data, a test set) adds, per direction of the data, every entry found in its
sources with how often the target uses the entry's target term there: the entries the data confirm and those it
contradicts. Plain lines that read whole in a batch log; `--json` gives one object.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.fit import CONFIRMED_SHARE, EntryUse, Fit, common_entries
from ..data.glossary import EXAMPLES, SKIP_REASONS, Glossary, read_glossary
from ..data.pairs import ReadOptions, load_examples
from ..progress import counted, print_json
from ..registry import LANGUAGES, other_language

REASONS = {
    "empty": "no English or no French term",
    "retired": "every form of a language retired",
    "other_languages": "a term pair of another language pair",
    "other_subject": "another subject field than --glossary-subject",
    "duplicates": "the same terms as an earlier entry, whose variants they join",
}
"""What each skip reason means, for the text report."""
assert tuple(REASONS) == SKIP_REASONS


@dataclass(frozen=True)
class GlossaryCheck:
    glossary: Glossary
    common: dict[str, frozenset[int]]
    """Per language, the entries whose preferred term is a single common word."""
    against: Path | None = None
    fits: dict[str, Fit] | None = None
    """With --against: per direction of the data ("en->fr"), each entry's use there."""

    def entry_dict(self, index: int) -> dict[str, Any]:
        entry = self.glossary.entries[index]
        return {"en": list(entry.en), "fr": list(entry.fr), "line": entry.line}

    def use_dict(self, direction: str, use: EntryUse) -> dict[str, Any]:
        return {"direction": direction, **self.entry_dict(use.entry), "occurrences": use.occurrences,
                "used": use.used, "share": use.share, "confirmed": use.confirmed}  # fmt: skip

    def to_dict(self, shown: int = EXAMPLES) -> dict[str, Any]:
        """The report as one object; `shown` examples (0: every entry)."""
        g, r = self.glossary, self.glossary.report
        examples = range(len(g)) if shown <= 0 else range(min(shown, len(g)))
        record: dict[str, Any] = {
            "file": str(g.path), "layout": r.layout, "subject": r.subject, "sheet": r.sheet, "records": r.records,
            "entries": len(g), "skipped": {reason: r.skipped.get(reason, 0) for reason in SKIP_REASONS},
            "retired_forms": r.retired_forms, "conflicts": [c.to_dict(g.entries) for c in r.conflicts],
            "common_words": {lang: [g.entries[i].forms(lang)[0] for i in sorted(found)]
                             for lang, found in self.common.items()},
            "examples": [self.entry_dict(i) for i in examples],
        }  # fmt: skip
        if self.fits is not None:
            record["against"] = {
                "file": str(self.against),
                "directions": {d: {"rate": fit.rate, "entries_found": len(fit.uses), "confirmed": len(fit.confirmed()),
                                   "confirmed_share": CONFIRMED_SHARE} for d, fit in self.fits.items()},
                "uses": [self.use_dict(d, u) for d, fit in self.fits.items()
                         for u in sorted(fit.uses.values(), key=lambda u: (-u.occurrences, u.entry))],
            }  # fmt: skip
        return record


def check_glossary(
    path: Path, *, subject: str | None = None, sheet: str | None = None, against: Path | None = None,
    reading: ReadOptions = ReadOptions(),
) -> GlossaryCheck:
    """Read the glossary (and --against's pairs) into the report."""
    glossary = read_glossary(path, subject, sheet)
    common = {lang: common_entries(glossary, lang) for lang in LANGUAGES}
    if against is None:
        return GlossaryCheck(glossary, common)
    examples = load_examples(against, LANGUAGES, reading).examples
    fits = {}
    for lang in LANGUAGES:
        rows = [e for e in examples if e.source_lang == lang]
        if rows:
            direction = f"{lang}->{other_language(lang)}"
            fits[direction] = Fit.of(glossary, [e.source for e in rows], [e.target for e in rows], lang,
                                     other_language(lang), f"--against {against}")  # fmt: skip
    return GlossaryCheck(glossary, common, against, fits)


def report_lines(check: GlossaryCheck, shown: int = EXAMPLES) -> list[str]:
    g, r = check.glossary, check.glossary.report
    where = "".join(f", {what} {value!r}" for what, value in (("subject", r.subject), ("sheet", r.sheet)) if value)
    lines = [f"{g.path}: {r.layout}{where}: {counted(len(g), 'entry', 'entries')} kept of "
             f"{counted(r.records, 'record')} read"]
    skipped = [(reason, r.skipped[reason]) for reason in SKIP_REASONS if r.skipped.get(reason)]
    for reason, count in skipped:
        lines.append(f"  skipped {count:>6}  {reason:<16} {REASONS[reason]}")
    if r.retired_forms:
        lines.append(f"  {counted(r.retired_forms, 'form')} left out as retired (deprecated, obsolete, avoid, former "
                     "designation, ...): a translation using one misses the term")  # fmt: skip
    if r.conflicts:
        lines.append(f"{counted(len(r.conflicts), 'term has', 'terms have')} several targets; where two entries "
                     "share a term, the first is the one found:")  # fmt: skip
        lines += [f"  {c.describe(g.entries)}" for c in (r.conflicts if shown <= 0 else r.conflicts[:shown])]
        if 0 < shown < len(r.conflicts):
            lines.append(f"  ... {len(r.conflicts) - shown} more (--examples 0 shows them all; --json lists them)")
    for lang, found in check.common.items():
        if found:
            words = list(dict.fromkeys(g.entries[i].forms(lang)[0] for i in sorted(found)))
            names, more = ", ".join(words[:10]), ", ..." if len(words) > 10 else ""
            lines.append(f"{counted(len(found), 'entry is', 'entries are')} one common "
                         f"{'English' if lang == 'en' else 'French'} word "
                         f"({names}{more}): --term-constraints does not force such entries unless data confirm them or "
                         "--constrain-all is given")  # fmt: skip
    examples = range(len(g)) if shown <= 0 else range(min(shown, len(g)))
    lines.append("entries:" if shown <= 0 else "the first entry:" if len(examples) == 1 else
                 f"the first {len(examples)} entries:")  # fmt: skip
    for i in examples:
        e = g.entries[i]
        lines.append(f"  line {e.line}: {' | '.join(e.en)}  ->  {' | '.join(e.fr)}")
    for direction, fit in (check.fits or {}).items():
        occurrences = sum(u.occurrences for u in fit.uses.values())
        used = sum(u.used for u in fit.uses.values())
        rate = "-" if fit.rate is None else f"{fit.rate:.3f}"
        lines.append(f"against {check.against} ({direction}): {counted(len(fit.uses), 'entry', 'entries')} "
                     f"occur{'s' if len(fit.uses) == 1 else ''}, "
                     f"{counted(occurrences, 'time')}; the translations use their target terms "
                     f"{counted(used, 'time')} ({rate}); {counted(len(fit.confirmed()), 'entry', 'entries')} "
                     f"confirmed (used at least {CONFIRMED_SHARE:.0%} of the time)")  # fmt: skip
        contradicted = fit.contradicted(len(fit.uses) if shown <= 0 else shown)
        if contradicted:
            lines.append("  contradicted most (the entry, then how often its target is used where its source occurs):")
            lines += [f"    {g.entries[u.entry].label}: {u.used} of {u.occurrences} (line {g.entries[u.entry].line})"
                      for u in contradicted]  # fmt: skip
    if check.fits is not None and not check.fits:
        lines.append(f"against {check.against}: no rows")
    return lines


def print_report(check: GlossaryCheck, shown: int = EXAMPLES, stream: Any = None) -> None:
    (stream or sys.stdout).write("\n".join(report_lines(check, shown)) + "\n")


def run(path: Path, *, subject: str | None = None, sheet: str | None = None, against: Path | None = None,
        reading: ReadOptions = ReadOptions(), examples: int = EXAMPLES, as_json: bool = False) -> None:  # fmt: skip
    """`csas check-glossary`: read, then print the report (as JSON with `as_json`)."""
    report = check_glossary(path, subject=subject, sheet=sheet, against=against, reading=reading)
    if as_json:
        print_json(report.to_dict(examples))
    else:
        print_report(report, examples)


__all__ = ["GlossaryCheck", "check_glossary", "print_report", "report_lines", "run"]
