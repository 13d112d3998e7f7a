"""qfair.treebank.conllu: multiword tokens, empty nodes, repeated features, malformed files named."""

from __future__ import annotations

import pytest

from qfair.treebank.conllu import ConlluError, check_conllu, parse_conllu, read_conllu


def _line(*columns: str) -> str:
    return "\t".join(columns)


# HTB style: the surface token "בבית" is two words (the preposition and the noun); an empty node
# (2.1) carries only an enhanced dependency. Turkish style: two PersonNumber features, and a word
# split in two inflectional groups joined by SpaceAfter=No.
FIXTURE = "\n".join([
    "# sent_id = he-1",
    "# text = בבית גדול",
    _line("1-2", "בבית", "_", "_", "_", "_", "_", "_", "_", "_"),
    _line("1", "ב", "ב", "ADP", "_", "_", "2", "case", "_", "_"),
    _line("2", "הבית", "בית", "NOUN", "_", "Gender=Masc|Number=Sing", "0", "root", "_", "_"),
    _line("2.1", "_", "_", "_", "_", "_", "_", "_", "2:ref", "_"),
    _line("3", "גדול", "גדול", "ADJ", "_", "Gender=Masc|Number=Sing", "2", "amod", "_", "_"),
    "",
    "# sent_id = tr-1",
    "# text = imkansız.",
    _line("1", "imkan", "imkan", "NOUN", "NN", "PersonNumber=A3sg|Case=Bare", "2", "ig", "_",
          "SpaceAfter=No"),
    _line("2", "sız", "_", "VERB", "NOMP", "PersonNumber=A3sg|Copula=PresCop|PersonNumber=V3sg", "0", "root",
          "_", "SpaceAfter=No"),
    _line("3", ".", ".", "PUNCT", ".", "_", "2", "p", "_", "_"),
    "",
])


def test_multiword_tokens_cover_their_words_and_empty_nodes_are_dropped() -> None:
    hebrew, turkish = parse_conllu(FIXTURE)
    assert hebrew.sent_id == "he-1" and hebrew.text == "בבית גדול"
    assert [w.id for w in hebrew.words] == [1, 2, 3]
    assert [(t.form, t.word_ids) for t in hebrew.tokens] == [("בבית", (1, 2)), ("גדול", (3,))]
    assert [w.head for w in hebrew.words] == [2, 0, 2]
    assert hebrew.words[1].feats == (("Gender", "Masc"), ("Number", "Sing"))
    assert [t.space_after for t in turkish.tokens] == [False, False, True]


def test_repeated_feature_names_are_all_kept_in_order() -> None:
    turkish = parse_conllu(FIXTURE)[1]
    expected = (("PersonNumber", "A3sg"), ("Copula", "PresCop"), ("PersonNumber", "V3sg"))
    assert turkish.words[1].feats == expected
    assert turkish.words[2].feats == ()


def test_read_conllu_names_a_missing_file(tmp_path) -> None:
    (tmp_path / "a.conllu").write_text(FIXTURE, encoding="utf-8")
    assert len(read_conllu(tmp_path / "a.conllu")) == 2
    with pytest.raises(ConlluError, match=r"b\.conllu: CoNLL-U file not found"):
        read_conllu(tmp_path / "b.conllu")


def _adjective(word_id: str, head: str) -> str:
    return _line(word_id, "גדול", "גדול", "ADJ", "_", "_", head, "amod", "_", "_")


def _broken(line_number: int, replacement: str) -> str:
    lines = FIXTURE.split("\n")
    lines[line_number - 1] = replacement
    return "\n".join(lines)


@pytest.mark.parametrize(("line_number", "replacement", "message"), [
    (4, _line("1", "ב", "ב", "ADP", "_", "_", "2", "case", "_"), r"x\.conllu:4: 9 tab-separated columns"),
    (4, "1 ב ב ADP _ _ 2 case _ _", r"x\.conllu:4: 1 tab-separated columns"),
    (7, _adjective("3", "7"), r"x\.conllu:7: HEAD '7' of word 3"),
    (7, _adjective("3", "x"), r"x\.conllu:7: HEAD 'x'"),
    (7, _adjective("3", "3"), r"x\.conllu:7: word 3 is its own HEAD"),
    (7, _adjective("4", "2"), r"x\.conllu:7: word ID 4 where 3"),
    (3, _line("1-5", "בבית", "_", "_", "_", "_", "_", "_", "_", "_"), r"x\.conllu:3: multiword token 1-5"),
    (4, _line("a", "ב", "ב", "ADP", "_", "_", "2", "case", "_", "_"), r"x\.conllu:4: ID 'a'"),
])
def test_malformed_lines_stop_with_file_and_line(line_number, replacement, message) -> None:
    with pytest.raises(ConlluError, match=message):
        parse_conllu(_broken(line_number, replacement), "x.conllu")


def test_the_fixture_itself_passes_the_check() -> None:
    check_conllu(FIXTURE, "x.conllu")
