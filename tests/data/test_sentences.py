"""The sentences of a paragraph (csas_cli.data.sentences) and `csas translate` giving a model one sentence at a time."""

from __future__ import annotations

import pytest
from helpers import invoke

from csas_cli.data.sentences import join, split

CASES = [
    ("en", "The stock declined by 2.5 per cent in 2023. Fig. 3 shows the trend, e.g. in the Gulf. Smith et al. found "
     "it. Mr. Smith agreed, i.e. in part. It will recover.",
     ["The stock declined by 2.5 per cent in 2023.", "Fig. 3 shows the trend, e.g. in the Gulf.",
      "Smith et al. found it.", "Mr. Smith agreed, i.e. in part.", "It will recover."]),
    ("fr", "Le stock a diminué de 2,5 % en 2023. La fig. 3 montre la tendance, p. ex. dans le golfe. M. Tremblay "
     "était d'accord. Voir St. John's, c.-à-d. le port.",
     ["Le stock a diminué de 2,5 % en 2023.", "La fig. 3 montre la tendance, p. ex. dans le golfe.",
      "M. Tremblay était d'accord.", "Voir St. John's, c.-à-d. le port."]),
    ("en", "One sentence only, with 3.14 in it.", ["One sentence only, with 3.14 in it."]),
]  # fmt: skip


@pytest.mark.parametrize("lang,line,sentences", CASES)
def test_a_line_splits_into_its_sentences_and_abbreviations_and_decimals_stay_whole(lang, line, sentences):
    pieces = split(line, lang)
    assert [p.text for p in pieces] == sentences
    assert "".join(p.before + p.text + p.after for p in pieces) == line  # nothing lost, nothing added


def test_join_keeps_the_sources_spacing():
    pieces = split("  First one.   Second one.  ", "en")
    assert [p.text for p in pieces] == ["First one.", "Second one."]
    assert join(pieces, ["Premier.", "Deuxième."]) == "  Premier.   Deuxième.  "
    assert [p.text for p in split("   ", "en")] == [""] and join(split("", "en"), []) == ""


def test_a_paragraph_of_five_sentences_gives_five_translated_sentences_on_one_line(tiny_models, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    from csas_cli.inference import generation

    given: list[list[str]] = []
    real = generation.translate_texts

    def spy(loaded, texts, *args, **kwargs):
        given.append(list(texts))
        return real(loaded, texts, *args, **kwargs)

    monkeypatch.setattr(generation, "translate_texts", spy)
    text = tmp_path / "report.txt"
    text.write_text(CASES[0][1] + "\n\nA second paragraph. It has two sentences.\n", encoding="utf-8")
    args = ["translate", text, "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"],
            "--num-beams", 1, "--max-new-tokens", 24]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert given[-1] == [*CASES[0][2], "A second paragraph.", "It has two sentences."]
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # one output line per input line, the blank kept
    assert lines[0].count(" ") >= 4 and "translating 7 sentences in 2 lines" in result.stderr
    whole = invoke(*args, "--no-split")
    assert whole.exit_code == 0 and given[-1] == [CASES[0][1], "A second paragraph. It has two sentences."]
    # The rows of a pairs file are segments already: translated whole, as evaluate translates them.
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"source": "Two sentences. In one row.", "target": "x", "source_lang": "en"}\n', encoding="utf-8")
    rows = invoke(*[pairs if a == text else a for a in args])
    assert rows.exit_code == 0 and given[-1] == ["Two sentences. In one row."]
