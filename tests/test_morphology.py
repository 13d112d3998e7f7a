"""Track D's pieces: the Turkish feature mapping, word pooling, and morpheme-boundary F1."""

from __future__ import annotations

import math

import pytest
import torch

from qfair.analysis.morphology import boundary_score, internal_boundaries, pool_words
from qfair.treebank.features import TWT_TO_UD, FeatureMappingError, twt_to_ud

# --- Turkish Web Treebank features -> UD ---------------------------------------------------------

UD_NAMES = {"Number", "Person", "Number[psor]", "Person[psor]", "Case", "Polarity", "Tense", "Aspect",
            "Mood", "Evident", "Voice", "NumType"}


def test_every_mapped_feature_is_a_ud_feature() -> None:
    assert {name for mapped in TWT_TO_UD.values() for name, _ in mapped} <= UD_NAMES


@pytest.mark.parametrize(("feats", "expected"), [
    ((("PersonNumber", "A3pl"), ("Possessive", "Pnon"), ("Case", "Gen"), ("Proper", "False")),
     {"Number": "Plur", "Person": "3", "Case": "Gen"}),
    ((("PersonNumber", "A3sg"), ("Possessive", "P1pl"), ("Case", "Bare")),
     {"Number": "Sing", "Person": "3", "Number[psor]": "Plur", "Person[psor]": "1", "Case": "Nom"}),
    # a nominal predicate: the verbal agreement (1st singular) is the word's Person/Number
    ((("PersonNumber", "A3sg"), ("Case", "Loc"), ("Copula", "PresCop"), ("PersonNumber", "V1sg")),
     {"Number": "Sing", "Person": "1", "Case": "Loc"}),
    ((("Polarity", "Neg"), ("TenseAspectMood", "Nar"), ("PersonNumber", "V2pl")),
     {"Polarity": "Neg", "Evident": "Nfh", "Tense": "Past", "Number": "Plur", "Person": "2"}),
    ((("Derivation", "Pass"), ("Derivation", "Make")), {"Voice": "Pass"}),
    ((), {}),
])
def test_turkish_features_map_to_ud(feats, expected) -> None:
    assert twt_to_ud(feats) == expected


def test_an_unknown_feature_is_named() -> None:
    with pytest.raises(FeatureMappingError, match=r"web\.conllu:12: Turkish treebank feature Case=Voc"):
        twt_to_ud((("Case", "Voc"),), "web.conllu:12")


# --- word pooling --------------------------------------------------------------------------------

STATES = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 9.0]])
WORDS = [[1, 2], [3, 4, 5]]  # after a special token: "ab" in two pieces and "cde" in three


@pytest.mark.parametrize(("pooling", "expected"), [
    ("first", [[1.0, 2.0], [5.0, 6.0]]),
    ("last", [[3.0, 4.0], [9.0, 9.0]]),
    ("mean", [[2.0, 3.0], [7.0, 23.0 / 3.0]]),
])
def test_pool_words_by_hand(pooling, expected) -> None:
    torch.testing.assert_close(pool_words(STATES, WORDS, pooling), torch.tensor(expected))


def test_a_token_spanning_two_words_serves_both() -> None:
    pooled = pool_words(STATES, [[1, 2], [2]], "last")
    torch.testing.assert_close(pooled, torch.tensor([[3.0, 4.0], [3.0, 4.0]]))


@pytest.mark.parametrize(("words", "message"), [
    ([[1, 2], []], "no token"),
    ([[2, 1]], "not ascending"),
    ([[1, 6]], "not ascending positions of the 6 states"),
])
def test_pool_words_refuses_bad_alignments(words, message) -> None:
    with pytest.raises(ValueError, match=message):
        pool_words(STATES, words, "mean")


# --- morpheme-boundary F1 (D-003) ----------------------------------------------------------------


def test_internal_boundaries() -> None:
    assert internal_boundaries(["ev", "ler", "de"]) == {2, 5}
    assert internal_boundaries(["evlerde"]) == set()


def test_boundary_score_by_hand() -> None:
    score = boundary_score([
        (["ev", "ler", "de"], ["evl", "er", "de"]),  # gold {2, 5}, predicted {3, 5}: 1 hit
        (["ב", "בית"], ["בבית"]),                    # gold {1}, predicted none
        (["kitap"], ["ki", "tap"]),                   # gold none, predicted {2}
    ])
    assert (score.true_positive, score.predicted, score.gold) == (1, 3, 3)
    assert score.precision == pytest.approx(1 / 3) and score.recall == pytest.approx(1 / 3)
    assert score.f1 == pytest.approx(1 / 3)
    perfect = boundary_score([(["ev", "ler"], ["ev", "ler"])])
    assert perfect.f1 == 1.0


def test_boundary_score_with_nothing_to_count_is_nan_and_spelling_is_checked() -> None:
    empty = boundary_score([(["ev"], ["ev"])])
    assert math.isnan(empty.precision) and math.isnan(empty.recall) and math.isnan(empty.f1)
    with pytest.raises(ValueError, match="spell different words"):
        boundary_score([(["ev", "ler"], ["ev", "lar"])])
