"""Model cards: the README.md of a merged or exported model directory, in the Hugging Face model card convention
(YAML metadata, then Markdown), so that a model that leaves csas says what it was trained from, on what, how and
how well, and a reader can trust or reproduce it.

`write_card(model_dir)` builds the card from what the directory and its run recorded: csas_merge.json or
csas_export.json, and through the record's run directory its run.json, finished.json, best/best.json and
metrics.jsonl (layout.RunRecord). The metadata (`huggingface_hub.ModelCardData`): base_model and
base_model_revision, language (the directions' languages), pipeline_tag translation, library_name (transformers for
a merge, ctranslate2 for an export), tags (csas, lora or qlora, the family) and a `csas` mapping (registry key, run,
which adapter, its step and sha256, the data files with their sha256 and row counts). The body: how to load it, the
training data, the plan's settings, steps, losses, chrF during training, the library versions, the csas commands
that reproduce it and the evaluations.

`record_results(model_dir, results)` adds scores (`csas evaluate --card`, `csas compare --card`) as model-index
entries: task translation; dataset: the test file's name, its sha256 as the revision, the direction (`en-fr`) as the
config, the rows scored as an argument; metrics bleu and chrf with sacrebleu's signatures as their config. An entry
of the same test file (sha256) and direction is replaced, and the body's evaluation section, between two HTML
comments, is written again from the entries.

A README.md that csas did not write (its metadata has no `csas` tag, or none can be read) is never replaced:
`check_card` refuses it in one line naming the file, which the commands call before any work.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import OutputError
from .files import library_versions, read_json_record, write_text_atomic
from .languages import Direction
from .layout import ADAPTER_DIR, BEST_DIR, EXPORT_RECORD, MERGE_RECORD, MODEL_CARD, RunRecord
from .registry import REGISTRY

TAG = "csas"
"""The tag that marks a card csas wrote, and may write again."""
EVALUATION_START = "<!-- csas:evaluation -->"
EVALUATION_END = "<!-- /csas:evaluation -->"
"""Around the body's evaluation section, which record_results writes again."""
NOT_FLAGS = ("which", "model_id", "output_dir", "data", "config")
"""Plan settings the reproducing command spells itself (or leaves out: a settings file's values are given as flags)."""


@dataclass(frozen=True)
class CardResult:
    """One model's scores on one test file, as a model card records them."""

    data: Path
    """The test file."""
    data_sha256: str
    """Its sha256 (data.pairs.pairs_sha256: of both files for line-aligned ones), what identifies the test set."""
    direction: Direction
    n: int
    """Rows scored."""
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def csas_model(model_dir: Path) -> bool:
    """`model_dir` is a merged or exported csas model (csas_merge.json or csas_export.json)."""
    return (model_dir / MERGE_RECORD).is_file() or (model_dir / EXPORT_RECORD).is_file()


def load_card(path: Path) -> Any | None:
    """The card at `path` when csas wrote it; None when it is not csas's (no `csas` tag, or unreadable metadata)."""
    import yaml
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(path)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):  # not a card csas can read
        return None
    tags = card.data.tags or []
    return card if isinstance(tags, list) and TAG in tags else None


def check_card(model_dir: Path) -> None:
    """Refuse, before any work, a model directory whose README.md csas did not write: it is someone's own card."""
    path = Path(model_dir) / MODEL_CARD
    if csas_model(Path(model_dir)) and path.exists() and load_card(path) is None:
        raise OutputError(f"{path}: a model card csas did not write (no `{TAG}` tag); csas leaves it as it is: move "
                          "it aside to have csas write its own")  # fmt: skip


def record_results(model_dir: Path, results: Sequence[CardResult]) -> Path | None:
    """Add `results` to the model card (README.md) of a merged or exported model directory as model-index entries,
    replacing an entry of the same test file (sha256) and direction; returns the card's path, or None when
    `model_dir` is not a merged or exported csas model (a run directory or a base: nothing to write, the caller says
    so). A card missing there (a model merged before csas wrote cards) is written first, from the records."""
    model_dir = Path(model_dir)
    if not csas_model(model_dir):
        return None
    check_card(model_dir)
    path = model_dir / MODEL_CARD
    card = load_card(path) if path.exists() else None
    if card is None:
        card = build_card(model_dir)
    # One entry per test file and direction: the last of `results` where two are of the same content.
    results = list({(r.data_sha256, config_of(r.direction)): r for r in results}.values())
    replaced = {(r.data_sha256, config_of(r.direction)) for r in results}
    kept = [e for e in card.data.eval_results or [] if (e.dataset_revision, e.dataset_config) not in replaced]
    card.data.eval_results = kept + [entry for r in results for entry in eval_results(r)]
    card.data.model_name = card.data.model_name or model_dir.name
    card.text = with_evaluation(card.text, evaluation_section(card.data.eval_results, model_dir))
    write_text_atomic(path, str(card))
    return path


def write_card(model_dir: Path, out_dir: Path | None = None) -> Path:
    """Write README.md into `model_dir` (a merge or export being written: its record is there) from the records;
    `out_dir`: where the directory will be once renamed into place (its name and the commands use it)."""
    card = build_card(Path(model_dir), out_dir)
    path = Path(model_dir) / MODEL_CARD
    write_text_atomic(path, str(card))
    return path


def config_of(direction: Direction) -> str:
    """A direction as a model-index dataset config: `en-fr`."""
    return f"{direction.source}-{direction.target}"


def eval_results(result: CardResult) -> list[Any]:
    """The two model-index entries (bleu, chrf) of one result."""
    from huggingface_hub import EvalResult

    shared = {"task_type": "translation", "task_name": f"Translation {result.direction}",
              "dataset_type": result.data.name, "dataset_name": result.data.name,
              "dataset_config": config_of(result.direction), "dataset_revision": result.data_sha256,
              "dataset_args": {"rows": result.n}}  # fmt: skip
    return [EvalResult(metric_type="bleu", metric_name="BLEU", metric_value=result.bleu,
                       metric_config=result.bleu_signature, **shared),
            EvalResult(metric_type="chrf", metric_name="chrF", metric_value=result.chrf,
                       metric_config=result.chrf_signature, **shared)]  # fmt: skip


# --- building a card from the records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """What a card is built from: the directory's record and its run's."""

    model_dir: Path
    out_dir: Path
    record: dict[str, Any]
    """csas_export.json, or csas_merge.json."""
    exported: bool
    run: RunRecord

    @property
    def plan(self) -> dict[str, Any]:
        return self.run.plan

    @property
    def trained(self) -> bool:
        """csas trained it: the record names a run (an export of someone's model directory names none)."""
        return bool(self.record.get("run_dir"))

    def no_run(self) -> str:
        """Why a section has nothing to say about the training."""
        if not self.trained:
            return "csas did not train this model: it is an export of a model directory.\n"
        return f"The run's record (run.json) was not found at `{self.record.get('run_dir')}`.\n"

    @property
    def directions(self) -> list[Direction]:
        found = []
        for text in self.record.get("directions") or []:
            source, _, target = str(text).partition("->")
            found.append(Direction(source, target))
        return found


def sources_of(model_dir: Path, out_dir: Path | None = None) -> Sources:
    export = read_json_record(model_dir / EXPORT_RECORD)
    record = export or read_json_record(model_dir / MERGE_RECORD)
    run_dir = record.get("run_dir")
    run = RunRecord.read(Path(run_dir)) if isinstance(run_dir, str) else RunRecord(Path("-"), {}, {})
    return Sources(model_dir, Path(out_dir or model_dir), record, bool(export), run)


def build_card(model_dir: Path, out_dir: Path | None = None) -> Any:
    """The card of a merged or exported directory, from its record and its run's, without evaluations."""
    from huggingface_hub import ModelCard, ModelCardData

    src = sources_of(model_dir, out_dir)
    record, plan = src.record, src.plan
    languages = list(dict.fromkeys(lang for d in src.directions for lang in (d.source, d.target)))
    which = record.get("which")
    tags = [TAG, *(["qlora" if plan.get("qlora") else "lora"] if src.trained else []), "translation"]
    tags += [REGISTRY[which].family.name] if which in REGISTRY else []
    tags += ["ctranslate2"] if src.exported else []
    extra = {"base_model_revision": record["base_revision"]} if record.get("base_revision") else {}
    data = ModelCardData(
        base_model=record.get("base_model_id") or plan.get("model_id"), language=languages or None,
        pipeline_tag="translation", library_name="ctranslate2" if src.exported else "transformers", tags=tags,
        csas=csas_metadata(src), **extra,
    )  # fmt: skip
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body(src)}")


def csas_metadata(src: Sources) -> dict[str, Any]:
    """The card's `csas` mapping: what csas made and from what, for scripts to read."""
    record = src.record
    out = {"which": record.get("which"), "kind": "exported" if src.exported else "merged",
           "run_dir": record.get("run_dir"), "adapter": record.get("adapter_choice"),
           "adapter_step": record.get("adapter_step"), "adapter_sha256": record.get("adapter_sha256"),
           "data": data_files(src)}  # fmt: skip
    if src.exported:
        out["quantization"] = record.get("quantization")
    else:
        out["dtype"] = record.get("dtype")
    return {k: v for k, v in out.items() if v is not None}


def data_files(src: Sources) -> list[dict[str, Any]]:
    """The training (and validation) files with their sha256 and row counts, as run.json records them."""
    plan, run = src.plan, src.run.run
    if not plan.get("data"):
        return []
    own_eval = plan.get("eval_data") is not None
    train = {"file": plan["data"], "role": "training" if own_eval else "training and validation",
             "sha256": run.get("data_sha256"), "rows_read": plan.get("rows_read"),
             "train_rows": plan.get("train_rows")}  # fmt: skip
    if not own_eval:
        train["eval_rows"] = plan.get("eval_rows")
        return [train]
    return [train, {"file": plan["eval_data"], "role": "validation", "sha256": run.get("eval_data_sha256"),
                    "eval_rows": plan.get("eval_rows")}]  # fmt: skip


def cell(value: Any) -> str:
    """A Markdown table cell: `-` for nothing, pipes escaped."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def body(src: Sources) -> str:
    """The card's Markdown: a summary, then one section per question a reader asks."""
    sections = [summary(src), usage(src), training_data(src), training(src), reproducing(src), versions(src),
                "## Evaluation\n\n" + with_evaluation("", evaluation_section([], src.out_dir))]  # fmt: skip
    return "\n".join(sections)


def summary(src: Sources) -> str:
    record, plan, run = src.record, src.plan, src.run
    which = record.get("which") or plan.get("which") or "a model"
    method = "QLoRA" if plan.get("qlora") else "LoRA"
    made = (f"merged into its base and exported to CTranslate2 ({record.get('quantization')})" if src.exported
            else f"merged into its base ({record.get('dtype')})")  # fmt: skip
    directions = ", ".join(str(d) for d in src.directions) or "-"
    choice, step = record.get("adapter_choice"), record.get("adapter_step")
    folder = {"best": f"{BEST_DIR}/, the best evaluation's adapter", "last": f"{ADAPTER_DIR}/, the last step's adapter",
              "checkpoint": "a checkpoint's adapter",
              "averaged": "the mean of several steps' adapters (csas average)"}.get(choice, "the adapter")  # fmt: skip
    best = run.best
    rows = [("registry key", f"`{which}`"), ("translates", directions),
            ("base model", f"`{record.get('base_model_id')}`"), ("base revision", record.get("base_revision")),
            ("run", f"`{record.get('run_dir')}`"), ("adapter", f"{folder}" + (f", step {step}" if step else "")),
            ("adapter sha256", record.get("adapter_sha256")),
            ("best evaluation", None if best is None else best.describe()),
            ("made", record.get("exported") or record.get("merged"))]  # fmt: skip
    if src.exported:
        probe = record.get("probe") or {}
        if probe:
            rows.append(("probe", f"{probe.get('identical')} of {probe.get('sentences')} sentences as generate "
                                  f"translates them, chrF {probe.get('chrf_against_generate')}"))  # fmt: skip
    files = ", ".join(f"`{Path(d['file']).name}`" for d in data_files(src)) or "its data"
    intro = f"# {src.out_dir.name}\n\n`{which}` fine-tuned with csas ({method}) on {files}, {made}.\n\n"
    if not src.trained:
        intro = (f"# {src.out_dir.name}\n\n`{which}`: the model directory `{record.get('merged_model')}` exported to "
                 f"CTranslate2 ({record.get('quantization')}); csas did not train it.\n\n")  # fmt: skip
    return intro + table(("", ""), rows)


def usage(src: Sources) -> str:
    path = src.out_dir
    lang = " --source-lang en" if len(src.directions) > 1 else ""
    text = f"## Use\n\n```bash\ncsas translate notes.txt --model {shlex.quote(str(path))}{lang} -o notes.out.txt\n```\n"
    if src.exported:
        return text + "\nA CTranslate2 model: `ctranslate2.Translator` loads it, with the tokenizer files beside it.\n"
    text += ("\n```python\nfrom transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
             f"tokenizer = AutoTokenizer.from_pretrained({str(path)!r})\n"
             f"model = AutoModelForSeq2SeqLM.from_pretrained({str(path)!r})\n```\n")  # fmt: skip
    if len(src.directions) > 1:
        text += ("\nIt translates both ways, so nothing is forced: set `tokenizer.src_lang` and pass "
                 "`forced_bos_token_id=tokenizer.get_lang_id(target)` to `generate`.\n")  # fmt: skip
    return text


def training_data(src: Sources) -> str:
    files = data_files(src)
    if not files:
        return "## Training data\n\n" + src.no_run()
    rows = [(f"`{d['file']}`", d["role"], d.get("sha256"), d.get("rows_read"), d.get("train_rows"),
             d.get("eval_rows")) for d in files]  # fmt: skip
    plan = src.plan
    cut = src.run.run.get("cut") or {}
    notes = [f"rows of the other direction: {plan.get('rows_other_language')}",
             f"rows skipped (empty source or target): {plan.get('rows_skipped')}",
             f"pairs cut at --max-source-len / --max-target-len: {cut.get('sources')} / {cut.get('targets')}"]
    return ("## Training data\n\n" + table(("file", "role", "sha256", "rows read", "train pairs", "validation pairs"),
                                           rows) + "\n" + "".join(f"- {n}\n" for n in notes))  # fmt: skip


def training(src: Sources) -> str:
    from .settings import FIELDS

    plan, run = src.plan, src.run
    if not plan:
        return "## Training\n\n" + src.no_run()
    settings = [(name, plan[name]) for name, f in FIELDS.items() if f.metadata["record"] and name in plan
                and plan[name] is not None and name not in ("data", "eval_data")]  # fmt: skip
    resolved = ("precision", "global_batch", "label_smoothing", "weight_decay", "max_grad_norm")
    settings += [(name, plan[name]) for name in resolved if plan.get(name) is not None]
    last = run.evaluations()[-1] if run.evaluations() else None
    best = run.best
    results = [("steps", f"{run.steps} of {run.run.get('total_steps')}" + (" (stopped early)" if run.stopped_early
                                                                          else "")),
               ("final train loss", run.train_loss), ("final eval loss", run.eval_loss),
               ("final eval chrF", run.eval_chrf(logged=True)),
               ("last evaluation", None if last is None else last.describe()),
               ("best evaluation", None if best is None else best.describe()),
               ("training time", None if run.seconds_total is None else f"{run.seconds_total:.0f} s"),
               ("device", run.run.get("device"))]  # fmt: skip
    text = "## Training\n\n" + table(("setting", "value"), [(f"`{k}`", v) for k, v in settings])
    text += "\n" + table(("result", "value"), results)
    evaluations = run.evaluations()
    if evaluations:
        text += "\nEvaluations during training (validation loss, and chrF with --eval-chrf):\n\n"
        text += table(("step", "eval_loss", "eval_chrf"), [(e.step, e.eval_loss, e.eval_chrf) for e in evaluations])
    return text


def finetune_command(plan: Mapping[str, Any]) -> str:
    """The `csas finetune` command line that trains the run `plan` records: every recorded setting that differs from
    its default, as a flag (a settings file's values too, so the file is not needed)."""
    from .fields import dashed, switch_spelling
    from .settings import FIELDS

    run_dir = Path(str(plan.get("output_dir") or "outputs/x"))
    words = ["csas", "finetune", "--which", str(plan.get("which")), "--data", str(plan.get("data"))]
    if plan.get("model_id"):
        words += ["--model-id", str(plan["model_id"])]
    words += ["--output-dir", str(run_dir.parent)]
    for name, f in FIELDS.items():
        wanted = f.metadata["record"] and "finetune" in f.metadata["commands"]
        if name in NOT_FLAGS or name not in plan or not wanted:
            continue
        value, default = plan[name], f.default
        value = tuple(value) if isinstance(value, list) else value
        if value is None or value == default or (isinstance(default, Path) and str(default) == value):
            continue
        if isinstance(value, bool):
            words.append(switch_spelling(f, value))
        else:
            words += [dashed(f), ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return " ".join(shlex.quote(w) for w in words)


def reproducing(src: Sources) -> str:
    record, plan = src.record, src.plan
    if not plan:
        return "## Reproducing\n\n" + src.no_run()
    run_dir = Path(str(plan.get("output_dir")))
    adapter = record.get("adapter_choice")
    named = {"best": ["--adapter", "best"], "last": ["--adapter", "last"]}.get(adapter, [])
    source = str(record.get("adapter") if adapter in ("checkpoint", "averaged") else record.get("run_dir") or run_dir)
    lines = [finetune_command(plan)]
    merged = record.get("merged_model") if src.exported else None
    out = str(src.out_dir)
    if src.exported and merged:
        lines.append(" ".join(shlex.quote(w) for w in ["csas", "merge", source, merged, *named]))
        lines.append(" ".join(shlex.quote(w) for w in ["csas", "export", merged, out, "--quantization",
                                                        str(record.get("quantization"))]))  # fmt: skip
    elif src.exported:
        lines.append(" ".join(shlex.quote(w) for w in ["csas", "export", source, out, *named, "--quantization",
                                                        str(record.get("quantization"))]))  # fmt: skip
    else:
        lines.append(" ".join(shlex.quote(w) for w in ["csas", "merge", source, out, *named, "--dtype",
                                                        str(record.get("dtype"))]))  # fmt: skip
    trial = f"; this run was the sweep trial `{run_dir}`" if plan.get("which") != run_dir.name else ""
    note = (f"`csas finetune` trains into OUTPUT_DIR/<key>{trial}. With the same data, seed and library versions it "
            "trains the same adapter, up to the device's arithmetic.")  # fmt: skip
    return "## Reproducing\n\n```bash\n" + "\n".join(lines) + "\n```\n\n" + note + "\n"


def versions(src: Sources) -> str:
    trained = src.run.run.get("versions") or {}
    now = library_versions()
    if src.exported:
        now["ctranslate2"] = src.record.get("ctranslate2_version") or "-"
    names = list(dict.fromkeys([*trained, *now]))
    what = "export" if src.exported else "merge"
    return "## Versions\n\n" + table(("library", "training", what), [(n, trained.get(n), now.get(n)) for n in names])


# --- the evaluation section --------------------------------------------------------------------------------------


def evaluation_section(entries: Sequence[Any], model_dir: Path) -> str:
    """The body's evaluation section from the model-index entries: a table, then the signatures."""
    if not entries:
        return (f"Not evaluated yet: `csas evaluate --card --data TEST --model {shlex.quote(str(model_dir))}` adds "
                "its BLEU and chrF here and to the metadata's model-index.\n")  # fmt: skip
    grouped: dict[tuple, dict[str, Any]] = {}
    for e in entries:
        key = (e.dataset_name, e.dataset_revision, e.dataset_config)
        grouped.setdefault(key, {"rows": (e.dataset_args or {}).get("rows")})[e.metric_type] = e
    rows, signatures = [], []
    for (name, sha, config), found in grouped.items():
        bleu, chrf = found.get("bleu"), found.get("chrf")
        rows.append((f"`{name}`", (sha or "")[:12], config, found["rows"],
                     None if bleu is None else f"{bleu.metric_value:.2f}",
                     None if chrf is None else f"{chrf.metric_value:.2f}"))  # fmt: skip
        for metric in (bleu, chrf):
            if metric is not None and metric.metric_config:
                signatures.append(f"{metric.metric_name} `{metric.metric_config}`")
    text = table(("test file", "sha256", "direction", "rows", "BLEU", "chrF"), rows)
    unique = list(dict.fromkeys(signatures))
    return text + ("\nsacrebleu signatures: " + "; ".join(unique) + "\n" if unique else "")


def with_evaluation(text: str, section: str) -> str:
    """`text` with its evaluation section replaced by `section` (appended, under a heading, when it has none)."""
    block = f"{EVALUATION_START}\n{section}{EVALUATION_END}\n"
    start, end = text.find(EVALUATION_START), text.find(EVALUATION_END)
    if start == -1 or end < start:
        return text + block if not text else text.rstrip("\n") + "\n\n## Evaluation\n\n" + block
    rest = text[end + len(EVALUATION_END):].lstrip("\n")
    return text[:start] + block + ("\n" + rest if rest else "")


__all__ = ["CardResult", "build_card", "check_card", "csas_model", "finetune_command", "record_results", "write_card"]
