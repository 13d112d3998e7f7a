"""Gold morpheme segmentations from treebank tokens (qfair.treebank.segments), on hand-made CoNLL-U."""

from __future__ import annotations

import pytest

from qfair.analysis.morphology import boundary_score
from qfair.treebank.conllu import parse_conllu
from qfair.treebank.segments import (
    Segmented,
    inflectional_group_segmentations,
    multiword_segmentations,
)


def _row(*cells: str) -> str:
    return "\t".join(cells)


HEBREW = "\n".join([
    "# sent_id = he-1",
    _row("1-2", "והבית", "_", "_", "_", "_", "_", "_", "_", "_"),
    _row("1", "ו", "ו", "CCONJ", "_", "_", "3", "cc", "_", "_"),
    _row("2", "הבית", "בית", "NOUN", "_", "_", "0", "root", "_", "_"),
    _row("3-5", "בבית", "_", "_", "_", "_", "_", "_", "_", "SpaceAfter=No"),  # article dropped in writing
    _row("3", "ב", "ב", "ADP", "_", "_", "5", "case", "_", "_"),
    _row("4", "ה", "ה", "DET", "_", "_", "5", "det", "_", "_"),
    _row("5", "בית", "בית", "NOUN", "_", "_", "2", "nmod", "_", "_"),
    _row("6", ".", ".", "PUNCT", "_", "_", "2", "punct", "_", "_"),
    "", "",
])

TURKISH = "\n".join([
    "# sent_id = tr-1",
    _row("1", "Açık", "açık", "NOUN", "NN", "_", "2", "ig", "_", "SpaceAfter=No"),
    _row("2", "la", "_", "VERB", "VB", "_", "3", "ig", "_", "SpaceAfter=No"),
    _row("3", "yan", "_", "ADJ", "VJ", "_", "4", "rcmod", "_", "_"),
    _row("4", "imkan", "imkan", "NOUN", "NN", "_", "5", "ig", "_", "SpaceAfter=No"),
    _row("5", "sız", "_", "VERB", "NOMP", "_", "0", "root", "_", "SpaceAfter=No"),
    _row("6", ".", ".", "PUNCT", ".", "_", "5", "p", "_", "_"),
    "", "",
])


def test_multiword_tokens_give_their_words_and_unspelled_tokens_are_counted() -> None:
    result = multiword_segmentations(parse_conllu(HEBREW))
    assert result.words == (Segmented("והבית", ("ו", "הבית")),)
    assert result.unaligned == 1  # ב+ה+בית does not spell בבית; the full stop is left out


def test_inflectional_groups_join_into_words_and_stop_at_punctuation() -> None:
    result = inflectional_group_segmentations(parse_conllu(TURKISH))
    assert result.words == (Segmented("Açıklayan", ("Açık", "la", "yan")),
                            Segmented("imkansız", ("imkan", "sız")))


def test_gold_boundaries_score_a_tokenizer_by_hand() -> None:
    words = inflectional_group_segmentations(parse_conllu(TURKISH)).words
    pieces = {"Açıklayan": ["Açık", "lay", "an"], "imkansız": ["imkansız"]}
    score = boundary_score([(w.morphemes, pieces[w.surface]) for w in words])
    # gold cuts {4, 6} and {5}; predicted {4, 7}: one hit of two predicted and three gold
    assert (score.true_positive, score.predicted, score.gold) == (1, 2, 3)
    assert score.f1 == pytest.approx(2 * 1 / (2 + 3))


def test_a_segmentation_must_spell_its_word() -> None:
    with pytest.raises(ValueError, match="do not spell"):
        Segmented("abc", ("a", "bd"))
