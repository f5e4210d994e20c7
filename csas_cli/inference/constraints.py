"""Term constraints: beam search that puts a glossary's target terms into each translation (`--term-constraints`).

transformers 5 no longer ships constrained beam search (`constraints`/`force_words_ids` now fetch remote code from
the hub, which csas never runs), so csas brings its own, as a logits processor on the ordinary beam search (greedy
decoding too). For each source sentence the constraints are the glossary entries found in it (terms.py's matching),
each needed as many times as the source holds it. At every decoding step, for every hypothesis:

- **met** entries are read from the hypothesis's text with the matcher evaluation uses (variants, plurals, case), so
  a constraint is met exactly when `csas evaluate --glossary` would count the term as a hit;
- a hypothesis whose last tokens **begin** one of an unmet entry's target forms must go on with it (with any of the
  forms it begins) where a whole word of the form is written (`zone` of `zone critique`), or where the model ranks
  the form's next token among its PLAUSIBLE best (`D` of `Débarquements`: so many words begin with a `D` that the
  form is only followed where the model finds it likely);
- a hypothesis with unmet entries **may not end**: the end of the sentence is taken away, and what the model gave
  it goes to starting a missing term there instead (each missing term's first token scores at least what the end
  scored); a term started that way is then written to its end;
- where the token budget (`--max-new-tokens`) leaves just room for the missing terms (their shortest forms), one
  is started (a translation that loops until the budget ends would otherwise never write it);
- a term started by these two rules begins a word: a form without the word-start mark only follows a piece that
  ends in an apostrophe or a hyphen;
- a term just written is not glued to the next piece (`Débarquements` + `2`), which would make it another word; a
  plural ending (`s`, `x`, `es`) is still allowed.

A term's target forms are its listed variants (the preferred one first), each also with a capital first letter (a
term that opens the sentence) and without the word-start mark (`l'` + `indice`), tokenized as the target side is.
The beam keeps its width and its scores, so hypotheses that place a term where the model expects it outrank those
that had to add it before the end; where the model never reaches a term, it is added before the end, which is what
the translator then sees to fix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

from ..data.glossary import Glossary
from ..data.terms import PLURALS, GrowingCounts, TermIndex
from ..errors import SettingsError
from ..languages import Direction
from .source import EXPORTED, ModelSource

WORD_START = ("\u2581", " ", "\u0120")
"""How a piece that begins a word is marked: SentencePiece's ▁ (the families csas trains), a space, byte-level ▁."""

PLAUSIBLE = 5
"""A form begun inside its first word goes on only where the model ranks its next token among this many."""

NEG_INF = float("-inf")

Form = tuple[int, ...]
"""A target form's token ids."""
Progress = frozenset[tuple[Form, int]]
"""Terms being added before the end: each form, and how many of its tokens are written."""


@dataclass(frozen=True)
class Constraint:
    """One glossary entry a translation must hold."""

    entry: int
    count: int
    """Occurrences the source holds (each needs one in the translation)."""
    forms: tuple[Form, ...]


@dataclass(frozen=True)
class Vocabulary:
    """The glossary's target forms in one tokenizer's vocabulary, and the pieces the rules look at."""

    forms: dict[int, tuple[Form, ...]]
    """Entry index -> the token ids of its target forms."""
    word_start: frozenset[int]
    """Pieces of the forms that begin a word."""
    joins: frozenset[int]
    """Pieces after which a word may follow without the word-start mark: those ending in an apostrophe or a hyphen
    (`l'`, `d'`, `Nord-`)."""
    glue: tuple[int, ...]
    """Pieces that go on a word (their text begins with a letter or a digit), plural endings excepted."""
    texts: tuple[str, ...] | None
    """Each id's text, where the tokenizer decodes by joining them (SentencePiece: `▁` is a space, special tokens
    are nothing), so a hypothesis's text grows by one piece a step; None: decode each hypothesis whole."""
    bare: frozenset[int]
    """Pieces that are the word-start mark alone (before a capital, a digit or a bracket): a form that begins with
    one is not begun by it."""

    @classmethod
    def build(cls, glossary: Glossary, index: TermIndex, tokenizer: Any,
              entries: Collection[int] | None = None) -> "Vocabulary":  # fmt: skip
        """The forms each entry (of `entries`, None: all) can be written with: those the tokenizer writes back as the
        term (no unknown piece, no character its normalisation rewrites, read by `index`, the glossary's
        target-language index, as the entry); an entry without one is not constrained."""
        target_lang = index.lang
        vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        ids_of = {piece: i for i, piece in enumerate(vocabulary)}  # the target side's (Marian: its own vocabulary)
        unknown = getattr(tokenizer, "unk_token_id", None)
        forms: dict[int, tuple[Form, ...]] = {}
        decoded: dict[Form, str] = {}
        starts: set[int] = set()
        for entry_index, entry in enumerate(glossary.entries):
            if entries is not None and entry_index not in entries:
                continue
            texts = [text for form in entry.forms(target_lang) for text in capitalised(form)]
            found: list[Form] = []
            for ids in target_ids(tokenizer, texts):
                decoded[tuple(ids)] = tokenizer.decode(ids, skip_special_tokens=True)
                if unknown in ids or not index.counts(decoded[tuple(ids)], {entry_index}):
                    continue
                pieces = [vocabulary[i] for i in ids]
                starts.update(i for i, p in zip(ids, pieces) if p.startswith(WORD_START))
                found += [tuple(ids), *filter(None, [without_word_start(ids_of, ids, pieces)])]
            forms[entry_index] = tuple(dict.fromkeys(f for f in found if f))
        endings = set(PLURALS[target_lang]) | {e.upper() for e in PLURALS[target_lang]}
        glue = tuple(i for i, p in enumerate(vocabulary) if p and p[0].isalnum() and p not in endings)
        joins = frozenset(i for i, p in enumerate(vocabulary) if p.endswith(("'", "\u2019", "-")))
        bare = frozenset(i for i, p in enumerate(vocabulary) if p in WORD_START)
        special = set(getattr(tokenizer, "all_special_ids", ()))
        texts = tuple("" if i in special else p.replace(WORD_START[0], " ") for i, p in enumerate(vocabulary))
        for form in (f for entry_forms in forms.values() for f in entry_forms if f not in decoded):  # joined ones
            decoded[form] = tokenizer.decode(list(form), skip_special_tokens=True)
        probes = [form for entry_forms in forms.values() for form in entry_forms]
        if any(decoded[f].strip() != "".join(texts[i] for i in f).strip() for f in probes):
            texts = None
        return cls(forms=forms, word_start=frozenset(starts), joins=joins, glue=glue, texts=texts, bare=bare)


def capitalised(form: str) -> list[str]:
    """`form`, and with a capital first letter where it has none."""
    return [form, form[:1].upper() + form[1:]] if form[:1].islower() else [form]


def target_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """`texts` tokenized as the target side is (Marian's target vocabulary), without special tokens."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(text_target=list(texts), add_special_tokens=False)["input_ids"]]


def without_word_start(ids_of: dict[str, int], ids: Sequence[int], pieces: Sequence[str]) -> Form | None:
    """The form written straight after an apostrophe or a hyphen (`l'` + `indice`): its first piece without the
    word-start mark, when the vocabulary (`ids_of`: piece -> id) has that piece; None otherwise."""
    if not ids or not pieces[0].startswith(WORD_START):
        return None
    rest = pieces[0][1:]
    if not rest:
        return tuple(ids[1:]) or None
    joined = ids_of.get(rest)
    return None if joined is None else (joined, *ids[1:])


def sentence_constraints(counts: Counter[int], vocabulary: Vocabulary) -> tuple[Constraint, ...]:
    """The constraints of one source sentence, from the glossary entries it holds (`counts`: TermIndex.counts of
    it): each with its count and target forms, those `vocabulary` can write."""
    return tuple(Constraint(entry, n, vocabulary.forms[entry]) for entry, n in sorted(counts.items())
                 if vocabulary.forms.get(entry))  # fmt: skip


@dataclass(frozen=True)
class TermConstraints:
    """Constrained decoding with one glossary in one direction (`--term-constraints`)."""

    glossary: Glossary
    source_lang: str
    target_lang: str
    forced: frozenset[int] | None = None
    """The entries to put in (data/fit.py chooses them); None: all. The sources are matched against the whole
    glossary, as evaluation matches them, so an entry left out is not replaced by a shorter one inside it."""

    def plan(self, tokenizer: Any, sources: Sequence[str]) -> "ConstraintPlan":
        """The constraints of each of `sources` in `tokenizer`'s vocabulary (only the entries the sources hold are
        tokenized: a termbase of 100,000 entries costs what the few it meets cost)."""
        source_index = TermIndex.build(self.glossary, self.source_lang)
        counts = [source_index.counts(text) for text in sources]
        found = {entry for c in counts for entry in c}
        needed = found if self.forced is None else found & self.forced
        target_index = TermIndex.build(self.glossary, self.target_lang)
        vocabulary = Vocabulary.build(self.glossary, target_index, tokenizer, needed)
        return ConstraintPlan(
            [sentence_constraints(c, vocabulary) for c in counts], vocabulary, target_index,
            lambda ids: tokenizer.decode(ids, skip_special_tokens=True), int(tokenizer.eos_token_id),
        )  # fmt: skip


@dataclass(frozen=True)
class ConstraintPlan:
    """Each sentence's constraints, and what a decoding step needs to apply them."""

    sentences: list[tuple[Constraint, ...]]
    vocabulary: Vocabulary
    target_index: TermIndex
    decode: Callable[[list[int]], str]
    eos: int

    def batch(self, indices: Sequence[int]) -> "BatchConstraints":
        return BatchConstraints(self, [self.sentences[i] for i in indices])


@dataclass(frozen=True)
class BatchConstraints:
    """The constraints of one generation batch, in its order."""

    plan: ConstraintPlan
    sentences: list[tuple[Constraint, ...]]

    def processor(self, num_beams: int, max_new_tokens: int | None = None) -> Any:
        """A transformers LogitsProcessor for this batch's beam search of `num_beams` hypotheses (1: greedy), each
        at most `max_new_tokens` long."""
        return constraint_processor(self.plan, self.sentences, num_beams, max_new_tokens)


def term_constraints_for(
    glossary: Glossary | None, source: ModelSource, direction: Direction, forced: frozenset[int] | None = None
) -> TermConstraints | None:
    """`--term-constraints` for a model source, putting in the `forced` entries (None: all): None without a
    glossary; refused for an exported model, whose beam search (CTranslate2's) takes no constraints."""
    if glossary is None:
        return None
    if source.kind == EXPORTED:
        raise SettingsError(f"--term-constraints: {source.flag} {source.model_id} is a CTranslate2 export, whose beam "
                            "search takes no constraints; translate with the run or merged model it came from")
    return TermConstraints(glossary, direction.source, direction.target, forced)


# -- one decoding step (pure) ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What one hypothesis may do next."""

    only: frozenset[int] = frozenset()
    """When not empty: the only tokens allowed."""
    add: dict[int, float] = field(default_factory=dict)
    """Otherwise: added to these tokens' log-probabilities (-inf: not allowed)."""
    unglued: bool = False
    """A term was just written: no piece that would go on its last word."""
    adding: dict[int, Progress] = field(default_factory=dict)
    """For a token that starts or goes on with a term added before the end: the forms it goes on with."""


def unmet(constraints: Sequence[Constraint], met: Counter[int]) -> list[Constraint]:
    return [c for c in constraints if met.get(c.entry, 0) < c.count]


def finite(value: Any) -> bool:
    return bool(value > NEG_INF)


def rank(scores: Any, token: int) -> int:
    """How many tokens score higher than `token` (`scores`: a list or a tensor row)."""
    value = scores[token]
    return sum(1 for x in scores if x > value) if isinstance(scores, list) else int((scores > value).sum())


def ends_with(ids: Sequence[int], form: Form, k: int) -> bool:
    return len(ids) >= k and tuple(ids[len(ids) - k :]) == form[:k]


def continuations(
    scores: Any, ids: Sequence[int], missing: Sequence[Constraint], word_start: frozenset[int],
    joins: frozenset[int] = frozenset(), bare: frozenset[int] = frozenset(),
) -> set[int]:
    """The next tokens of the missing forms that `ids` ends inside of, where a whole word of the form is written or
    the model ranks the next token among PLAUSIBLE (see the module docstring). A form is not begun by a bare
    word-start mark alone, and one without the mark only after a piece of `joins`."""
    found: set[int] = set()
    for constraint in missing:
        for form in constraint.forms:
            for k in range(min(len(form) - 1, len(ids)), 0, -1):
                if not ends_with(ids, form, k) or not finite(scores[form[k]]) or (k == 1 and form[0] in bare):
                    continue
                if form[0] not in word_start and not (len(ids) > k and ids[-k - 1] in joins):
                    continue  # a joined form inside another word
                if any(t in word_start for t in form[1 : k + 1]) or rank(scores, form[k]) < PLAUSIBLE:
                    found.add(form[k])
    return found


def step_row(
    scores: Any, ids: Sequence[int], constraints: Sequence[Constraint], met: Counter[int],
    word_start: frozenset[int], eos: int, adding: Progress = frozenset(), left: int | None = None,
    joins: frozenset[int] = frozenset(), bare: frozenset[int] = frozenset(),
) -> Step | None:
    """What one hypothesis (`ids`; `scores`, the log-probabilities of its next token: a list or a tensor row) may do
    next under `constraints`, `met` counting the entries its text holds, `adding` the terms it is adding before the
    end, `left` the tokens it may still write (this one and the closing one included; None: no limit), `joins` the
    pieces a form without the word-start mark may follow, `bare` the word-start marks alone; None: anything."""
    unglued = any(ends_with(ids, form, len(form)) for c in constraints for form in c.forms)
    if left is not None and left <= 1:  # the last token (generate forces the end for most families)
        return Step(unglued=True) if unglued else None
    missing = unmet(constraints, met)
    if not missing:
        return Step(unglued=True) if unglued else None
    missing_forms = {form for c in missing for form in c.forms}
    going: dict[int, set[tuple[Form, int]]] = {}
    for form, k in adding:  # a term added before the end is written to its end
        if form in missing_forms and k < len(form) and finite(scores[form[k]]):
            going.setdefault(form[k], set()).add((form, k + 1))
    if going:
        return Step(only=frozenset(going), adding={t: still_going(p) for t, p in going.items()})
    begun = continuations(scores, ids, missing, word_start, joins, bare)
    if begun:
        return Step(only=frozenset(begun))
    joined = bool(ids) and ids[-1] in joins
    startable = {form for form in missing_forms if (form[0] in word_start or joined) and finite(scores[form[0]])}
    shortest = [min((f for f in c.forms if f in startable), key=len, default=None) for c in missing]
    need = sum((c.count - met.get(c.entry, 0)) * len(f) for c, f in zip(missing, shortest) if f is not None)
    if left is not None and left <= need + 1:  # the missing terms only just fit before the token budget ends
        now = {f for f in shortest if f is not None and len(f) + 1 <= left}  # only terms that fit whole
        if now:
            return Step(only=frozenset(f[0] for f in now),
                        adding={f[0]: still_going({(g, 1) for g in now if g[0] == f[0]}) for f in now})  # fmt: skip
    add: dict[int, float] = {eos: NEG_INF}
    starts: dict[int, set[tuple[Form, int]]] = {}
    end = scores[eos]
    if finite(end):  # what the model gave the end goes to starting a missing term
        for form in startable:
            if scores[form[0]] < end:
                add[form[0]] = float(end - scores[form[0]])
                starts.setdefault(form[0], set()).add((form, 1))
    return Step(add=add, unglued=unglued, adding={t: still_going(p) for t, p in starts.items()})


def still_going(forms: set[tuple[Form, int]]) -> Progress:
    """The forms not yet whole."""
    return frozenset((form, k) for form, k in forms if k < len(form))


def constraint_processor(
    plan: ConstraintPlan, constraints: Sequence[Sequence[Constraint]], num_beams: int, max_new_tokens: int | None
) -> Any:
    """A transformers LogitsProcessor applying `constraints` (a tuple per sentence of the batch) to a beam search of
    `num_beams` hypotheses per sentence, each at most `max_new_tokens` long. It remembers, by hypothesis, the terms
    being added before the end."""
    import torch
    from transformers import LogitsProcessor

    class TermConstraintProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.adding: dict[tuple[int, ...], Progress] = {}
            self.texts: dict[tuple[int, ...], str] = {}
            self.glue: Any = None
            self.prompt: int | None = None
            self.met = [GrowingCounts(plan.target_index, frozenset(c.entry for c in wanted)) for wanted in constraints]

        def text(self, key: tuple[int, ...], before: dict[tuple[int, ...], str]) -> str:
            """The text of hypothesis `key` (its sentence, then its ids): the text it had a step before and its newest
            piece's, or decoded whole."""
            pieces = plan.vocabulary.texts
            known = before.get(key[:-1]) if pieces is not None else None
            text = known + pieces[key[-1]] if known is not None and pieces is not None else plan.decode(list(key[1:]))
            self.texts[key] = text
            return text

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            adding, self.adding = self.adding, {}
            texts, self.texts = self.texts, {}
            if self.prompt is None:  # the first call sees the decoder's start alone
                self.prompt = int(input_ids.shape[1])
            left = None if max_new_tokens is None else max_new_tokens - (int(input_ids.shape[1]) - self.prompt)
            for row, ids in enumerate(input_ids.tolist()):
                wanted = constraints[row // num_beams]
                if not wanted:
                    continue
                key = (row // num_beams, *ids)  # sentences share their first tokens
                met = self.met[row // num_beams].counts(self.text(key, texts))
                step = step_row(scores[row], ids, wanted, met, plan.vocabulary.word_start, plan.eos,
                                adding.get(key, frozenset()), left, plan.vocabulary.joins,
                                plan.vocabulary.bare)  # fmt: skip
                if step is None:
                    continue
                if step.only:
                    keep = torch.tensor(sorted(step.only), device=scores.device)
                    kept = scores[row, keep].clone()
                    scores[row].fill_(NEG_INF)
                    scores[row, keep] = kept
                if step.unglued:
                    if self.glue is None:
                        self.glue = torch.tensor(plan.vocabulary.glue, dtype=torch.long, device=scores.device)
                    scores[row, self.glue] = NEG_INF
                for token, add in step.add.items():
                    scores[row, token] += add
                for token, forms in step.adding.items():
                    if forms:
                        self.adding[(*key, token)] = forms
            return scores

    return TermConstraintProcessor()


__all__ = [
    "BatchConstraints", "Constraint", "ConstraintPlan", "Step", "TermConstraints", "Vocabulary", "constraint_processor",
    "sentence_constraints", "step_row", "term_constraints_for",
]  # fmt: skip
