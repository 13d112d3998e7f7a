"""Track D (qfair.treebank: words, probes, boundaries, heads, run; qfair.corpus.treebanks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qfair.analysis.morphology import internal_boundaries
from qfair.corpus.pools import CorpusError
from qfair.corpus.treebanks import (
    TreebankSplit,
    allocate_train_only,
    join_treebanks,
    seeded_split_names,
    sentence_blocks,
)
from qfair.params import load_params
from qfair.treebank.boundaries import boundary_scores, offset_cuts, pieces_at, tiktoken_splitter
from qfair.treebank.conllu import parse_conllu
from qfair.treebank.probes import (
    edge_counts,
    fit_structural_probe,
    graph_distances,
    parsed_sentences,
    probe_predictions,
)
from qfair.treebank.words import encode_sentence, surface_sentences


def _row(*cells: str) -> str:
    return "\t".join(cells)


# "ובבית גדול ." : the multiword token ו+ב+בית (its words spell it), an adjective, a full stop.
HEBREW = "\n".join([
    "# sent_id = he-1",
    "# text = ובבית גדול.",
    _row("1-3", "ובבית", "_", "_", "_", "_", "_", "_", "_", "_"),
    _row("1", "ו", "ו", "CCONJ", "_", "_", "3", "cc", "_", "_"),
    _row("2", "ב", "ב", "ADP", "_", "_", "3", "case", "_", "_"),
    _row("3", "בית", "בית", "NOUN", "_", "Gender=Masc|Number=Sing", "0", "root", "_", "_"),
    _row("4", "גדול", "גדול", "ADJ", "_", "Gender=Masc|Number=Sing", "3", "amod", "_", "SpaceAfter=No"),
    _row("5", ".", ".", "PUNCT", "_", "_", "3", "punct", "_", "_"),
    "", "",
])

# "Açıklayan imkansız." : two inflectional groups + one, then two, then a full stop.
TURKISH = "\n".join([
    "# sent_id = tr-1",
    _row("1", "Açık", "açık", "NOUN", "NN", "PersonNumber=A3sg|Case=Bare", "2", "ig", "_", "SpaceAfter=No"),
    _row("2", "la", "_", "VERB", "VB", "Polarity=Neg", "3", "ig", "_", "SpaceAfter=No"),
    _row("3", "yan", "_", "ADJ", "VJ", "_", "5", "rcmod", "_", "_"),
    _row("4", "imkan", "imkan", "NOUN", "NN", "PersonNumber=A3pl|Case=Loc", "5", "ig", "_", "SpaceAfter=No"),
    _row("5", "sız", "_", "VERB", "NOMP", "PersonNumber=V1sg", "0", "root", "_", "SpaceAfter=No"),
    _row("6", ".", ".", "PUNCT", ".", "_", "5", "p", "_", "_"),
    "", "",
])


def test_surface_words_of_a_multiword_treebank() -> None:
    (sentence,) = surface_sentences(parse_conllu(HEBREW), "multiword")
    assert sentence.text == "ובבית גדול."
    forms = [(w.form, w.start, w.end, w.heads, w.morphemes) for w in sentence.words]
    assert forms == [("ובבית", 0, 5, (), ("ו", "ב", "בית")), ("גדול", 6, 10, (0,), ("גדול",)),
                     (".", 10, 11, (0,), None)]
    assert sentence.words[0].feats == ()  # a multiword token carries no single word's features
    assert dict(sentence.words[1].feats) == {"Gender": "Masc", "Number": "Sing"}


def test_surface_words_of_inflectional_groups_map_features_to_ud() -> None:
    (sentence,) = surface_sentences(parse_conllu(TURKISH), "inflectional_groups")
    assert sentence.text == "Açıklayan imkansız."
    assert [w.form for w in sentence.words] == ["Açıklayan", "imkansız", "."]
    assert [w.heads for w in sentence.words] == [(1,), (), (1,)]
    assert sentence.words[0].morphemes == ("Açık", "la", "yan")
    # a nominal predicate: the verbal agreement (V1sg) wins over the nominal (A3pl)
    assert dict(sentence.words[1].feats) == {"Case": "Loc", "Number": "Sing", "Person": "1"}
    assert dict(sentence.words[0].feats)["Polarity"] == "Neg"


class _FakeTokenizer:
    """Splits at spaces and keeps the space on the following token, like byte-level BPE."""

    bos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = True):
        offsets, start = [], 0
        for index in range(1, len(text) + 1):
            if index == len(text) or text[index] == " " or text[index] == ".":
                offsets.append((start, index))
                start = index
        return {"input_ids": list(range(1, len(offsets) + 1)), "offset_mapping": offsets}


def test_each_word_gets_the_tokens_overlapping_it() -> None:
    (sentence,) = surface_sentences(parse_conllu(HEBREW), "multiword")
    encoded = encode_sentence(_FakeTokenizer(), sentence)
    # BOS, "ובבית", " גדול" (the space is the token's first character), "."
    assert encoded.tokens_of_word == [[1], [2], [3]]


def test_boundary_cuts_and_scores_by_hand() -> None:
    assert pieces_at("imkansız", {5, 0, 8}) == ["imkan", "sız"]
    assert offset_cuts([(0, 4), (4, 7), (7, 10)], 0, 10) == {4, 7}
    words = [("Açıklayan", ("Açık", "la", "yan")), ("imkansız", ("imkan", "sız"))]
    split = {"Açıklayan": ["Açık", "lay", "an"], "imkansız": ["imkansız"]}.__getitem__
    score = boundary_scores(words, split)
    # gold {4, 6} and {5}; predicted {4, 7}: one match of two predicted and three gold
    assert (score["predicted_boundaries"], score["gold_boundaries"]) == (2, 3)
    assert score["precision"] == pytest.approx(0.5) and score["recall"] == pytest.approx(1 / 3)
    assert score["f1"] == pytest.approx(2 * 1 / 5)


class _FakeTiktoken:
    """Byte pieces: ' ', then two bytes at a time (splitting the two-byte Hebrew letters evenly)."""

    def encode_ordinary(self, text: str) -> list[bytes]:
        data = text.encode("utf-8")
        return [data[:1], *[data[i:i + 3] for i in range(1, len(data), 3)]]

    def decode_single_token_bytes(self, token: bytes) -> bytes:
        return token


def test_tiktoken_boundaries_inside_a_character_are_not_counted() -> None:
    # "בית" is 6 bytes; pieces of 3 bytes cut the middle letter: no character boundary at all
    assert tiktoken_splitter(_FakeTiktoken())("בית") == ["בית"]
    # ASCII: 3-byte pieces are 3-character pieces
    assert tiktoken_splitter(_FakeTiktoken())("abcdefg") == ["abc", "def", "g"]


def test_graph_distances_and_a_perfect_structural_reading() -> None:
    heads = [(1,), (), (1,), (2,)]  # 0 <- 1 -> 2 -> 3
    distances = graph_distances(heads)
    assert distances[0].tolist() == [0, 1, 2, 3] and distances[3].tolist() == [3, 2, 1, 0]
    # a contraction cycle (words 0 and 1 depend on each other) still has path lengths
    assert graph_distances([(1,), (0,), (1,)])[0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="do not connect"):
        graph_distances([(), ()])
    (sentence,) = surface_sentences(parse_conllu(TURKISH), "inflectional_groups")
    (parsed,) = parsed_sentences([sentence])
    assert parsed.edges == {(0, 1)}  # the full stop is left out
    # a probe whose squared distances are the tree's: states on a line, identity projection
    states = np.array([[0.0], [1.0], [5.0]])
    probe = np.array([[1.0, 0.0]])
    assert edge_counts(probe, states, [parsed]).tolist() == [[1, 1]]


def test_probes_are_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    labels = np.where(x[:, 0] > 0, "a", "b").astype(object)
    first = probe_predictions(x, labels, {"test": x}, 1.0, 3)["test"]
    assert (first == probe_predictions(x, labels, {"test": x}, 1.0, 3)["test"]).all()
    assert np.mean(first == labels) > 0.9
    (sentence,) = surface_sentences(parse_conllu(TURKISH), "inflectional_groups")
    parsed = parsed_sentences([sentence])
    states = rng.normal(size=(3, 6)).astype(np.float32)
    a = fit_structural_probe(states, parsed, 2, 3, 0.01, 8, seed=5)
    assert np.array_equal(a, fit_structural_probe(states, parsed, 2, 3, 0.01, 8, seed=5))


def test_treebank_splits_and_the_join_hold_dev_and_test_out() -> None:
    names = seeded_split_names(100, 0.1, 0.2, seed=4)
    assert names.count("dev") == 10 and names.count("test") == 20
    assert names == seeded_split_names(100, 0.1, 0.2, seed=4)
    blocks = sentence_blocks(HEBREW + TURKISH)
    assert len(blocks) == 2 and blocks[0].startswith("# sent_id = he-1")

    class Source:
        name, locale = "htb", "he"

        def splits(self):
            sentences = parse_conllu(HEBREW)
            held = TreebankSplit((), tuple(sentences))
            train = TreebankSplit((), (*sentences, *parse_conllu(TURKISH.replace("tr-1", "x"))))
            return {"train": train, "dev": held, "test": TreebankSplit((), ())}

    train = {"en": {"a": "hello"}}
    dropped: dict = {}
    train_only, held_out = join_treebanks({"htb": Source()}, train, dropped)
    assert "ובבית גדול." not in train_only["he"].values()  # the train copy of a dev sentence is dropped
    assert dropped["he"]["heldout_duplicate_htb"] == 1 and set(held_out["he"]) == {"dev", "test"}
    with pytest.raises(CorpusError, match="second treebank"):
        join_treebanks({"htb": Source(), "other": Source()}, {}, {})
    allocated, info = allocate_train_only({"he": {"1": "x" * 10, "2": "y" * 10}}, {"en": {"a": "z" * 40}},
                                          0.25, seed=1)
    assert len(allocated["he"]) == 1 and info["he"]["top_language"] == "en" and not info["he"]["capped"]


def test_internal_boundaries_are_character_offsets() -> None:
    assert internal_boundaries(("ו", "ב", "בית")) == {1, 2}


def test_track_d_params_are_checked() -> None:
    params = load_params("params.yaml")
    td = params.track_d
    assert td is not None and td.hypothesis_config in td.configs
    with pytest.raises(ValueError, match="is not one of configs"):
        type(td).model_validate({**td.model_dump(), "hypothesis_config": "rtn-w2-ch-sym"})
    with pytest.raises(ValueError, match="calibration-free"):
        type(td).model_validate({**td.model_dump(), "configs": ["gptq-w4-ch-uniform"]})


def test_cluster_bootstrap_recovers_a_known_difference() -> None:
    from qfair.treebank.run import cluster_bootstrap

    values = np.repeat(np.arange(40) % 2 * 0.2 + 0.1, 5)  # 40 sentences of 5 words, mean 0.2
    owner = np.repeat(np.arange(40), 5)

    def statistic(weights: np.ndarray) -> float:
        w = weights[owner]
        return float(w @ values / w.sum())

    result = cluster_bootstrap(statistic, 40, 200, 0.95, seed=2)
    assert result["value"] == pytest.approx(0.2)
    assert result["ci_low"] < 0.2 < result["ci_high"] and result["p_greater"] < 0.01


def _synthetic_treebank(language: str, count: int, seed: int) -> str:
    """Sentences of the two fixtures' shapes with varied words and feature values."""
    rng = np.random.default_rng(seed)
    blocks = []
    for index in range(count):
        if language == "he":
            nouns = [("בית", "Masc"), ("ילדה", "Fem"), ("ספר", "Masc"), ("עיר", "Fem")]
            noun, gender = nouns[rng.integers(4)]
            number = ["Sing", "Plur"][rng.integers(2)]
            adjective = {"Masc": "גדול", "Fem": "גדולה"}[gender] + ("ים" if number == "Plur" else "")
            blocks.append("\n".join([
                f"# sent_id = he-{index}",
                _row("1-3", "וב" + noun, "_", "_", "_", "_", "_", "_", "_", "_"),
                _row("1", "ו", "ו", "CCONJ", "_", "_", "3", "cc", "_", "_"),
                _row("2", "ב", "ב", "ADP", "_", "_", "3", "case", "_", "_"),
                _row("3", noun, noun, "NOUN", "_", f"Gender={gender}|Number={number}", "0", "root", "_", "_"),
                _row("4", adjective, adjective, "ADJ", "_", f"Gender={gender}|Number={number}", "3", "amod",
                     "_", "SpaceAfter=No"),
                _row("5", ".", ".", "PUNCT", "_", "_", "3", "punct", "_", "_")]))
        else:
            stem, case = [("ev", "Loc"), ("okul", "Dat"), ("kitap", "Acc"), ("yol", "Abl")][rng.integers(4)]
            suffix = {"Loc": "de", "Dat": "a", "Acc": "ı", "Abl": "dan"}[case]
            blocks.append("\n".join([
                f"# sent_id = tr-{index}",
                _row("1", "Açık", "açık", "NOUN", "NN", "PersonNumber=A3sg|Case=Bare", "2", "ig", "_",
                     "SpaceAfter=No"),
                _row("2", "la", "_", "VERB", "VB", "Polarity=Neg", "3", "ig", "_", "SpaceAfter=No"),
                _row("3", "yan", "_", "ADJ", "VJ", "_", "4", "rcmod", "_", "_"),
                _row("4", stem + suffix, stem, "NOUN", "NN",
                     f"PersonNumber=A3{['sg', 'pl'][index % 2]}|Case={case}", "0", "root", "_",
                     "SpaceAfter=No"),
                _row("5", ".", ".", "PUNCT", ".", "_", "4", "p", "_", "_")]))
    return "\n\n".join(blocks) + "\n\n"


@pytest.fixture(scope="module")
def treebank_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("treebank_corpus")
    for language in ("he", "tr"):
        for split, seed in (("dev", 1), ("test", 2)):
            path = folder / "treebank" / language / f"{split}.conllu"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_synthetic_treebank(language, 24, seed), encoding="utf-8")
    return folder


def _small_track_d():
    td = load_params("params.yaml").track_d
    return type(td).model_validate({**td.model_dump(), "configs": ["rtn-w4-ch-sym", "rtn-w2-ch-sym"],
                                    "hypothesis_config": "rtn-w2-ch-sym", "min_words": 10,
                                    "structural_epochs": 2, "bootstrap_resamples": 100, "head_fraction": 0.5})


def test_track_d_runs_end_to_end_and_repeats_exactly(tiny_model, tiny_tokenizer, treebank_corpus) -> None:
    import copy

    import torch

    from qfair.treebank.boundaries import fast_tokenizer_splitter
    from qfair.treebank.run import run_track_d, track_d_metrics

    td = _small_track_d()
    flags = {"outlier_heavy": pd.Series(True, index=pd.MultiIndex.from_tuples([(0, 0), (1, 1)])),
             "quantization_sensitive": pd.Series(True, index=pd.MultiIndex.from_tuples([(0, 1)]))}

    def run():
        model = copy.deepcopy(tiny_model)
        return run_track_d(model, tiny_tokenizer, treebank_corpus, td, [], {"qfair": fast_tokenizer_splitter(
            tiny_tokenizer)}, flags, 0.05, 0.95, torch.device("cpu"))

    first, second = run(), run()
    for name in ("features", "structural", "boundaries", "words", "head_drops", "heads", "ledger"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    ledger = first.ledger
    assert set(ledger["id"]) == {rule.id for rule in td.hypotheses}
    assert set(ledger.loc[ledger["estimate"] == "probe_accuracy_drop", "language"]) == {"he", "tr"}
    assert set(ledger["verdict"]) <= {"SUPPORTED", "REJECTED", "INCONCLUSIVE"}
    defined = ledger["p"].notna()
    assert (ledger.loc[defined, "p_holm"] >= ledger.loc[defined, "p"]).all()
    assert (ledger.loc[~defined, "verdict"] == "INCONCLUSIVE").all()
    features = first.features
    assert set(features["condition"]) == {"full_precision", "quantized", "transfer"}
    assert {"Gender", "Number", "Case"} <= set(features["feature"])
    assert len(first.heads) == 4 and first.heads["critical"].sum() == 2
    assert set(first.words["language"]) == {"he", "tr"}  # multi-morpheme words of both
    metrics = track_d_metrics(first, td)
    assert set(metrics["languages"]) == {"he", "tr"}


def test_a_profile_without_track_d_results_defines_every_key_as_absent() -> None:
    from pathlib import Path

    from qfair.report import track_d

    repo = Path(__file__).resolve().parents[1]
    data = track_d.load(repo / "results/track_d", repo / "metrics/track_d.json")
    assert data is not None
    params = load_params(repo / "params.yaml")
    assert track_d.expected_keys(params) == set(track_d.numbers(data))
    assert set(track_d.absent_numbers([params]).values()) == {"n/a"}
    from qfair.corpus.sources import SOURCES

    assert {name: SOURCES[name].locale for name in track_d.SOURCE_LOCALES} == track_d.SOURCE_LOCALES
