"""Tests for the TMX and TSV readers (csas_cli.data.tmx, csas_cli.data.tsv) and pairs.read_pairs: each format reads
to the same rows as the equivalent JSON Lines file, through the training path and the CLI too; every malformed or
hostile file is one line naming the file and line; the TMX reader streams and never reads a DTD or an entity."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from helpers import SAMPLE, first_steps, invoke

from csas_cli.data import tmx
from csas_cli.data.pairs import (
    PAIR_FORMATS,
    Example,
    example_record,
    load_examples,
    read_jsonl,
    read_pairs,
    split_examples,
)
from csas_cli.data.tmx import normalise_segment, read_tmx
from csas_cli.data.tsv import read_tsv
from csas_cli.errors import DataError

KEY = "m2m100_418m"  # trains both directions
MARKER = "MARKER-7f3a9c-SECRET"
"""Text in files that a hostile TMX points at: it must never show up in a row or a message."""


def without_line(examples) -> list[Example]:
    return [dataclasses.replace(e, line=0) for e in examples]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def refused(read, path: Path, line: int | None = None) -> str:
    """Read `path` fully with `read`, expecting a one-line DataError that starts with the path (and line)."""
    with pytest.raises(DataError) as info:
        list(read(path))
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(prefix), message
    return message[len(prefix):]


_OPENED: list[str] | None = None
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open":
        _OPENED.append(str(args[0]))


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every file Python opens inside the block (the "open" audit event: open(), io.open, os.open, urllib's file
    handler). expat itself does no I/O: it hands external entities to the Python handler, so this sees them all."""
    global _OPENED, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


# --- the equivalent TMX and JSON Lines files ------------------------------------------------------------------

TMX_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
<header creationtool="Trados" creationtoolversion="9" datatype="plaintext" segtype="sentence" adminlang="en-US"
        srclang="en-CA" o-tmf="TW4Win"/>
<body>
"""

TRICKY_UNITS = """<tu tuid="1">
  <prop type="pub_number"> T-1 </prop>
  <tuv xml:lang="en-CA"><seg>Click <bpt i="1" x="1">&lt;b&gt;</bpt>Save<ept i="1">&lt;/b&gt;</ept> to keep   the
\t<hi type="b">changes</hi>.</seg></tuv>
  <tuv xml:lang="FR-ca"><seg>Cliquez sur <bpt i="1">&lt;b&gt;</bpt>Enregistrer<ept i="1">&lt;/b&gt;</ept> pour garder
 les <hi>modifications</hi>.</seg></tuv>
  <tuv xml:lang="de-DE"><seg>Klicken Sie auf Speichern.</seg></tuv>
</tu>
<tu srclang="FR-ca"><prop type="x-pub_number">T-2</prop>
  <tuv xml:lang="fr"><seg>Prix&#160;: 10&#x202F;000&#xA0;$ &amp; taxes &lt;incluses&gt; &quot;TTC&quot; &apos;net&apos;
 &#233;t&#xE9;</seg></tuv>
  <tuv xml:lang="en-US"><seg>Price: $10,000 &amp; taxes &lt;included&gt; "net"</seg></tuv>
</tu>
<tu>
  <tuv lang="EN-US"><seg>See<ph x="3">&lt;a title="<sub>Note one</sub>"&gt;</ph> note 1
<it pos="begin" x="4">&lt;i&gt;</it>here<ut>{\\b}</ut>.</seg></tuv>
  <tuv lang="fr_FR"><seg>Voir la note 1<ph x="3"/> ici.</seg></tuv>
</tu>
<tu srclang="*all*">
  <prop type="pub_number">T-4</prop>
  <tuv xml:lang="en"><seg>Yes</seg></tuv>
  <tuv xml:lang="fr"><seg>Oui</seg></tuv>
</tu>
<tu><prop type="x-pub_number">   </prop>
  <tuv xml:lang="en"><seg>Untranslated</seg></tuv>
  <tuv xml:lang="fr"><seg>  </seg></tuv>
</tu>
<tu srclang="en-GB">
  <note>A note; its text is not a segment.</note>
  <prop type="x-client">ACME</prop>
  <tuv xml:lang="fr-FR"><prop type="pub_number">not on the tu</prop><seg>Ligne un&#xA0;! <![CDATA[a < b]]></seg></tuv>
  <tuv xml:lang="es"><seg>Linea uno</seg></tuv>
  <tuv xml:lang="en-gb"><seg>Line one&#x2028;line two&#x3000;&#x2003; a &lt; b</seg></tuv>
</tu>
"""

TRICKY_ROWS = [
    {"source": "Click Save to keep the changes.", "target": "Cliquez sur Enregistrer pour garder les modifications.",
     "source_lang": "en", "pub_number": "T-1"},
    {"source": "Prix\u00a0: 10\u202f000\u00a0$ & taxes <incluses> \"TTC\" 'net' été",
     "target": 'Price: $10,000 & taxes <included> "net"', "source_lang": "fr", "pub_number": "T-2"},
    {"source": "See note 1 here.", "target": "Voir la note 1 ici.", "source_lang": "en"},
    {"source": "Yes", "target": "Oui", "source_lang": "en", "pub_number": "T-4"},
    {"source": "Oui", "target": "Yes", "source_lang": "fr", "pub_number": "T-4"},
    {"source": "Untranslated", "target": "", "source_lang": "en"},
    {"source": "Line one line two a < b", "target": "Ligne un\u00a0! a < b", "source_lang": "en"},
]  # fmt: skip
"""TRICKY_UNITS as JSON Lines, written out by hand."""


def sample_rows(per_language: int) -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["source_lang"] == "en"][:per_language] + [
        r for r in rows if r["source_lang"] == "fr"][:per_language]  # fmt: skip


def sample_unit(row: dict) -> str:
    """A plain unit for a sample row: English sources take the header's srclang (en-CA), French ones their own."""
    src, tgt = (row["source"], row["target"])
    en, fr = (src, tgt) if row["source_lang"] == "en" else (tgt, src)
    srclang = "" if row["source_lang"] == "en" else ' srclang="fr-CA"'
    return (f'<tu{srclang}><prop type="pub_number">{escape(row["pub_number"])}</prop>\n'
            f'  <tuv xml:lang="fr-CA"><seg>{escape(fr)}</seg></tuv>\n'
            f'  <tuv xml:lang="en-CA"><seg>{escape(en)}</seg></tuv>\n</tu>\n')  # fmt: skip


@pytest.fixture
def equivalent(tmp_path: Path) -> tuple[Path, Path]:
    """(data.tmx, data.jsonl): the tricky units and 20 + 20 sample rows, as TMX and as the same rows in JSONL."""
    rows = sample_rows(20)
    text = TMX_HEAD + TRICKY_UNITS + "".join(sample_unit(r) for r in rows) + "</body>\n</tmx>\n"
    (tmp_path / "data.tmx").write_text(text, encoding="utf-8")
    return tmp_path / "data.tmx", write_jsonl(tmp_path / "data.jsonl", TRICKY_ROWS + rows)


def tu_lines(text: str) -> list[int]:
    return [number for number, line in enumerate(text.splitlines(), start=1) if line.startswith("<tu")]


def test_tmx_reads_as_the_equivalent_jsonl(equivalent: tuple[Path, Path]) -> None:
    tmx_path, jsonl_path = equivalent
    got = list(read_pairs(tmx_path))
    assert without_line(got) == without_line(read_jsonl(jsonl_path))
    assert len(got) == 47
    assert got[1] == Example(TRICKY_ROWS[1]["source"], TRICKY_ROWS[1]["target"], "fr", "en", "T-2", 15)
    # Each row has its unit's line; the *all* unit's two rows share it.
    lines = tu_lines(tmx_path.read_text(encoding="utf-8"))
    assert lines[:6] == [7, 15, 20, 25, 30, 34]
    assert [e.line for e in got] == lines[:4] + [lines[3]] + lines[4:]


def test_load_and_split_tmx_as_jsonl(equivalent: tuple[Path, Path]) -> None:
    tmx_path = equivalent[0]
    loaded = {p.suffix: load_examples(p, ["en", "fr"]) for p in equivalent}
    assert [(d.rows_read, d.rows_other_language, d.rows_empty, len(d.examples)) for d in loaded.values()] == [
        (47, 0, 1, 46), (47, 0, 1, 46)]  # fmt: skip
    english = load_examples(tmx_path, ["en"])
    assert (english.rows_read, english.rows_other_language, english.rows_empty) == (47, 22, 1)
    splits = [split_examples(d.examples, 0.2, 7) for d in loaded.values()]
    assert [(len(s.train), len(s.eval), s.train_publications, s.eval_publications) for s in splits] == [
        (37, 9, 3, 3)] * 2  # fmt: skip
    assert without_line(splits[0].train) == without_line(splits[1].train)
    assert without_line(splits[0].eval) == without_line(splits[1].eval)


def test_tmx_trains_the_same_plan_and_first_batch(equivalent, tiny_models, tmp_path: Path) -> None:
    from csas_cli.settings import FinetuneSettings
    from csas_cli.training.run import build_recipe, prepare_run

    plans, batches = [], []
    for data in equivalent:
        settings = FinetuneSettings.create(which=KEY, model_id=str(tiny_models[KEY]), data=data,
                                           output_dir=tmp_path / "out", qlora=False, max_steps=3, disable_tqdm=True)
        prepared = prepare_run(settings, environ={})
        record = prepared.plan.to_dict()
        assert record.pop("data") == str(data)
        plans.append(record)
        recipe = build_recipe(prepared)
        try:
            step = first_steps(recipe, 1)[0]
        finally:
            recipe.cleanup()
        batches.append([[(p.input_ids, p.labels) for p in micro] for micro in step])
    assert plans[0] == plans[1]
    assert (plans[0]["train_rows"], plans[0]["eval_rows"]) == (43, 3)
    assert batches[0] == batches[1]
    assert sum(len(micro) for micro in batches[0]) > 1


def test_finetune_dry_run_on_tmx_shows_the_jsonl_rows(equivalent, tiny_models, tmp_path: Path) -> None:
    records = []
    for data in equivalent:
        result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data,
                        "--output-dir", tmp_path / "D", "--dry-run")  # fmt: skip
        assert result.exit_code == 0, (result.stdout, result.stderr)
        record = json.loads(result.stdout)
        assert record.pop("data") == str(data)
        records.append(record)
    assert records[0] == records[1]
    counts = ("train_rows", "eval_rows", "train_publications", "eval_publications")
    assert [records[0][k] for k in counts] == [43, 3, 4, 2]


def test_example_record_writes_what_csas_reads(equivalent: tuple[Path, Path], tmp_path: Path) -> None:
    examples = list(read_pairs(equivalent[0]))
    assert example_record(examples[2]) == {"source": "See note 1 here.", "target": "Voir la note 1 ici.",
                                           "source_lang": "en"}  # fmt: skip
    assert example_record(examples[0])["pub_number"] == "T-1"
    copy = write_jsonl(tmp_path / "copy.jsonl", [example_record(e) for e in examples])
    assert without_line(read_jsonl(copy)) == without_line(examples)


def test_read_pairs_dispatches_on_the_extension(tmp_path: Path) -> None:
    assert PAIR_FORMATS == (".jsonl", ".tmx", ".tsv")
    tmx_text = TMX_HEAD + '<tu><tuv xml:lang="en"><seg>Hi</seg></tuv><tuv xml:lang="fr"><seg>Salut</seg></tuv></tu>'
    (tmp_path / "a.TMX").write_text(tmx_text + "</body></tmx>", encoding="utf-8")
    (tmp_path / "a.Tsv").write_text("source\ttarget\tsource_lang\nHi\tSalut\ten\n", encoding="utf-8")
    write_jsonl(tmp_path / "a.json", [{"source": "Hi", "target": "Salut", "source_lang": "en"}])
    want = [Example("Hi", "Salut", "en", "fr", None, 0)]
    for name in ("a.TMX", "a.Tsv", "a.json"):
        assert without_line(read_pairs(tmp_path / name)) == want, name
    # Anything but .tmx and .tsv is JSON Lines: a TMX file named .xml is refused as JSON.
    (tmp_path / "a.xml").write_text(tmx_text, encoding="utf-8")
    assert refused(read_pairs, tmp_path / "a.xml", 1).startswith("invalid JSON at column 1")


# --- TMX details ----------------------------------------------------------------------------------------------


def unit(en: str = "Hi", fr: str = "Salut", attrs: str = "") -> str:
    return f'<tu{attrs}><tuv xml:lang="en"><seg>{en}</seg></tuv><tuv xml:lang="fr"><seg>{fr}</seg></tuv></tu>\n'


def write_tmx(path: Path, body: str, header: str = '<header srclang="en"/>', encoding: str = "utf-8",
              declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> Path:  # fmt: skip
    path.write_bytes((declaration + f"<tmx version=\"1.4\">\n{header}\n<body>\n{body}</body>\n</tmx>\n")
                     .encode(encoding))  # fmt: skip
    return path


def test_header_all_and_tmx_1_1_lang(tmp_path: Path) -> None:
    body = ('<tu><tuv lang="FR"><seg>Non</seg></tuv><tuv lang="En"><seg>No</seg></tuv></tu>\n'
            + unit("Hello", "Bonjour", ' srclang="fr"'))  # fmt: skip
    path = write_tmx(tmp_path / "a.tmx", body, '<header srclang="*ALL*"/>')
    assert list(read_tmx(path)) == [
        Example("No", "Non", "en", "fr", None, 5), Example("Non", "No", "fr", "en", None, 5),
        Example("Bonjour", "Hello", "fr", "en", None, 6),
    ]  # fmt: skip


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""),
                                           ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])  # fmt: skip
def test_encodings(tmp_path: Path, encoding: str, bom: bytes) -> None:
    declaration = f'<?xml version="1.0" encoding="{"UTF-16" if "16" in encoding else "UTF-8"}"?>\n'
    path = write_tmx(tmp_path / "a.tmx", unit("Summer", "Été « ici »"), declaration=declaration, encoding=encoding)
    if bom:
        path.write_bytes(bom + path.read_bytes())
    assert encoding != "utf-16" or path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")  # Python writes the BOM
    assert list(read_tmx(path)) == [Example("Summer", "Été « ici »", "en", "fr", None, 5)]


def test_latin1_declaration(tmp_path: Path) -> None:
    path = write_tmx(tmp_path / "a.tmx", unit("Summer", "Été"), encoding="latin-1",
                     declaration='<?xml version="1.0" encoding="ISO-8859-1"?>\n')  # fmt: skip
    assert [e.target for e in read_tmx(path)] == ["Été"]


def test_whitespace_normalisation_keeps_no_break_spaces() -> None:
    assert normalise_segment(" a \t\r\n b\u2028c\u2029d\u3000e\u2003f\u0085g ") == "a b c d e f g"
    assert normalise_segment("10\u202f000\u00a0$ : x\u2007y") == "10\u202f000\u00a0$ : x\u2007y"
    assert normalise_segment("\u00a0a\u00a0") == "a"  # stripped at the ends, as read_jsonl strips


def test_rows_before_an_error_are_yielded_first(tmp_path: Path) -> None:
    second = '<tu><tuv xml:lang="en"><seg>a</seg>\n<seg>b</seg></tuv></tu>'
    path = write_tmx(tmp_path / "a.tmx", unit("One", "Un") + second)
    rows = read_tmx(path)
    assert next(rows) == Example("One", "Un", "en", "fr", None, 5)
    with pytest.raises(DataError, match=r":7: <tuv> has a second <seg>"):
        next(rows)


def test_a_srclang_in_a_third_language_gives_both_directions(tmp_path: Path) -> None:
    """The English and the French of a German-source unit are both translations: the pair serves both ways."""
    path = write_tmx(tmp_path / "a.tmx", unit("Two", "Deux", ' srclang="de-DE"'), '<header srclang="es"/>')
    assert [(e.source, e.source_lang) for e in read_tmx(path)] == [("Two", "en"), ("Deux", "fr")]
    path = write_tmx(tmp_path / "b.tmx", unit("Two", "Deux"), '<header srclang="ES-es"/>')
    assert len(list(read_tmx(path))) == 2


# --- malformed TMX: one line naming the file and line ---------------------------------------------------------

UNDEFINED_NBSP = ("undefined entity &nbsp; (csas never reads the DTD; write the character itself or a character "
                  "reference such as &#160;)")
BAD_TMX = {
    "unclosed element": (f'<tmx>\n<header srclang="en"/>\n<body>\n{unit()}', 5,
                         "not well-formed TMX (no element found)"),
    "mismatched tag": ('<tmx><header srclang="en"/><body>\n<tu><tuv xml:lang="en"><seg>Hi</tuv></tu>\n</body></tmx>',
                       2, "not well-formed TMX (mismatched tag)"),
    "junk after the root": (f'<tmx><header srclang="en"/><body>{unit()}</body></tmx>\n<tmx/>\n', 3,
                            "not well-formed TMX (junk after document element)"),
    "not XML": ("source\ttarget\nHi\tSalut\n", 1, "not well-formed TMX (syntax error)"),
    "empty file": ("", 1, "not well-formed TMX (no element found)"),
    "control character": (f'<tmx><header srclang="en"/><body>\n{unit("a&#1;b")}</body></tmx>', 2,
                          "not well-formed TMX (reference to invalid character number)"),
    "root not tmx": ('<?xml version="1.0"?>\n<html><body/></html>', 2,
                     "the root element is <html>, expected <tmx> (not a TMX file)"),
    "tu outside body": (f'<tmx><header srclang="en"/>\n{unit()}</tmx>', 2,
                        "<tu> inside <tmx>; translation units belong in <body>"),
    "no srclang": (f"<tmx><header/><body>\n{unit()}</body></tmx>", 2,
                   "<tu> has no srclang and the <header> gives none"),
    "tuv without lang": ('<tmx><header srclang="en"/><body><tu>\n<tuv><seg>Hi</seg></tuv></tu></body></tmx>', 2,
                         "<tuv> has no xml:lang attribute"),
    "tuv without seg": ('<tmx><header srclang="en"/><body><tu>\n<tuv xml:lang="en">\n</tuv></tu></body></tmx>', 2,
                        "<tuv> has no <seg>"),
    "two segs": (('<tmx><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>a</seg>\n<seg>b</seg></tuv></tu>'
                  '</body></tmx>'), 2, "<tuv> has a second <seg>; expected one"),
    "undefined entity": ((f'<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n<tmx><header srclang="en"/><body>\n'
                          f'{unit("a&nbsp;b")}</body></tmx>'), 3, UNDEFINED_NBSP),
    "undefined entity, no DTD": (f'<tmx><header srclang="en"/><body>\n{unit("a&nbsp;b")}</body></tmx>', 2,
                                 "not well-formed TMX (undefined entity)"),
    "entity declaration": ('<!DOCTYPE tmx [\n<!ENTITY co "Company">\n]>\n<tmx/>', 2,
                           'declares an entity ("co"); csas refuses entity declarations in TMX and expands none'),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_TMX)
def test_malformed_tmx_is_one_line(tmp_path: Path, case: str) -> None:
    text, line, what = BAD_TMX[case]
    path = tmp_path / "bad.tmx"
    path.write_text(text, encoding="utf-8")
    assert refused(read_tmx, path, line) == what


def test_a_file_without_units(tmp_path: Path) -> None:
    path = write_tmx(tmp_path / "a.tmx", "")
    assert refused(read_tmx, path) == "no <tu> translation units"
    assert refused(read_pairs, path) == "no <tu> translation units"


def test_file_errors_as_read_jsonl_gives(tmp_path: Path) -> None:
    assert refused(read_tmx, tmp_path / "missing.tmx") == "file not found"
    assert refused(read_pairs, tmp_path / "missing.tmx") == "file not found"
    assert refused(read_jsonl, tmp_path / "missing.jsonl") == "file not found"
    (tmp_path / "d.tmx").mkdir()
    assert refused(read_tmx, tmp_path / "d.tmx") == "is a directory, expected a TMX file"
    assert refused(read_jsonl, tmp_path / "d.tmx") == "is a directory, expected a JSON Lines file"


def test_a_missing_file_fails_through_load_examples(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.tmx: file not found$"):
        load_examples(tmp_path / "missing.tmx", ["en"])


# --- hostile TMX: no DTD read, no entity expanded, nothing outside the file opened ----------------------------


@pytest.fixture
def marker_files(tmp_path: Path) -> dict[str, Path]:
    """Files a hostile TMX points at, each holding MARKER; a tmx14.dtd that would define &nbsp; as MARKER."""
    (tmp_path / "secret.txt").write_text(MARKER + "\n", encoding="utf-8")
    (tmp_path / "evil.dtd").write_text(f'<!ENTITY nbsp "{MARKER}">\n<!ENTITY % pe "{MARKER}">\n', encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tmx14.dtd").write_text(f'<!ENTITY nbsp "{MARKER}">\n', encoding="utf-8")
    return {"secret": tmp_path / "secret.txt", "dtd": tmp_path / "evil.dtd",
            "local_dtd": tmp_path / "sub" / "tmx14.dtd"}  # fmt: skip


def read_watched(path: Path, marker_files: dict[str, Path]) -> tuple[list[Example] | None, str | None]:
    """Read `path` fully, watching every file opened: only `path` itself may be, and MARKER appears nowhere."""
    rows = message = None
    with opened_files() as opened:
        try:
            rows = list(read_tmx(path))
        except DataError as exc:
            message = str(exc)
    assert [name for name in opened if Path(name).name != path.name] == []
    assert all(str(f) not in opened for f in marker_files.values())
    assert MARKER not in repr(rows) and MARKER not in (message or "")
    return rows, message


def test_the_open_watch_sees_an_unsafe_parser_read_the_secret(tmp_path: Path, marker_files) -> None:
    """The control for the tests below: a stdlib SAX parser told to resolve external entities opens the file an
    entity points at, and opened_files() sees it."""
    import xml.sax
    from xml.sax.handler import ContentHandler, feature_external_ges

    path = tmp_path / "xxe.xml"
    path.write_text(f'<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "{marker_files["secret"].as_uri()}">]>\n<tmx>&xxe;</tmx>',
                    encoding="utf-8")  # fmt: skip
    parser = xml.sax.make_parser(["xml.sax.expatreader"])
    parser.setFeature(feature_external_ges, True)
    parser.setContentHandler(ContentHandler())
    with opened_files() as opened:
        parser.parse(str(path))
    assert str(marker_files["secret"]) in opened


def test_doctype_with_a_system_dtd_is_accepted_and_not_read(tmp_path: Path, marker_files, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no tmx14.dtd here
    body = unit("Hi", "Salut")
    for system_id in ("tmx14.dtd", str(marker_files["dtd"]), marker_files["dtd"].as_uri()):
        path = tmp_path / "sub" / "ok.tmx"  # next to a tmx14.dtd holding MARKER
        write_tmx(path, body, declaration=f'<?xml version="1.0"?>\n<!DOCTYPE tmx SYSTEM "{system_id}">\n')
        rows, message = read_watched(path, marker_files)
        assert message is None and rows == [Example("Hi", "Salut", "en", "fr", None, 6)], system_id
        # Were the DTD read, &nbsp; would be MARKER; it is an undefined entity instead.
        write_tmx(path, unit("a&nbsp;b"), declaration=f'<!DOCTYPE tmx SYSTEM "{system_id}">\n')
        rows, message = read_watched(path, marker_files)
        assert message == f"{path}:5: {UNDEFINED_NBSP}"
    public = '<!DOCTYPE tmx PUBLIC "-//LISA OSCAR:1998//DTD for Translation Memory eXchange//EN" "tmx14.dtd">\n'
    write_tmx(path, body, declaration=public)
    assert read_watched(path, marker_files)[0] == [Example("Hi", "Salut", "en", "fr", None, 5)]


def test_billion_laughs_fails_fast(tmp_path: Path, marker_files) -> None:
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE tmx [", '<!ENTITY lol "lol">']
    lines += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(2, 10)]  # 10**8 "lol"s once expanded
    lines += ["]>", '<tmx><header srclang="en"/><body>', unit("&lol9;"), "</body></tmx>"]
    path = tmp_path / "lol.tmx"
    path.write_text("\n".join(lines), encoding="utf-8")
    start = time.perf_counter()
    rows, message = read_watched(path, marker_files)
    assert time.perf_counter() - start < 1.0
    assert message == f'{path}:3: declares an entity ("lol"); csas refuses entity declarations in TMX and expands none'
    assert rows is None


@pytest.mark.parametrize("target", ["file:///etc/passwd", "secret", "secret-uri"])
def test_external_entities_are_refused_unread(tmp_path: Path, marker_files, target: str) -> None:
    system_id = {"secret": str(marker_files["secret"]), "secret-uri": marker_files["secret"].as_uri()}.get(target,
                                                                                                         target)
    path = tmp_path / "xxe.tmx"
    path.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE tmx [\n\n<!ENTITY xxe SYSTEM "{system_id}">\n]>\n'
                    f'<tmx><header srclang="en"/><body>\n{unit("&xxe;")}</body></tmx>', encoding="utf-8")  # fmt: skip
    message = read_watched(path, marker_files)[1]
    assert message == (f'{path}:4: declares an external entity ("xxe"); csas refuses entity declarations in TMX and '
                       f"expands none")  # fmt: skip
    assert "root:" not in message


def test_external_parameter_entity_is_refused_unread(tmp_path: Path, marker_files) -> None:
    path = tmp_path / "pe.tmx"
    path.write_text(f'<!DOCTYPE tmx [\n<!ENTITY % ext SYSTEM "{marker_files["dtd"]}">\n%ext;\n]>\n'
                    f'<tmx><header srclang="en"/><body>\n{unit("&nbsp;")}</body></tmx>', encoding="utf-8")  # fmt: skip
    message = read_watched(path, marker_files)[1]
    assert message == (f'{path}:2: declares an external entity ("ext"); csas refuses entity declarations in TMX and '
                       f"expands none")  # fmt: skip


# --- streaming ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tmx_streams_a_large_memory(tmp_path: Path, monkeypatch) -> None:
    """The first row of a 48 MB memory comes after one chunk, in a small fraction of the file's size in memory;
    the file's end is broken, which a reader of the whole file would report first."""
    block = unit("The fishery opened on August 8 and closed once the quota was reached. " * 4,
                 "La pêche s'est ouverte le 8 août et s'est terminée une fois le quota atteint. " * 4)
    count = 48_000_000 // len(block.encode("utf-8"))
    path = tmp_path / "big.tmx"
    path.write_bytes((f'<tmx><header srclang="en"/><body>\n{block * count}<tu><broken').encode())
    size = path.stat().st_size
    assert size > 45_000_000
    handles = []
    real_open = pathlib.Path.open

    def recording_open(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        handles.append(handle)
        return handle

    monkeypatch.setattr(pathlib.Path, "open", recording_open)
    tracemalloc.start()
    try:
        rows = read_tmx(path)
        first = next(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first.source.startswith("The fishery opened") and first.line == 2
    assert len(handles) == 1 and handles[0].tell() == tmx.CHUNK_BYTES
    assert peak < 12 * tmx.CHUNK_BYTES < size / 3
    rows.close()
    assert handles[0].closed


# --- TSV ------------------------------------------------------------------------------------------------------


def test_tsv_reads_as_the_equivalent_jsonl(tmp_path: Path) -> None:
    text = ("Pub_Number\t SOURCE \ttarget\tnotes\tsource_lang\r\n"
            "P1\tHello  \t Bonjour\tn/a\t EN \r\n"
            "\r\n"
            "\tSalut « ami »\tHi \"friend\"\t\tFr\r\n"
            "P2\t10\u202f000 $\t$10,000\tx\ten\n"
            "  \n"
            "P3\tEmpty target\t\t\ten")  # fmt: skip
    path = tmp_path / "a.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    jsonl = write_jsonl(tmp_path / "a.jsonl", [
        {"source": "Hello", "target": "Bonjour", "source_lang": "en", "pub_number": "P1"},
        {"source": "Salut « ami »", "target": 'Hi "friend"', "source_lang": "fr"},
        {"source": "10\u202f000 $", "target": "$10,000", "source_lang": "en", "pub_number": "P2"},
        {"source": "Empty target", "target": "", "source_lang": "en", "pub_number": "P3"},
    ])  # fmt: skip
    got = list(read_pairs(path))
    assert without_line(got) == without_line(read_jsonl(jsonl))
    assert [e.line for e in got] == [2, 4, 5, 7]
    loaded = [load_examples(p, ["en", "fr"]) for p in (path, jsonl)]
    assert [(d.rows_read, d.rows_empty, without_line(d.examples)) for d in loaded] == [
        (4, 1, without_line(got[:3]))] * 2  # fmt: skip


def test_tsv_without_pub_number_column(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text("source_lang\ttarget\tsource\nfr\tHi\tSalut\n", encoding="utf-8")
    assert list(read_tsv(path)) == [Example("Salut", "Hi", "fr", "en", None, 2)]


HEADER = "source\ttarget\tsource_lang\tpub_number\n"
NO_QUOTING = (" (a field cannot hold a tab or a line break: a spreadsheet cell with a line break splits its "
              "row)")
EXPECTED = "(expected source, target, source_lang[, pub_number]; or an en and an fr column)"
EMPTY = ("is empty; expected a TSV header row naming source, target, source_lang[, pub_number] (or en, fr), then one "
         "pair per line")
BAD_TSV = {
    "too few fields": (HEADER + "Hi\tSalut\ten\tP1\n\nHi\tSalut\n", 4,
                       "has 2 tab-separated fields, the header has 4" + NO_QUOTING),
    "too many fields": (HEADER + "Hi\tSal\tut\ten\tP1\n", 2,
                        "has 5 tab-separated fields, the header has 4" + NO_QUOTING),
    "missing column": ("source\tcible\tsource_lang\nHi\tSalut\ten\n", 1,
                       f"header lacks column 'target' {EXPECTED}"),
    "missing column after blank lines": ("\n\nsource\ttarget\n", 3,
                                         f"header lacks column 'source_lang' {EXPECTED}"),
    "column twice": ("source\ttarget\tSource\tsource_lang\n", 1,
                     "header names column 'source' twice (expected source, target, source_lang[, pub_number])"),
    "one language": ("en\tcible\nHi\tSalut\n", 1, f"header lacks column 'source' {EXPECTED}"),
    "bad source_lang": (HEADER + "Hi\tHallo\tde-DE\t\n", 2,
                        "source_lang \"de-DE\" is not allowed; expected 'en' or 'fr' (or a regional code such as "
                        "en-CA, fr-CA)"),
    "invalid UTF-8": (HEADER.encode() + b"Caf\xe9\tCafe\tfr\t\n", 2,
                      "invalid UTF-8 at byte 4 of the line (csas reads UTF-8, or UTF-16 with a byte order mark)"),
    "empty file": ("", None, EMPTY),
    "blank lines only": ("\n \n\t\n", None, EMPTY),
    "header only": (HEADER + "\n", None, "has a header row but no data lines"),
}  # fmt: skip


def test_tsv_as_people_write_it_quotes_and_language_columns(tmp_path: Path) -> None:
    """Quotes are text, except the quoting a spreadsheet adds to a field holding a quote; a header naming English and
    French gives English-to-French rows (FLORES's line 100 starts and ends with a quote)."""
    path = tmp_path / "a.tsv"
    path.write_text(HEADER + '"Le ""stock"" est sain."\tThe "stock" is healthy.\tfr\t\n'
                    + '"We now have mice," he added, "that are fine"\t« Nous avons des souris », a-t-il ajouté\ten\tP\n'
                    + '"Yes."\t"Oui."\ten\t\n', encoding="utf-8")  # fmt: skip
    assert [(r.source, r.target) for r in read_tsv(path)] == [
        ('Le "stock" est sain.', 'The "stock" is healthy.'),
        ('"We now have mice," he added, "that are fine"', "« Nous avons des souris », a-t-il ajouté"),
        ('"Yes."', '"Oui."')]  # fmt: skip
    path.write_text("English\tFrançais\tnote\tpub_number\nThe stock grew.\tLe stock a augmenté.\tx\tP1\n",
                    encoding="utf-8")  # fmt: skip
    assert list(read_tsv(path)) == [Example("The stock grew.", "Le stock a augmenté.", "en", "fr", "P1", 2)]
    path.write_text("fr\ten\nLe stock.\tThe stock.\n", encoding="utf-8")
    assert list(read_tsv(path)) == [Example("The stock.", "Le stock.", "en", "fr", None, 2)]


def test_tsv_in_utf16_and_regional_language_codes(tmp_path):
    """A spreadsheet's "Unicode Text" export: UTF-16 with its byte order mark, CRLF line ends; quotes inside a field
    that is not itself quoted are text."""
    text = (HEADER.rstrip("\n") + "\r\n" + 'The "stock" grew.\tLe « stock » a augmenté.\ten-CA\t2020/001\r\n'
            + "Bonjour\tHello\tFR_fr\t\r\n")  # fmt: skip
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
        path = tmp_path / f"{encoding}.tsv"
        bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
        path.write_bytes(bom + text.encode(encoding))
        rows = list(read_tsv(path))
        assert [(r.source, r.target, r.source_lang, r.pub_number, r.line) for r in rows] == [
            ('The "stock" grew.', "Le « stock » a augmenté.", "en", "2020/001", 2),
            ("Bonjour", "Hello", "fr", None, 3),
        ], encoding
    jsonl = tmp_path / "regional.jsonl"
    jsonl.write_text('{"source": "a", "target": "b", "source_lang": "EN-ca"}\n', encoding="utf-8")
    assert [r.source_lang for r in read_pairs(jsonl)] == ["en"]


@pytest.mark.parametrize("case", BAD_TSV)
def test_bad_tsv_is_one_line(tmp_path: Path, case: str) -> None:
    content, line, what = BAD_TSV[case]
    path = tmp_path / "bad.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    assert refused(read_tsv, path, line) == what


def test_tsv_file_errors(tmp_path: Path) -> None:
    assert refused(read_tsv, tmp_path / "missing.tsv") == "file not found"
    (tmp_path / "d.tsv").mkdir()
    assert refused(read_pairs, tmp_path / "d.tsv") == "is a directory, expected a TSV file"
