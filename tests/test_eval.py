"""Evaluation: bits per byte, the byte-unigram baseline, batching, and batched scoring."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfair.eval import (
    bits_per_byte,
    bits_per_byte_ci,
    encode_items,
    length_sorted_batches,
    score_corpus,
    score_items,
    score_items_one_by_one,
    summarize_languages,
    unigram_byte_nll,
    utf8_lengths,
)

# ------------------------------------------------------------------------ bits per byte


def test_utf8_lengths_multibyte() -> None:
    # h é l l o: 1+2+1+1+1; 日本: 3+3; ẹ̀ (e + dot below + grave, NFC "ẹ" + U+0300): 3+2; emoji: 4
    assert utf8_lengths(["héllo", "日本", "ẹ̀", "🙂", ""]).tolist() == [6, 6, 5, 4, 0]


def test_bits_per_byte_hand_computed() -> None:
    texts = ["héllo", "日本", "abc"]
    n_bytes = utf8_lengths(texts)  # 6 + 6 + 3 = 15 bytes
    nll = np.array([4.0, 6.5, 1.2])  # nats: 11.7 in total
    assert bits_per_byte(nll, n_bytes) == pytest.approx(11.7 / (math.log(2) * 15), rel=1e-12)
    assert bits_per_byte(nll, n_bytes) == pytest.approx(1.125302, rel=1e-6)
    # summed, not averaged per item: one 1-byte item with 10 nats does not dominate
    assert bits_per_byte(np.array([10.0, 0.0]), np.array([1, 999])) == pytest.approx(
        10 / (math.log(2) * 1000))


def test_bits_per_byte_of_uniform_byte_model_is_8() -> None:
    n_bytes = np.array([3, 5, 8])
    assert bits_per_byte(n_bytes * math.log(256), n_bytes) == pytest.approx(8.0)


def test_bits_per_byte_needs_bytes() -> None:
    with pytest.raises(ValueError, match="no bytes"):
        bits_per_byte(np.array([1.0]), np.array([0]))


# ------------------------------------------------------------------------ unigram baseline


def test_unigram_two_symbols() -> None:
    # add-one over 256 byte values: "a" and "b" seen once each -> counts 2, total 258
    nll = unigram_byte_nll(["ab"], ["a", "ab", "ba", "", "c"])
    p_seen, p_unseen = 2 / 258, 1 / 258
    expected = [-math.log(p_seen), -2 * math.log(p_seen), -2 * math.log(p_seen), 0.0,
                -math.log(p_unseen)]
    np.testing.assert_allclose(nll, expected, rtol=1e-12)


def test_unigram_counts_bytes_not_characters() -> None:
    # "é" is the two bytes C3 A9; trained on "éé": counts 3 and 3 of 260
    nll = unigram_byte_nll(["éé"], ["é", "e"])
    np.testing.assert_allclose(nll, [-2 * math.log(3 / 260), -math.log(1 / 260)], rtol=1e-12)


def test_unigram_without_training_text_is_8_bits_per_byte() -> None:
    texts = ["héllo", "日本"]
    nll = unigram_byte_nll([], texts)
    assert bits_per_byte(nll, utf8_lengths(texts)) == pytest.approx(8.0)


# -------------------------------------------------------------------------- batching


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), max_size=60), budget=st.integers(1, 1000))
def test_length_sorted_batches_invariants(lengths, budget) -> None:
    batches = length_sorted_batches(lengths, budget)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(batch for batch in batches)
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert width * len(batch) <= budget or len(batch) == 1
    # longest first: no item of a later batch is longer than any item of an earlier one
    for earlier, later in itertools.pairwise(batches):
        assert min(lengths[i] for i in earlier) >= max(lengths[i] for i in later)


def test_length_sorted_batches_example() -> None:
    lengths = [5, 1, 9, 3, 3, 20]
    assert length_sorted_batches(lengths, 20) == [[5], [2, 0], [3, 4, 1]]
    assert length_sorted_batches(lengths, 1) == [[5], [2], [0], [3], [4], [1]]
    assert length_sorted_batches([], 10) == []


# ------------------------------------------------------------------- scoring on a model


def _varied_texts(tiny_corpus) -> list[str]:
    """Items of very different lengths (1 token to ~150), several scripts."""
    test = tiny_corpus.splits["test"]
    texts = [text for loc in sorted(test) for text in list(test[loc].values())[:4]]
    long_item = " ".join(test["hi_IN"].values())[:400]
    return ["a", "日", *texts, long_item, "ok ok", " ".join(test["yo"].values())[:150]]


def test_encode_items_prepends_bos(tiny_tokenizer) -> None:
    items = encode_items(tiny_tokenizer, ["open the file", "日本"], max_tokens=100)
    bos = tiny_tokenizer.bos_token_id
    for ids, text in zip(items, ["open the file", "日本"], strict=True):
        assert ids[0] == bos and bos not in ids[1:]
        assert tiny_tokenizer.decode(ids[1:]) == text


def test_encode_items_rejects_overlong_item(tiny_tokenizer) -> None:
    long_text = "ẹ̀kọ́ 打开文件 " * 40
    with pytest.raises(ValueError, match=r"eval\.max_tokens") as info:
        encode_items(tiny_tokenizer, ["short", long_text], max_tokens=32)
    assert "item 1" in str(info.value)
    n = len(encode_items(tiny_tokenizer, [long_text], max_tokens=10_000)[0])
    encode_items(tiny_tokenizer, [long_text], max_tokens=n)  # exactly at the limit is fine
    with pytest.raises(ValueError, match=r"eval\.max_tokens"):
        encode_items(tiny_tokenizer, [long_text], max_tokens=n - 1)


def test_encode_items_rejects_empty_item(tiny_tokenizer) -> None:
    with pytest.raises(ValueError, match="no token to score"):
        encode_items(tiny_tokenizer, ["fine", ""], max_tokens=100)


def test_score_items_matches_manual_computation(tiny_model, tiny_tokenizer) -> None:
    text = "open the file ẹ̀kọ́ 打开"
    scores = score_items(tiny_model, tiny_tokenizer, [text])
    tokens = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [tiny_tokenizer.bos_token_id, *tokens]
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    manual = -sum(log_probs[t, ids[t + 1]].item() for t in range(len(ids) - 1))
    assert scores.nll[0] == pytest.approx(manual, rel=1e-5)
    assert scores.n_tokens.tolist() == [len(ids) - 1]
    assert scores.n_bytes.tolist() == [len(text.encode("utf-8"))]
    # a sanity bound: the scored model is not uniform, yet scores are of the right size
    assert 0.3 * math.log(len(tiny_tokenizer)) < manual / (len(ids) - 1) < 3 * math.log(
        len(tiny_tokenizer))


def test_batched_equals_one_by_one(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    texts = _varied_texts(tiny_corpus)
    lengths = [len(ids) for ids in encode_items(tiny_tokenizer, texts, 1024)]
    assert max(lengths) > 10 * min(lengths)
    budget = 300
    batches = length_sorted_batches(lengths, budget)
    assert any(len({lengths[i] for i in batch}) > 1 for batch in batches), "no padding exercised"
    batched = score_items(tiny_model, tiny_tokenizer, texts, batch_tokens=budget)
    single = score_items_one_by_one(tiny_model, tiny_tokenizer, texts)
    np.testing.assert_allclose(batched.nll, single.nll, rtol=1e-4)
    np.testing.assert_array_equal(batched.n_tokens, single.n_tokens)
    np.testing.assert_array_equal(batched.n_bytes, utf8_lengths(texts))
    assert np.all(batched.nll > 0)
    # one huge batch (everything padded to the longest item) gives the same scores too
    whole = score_items(tiny_model, tiny_tokenizer, texts, batch_tokens=10**6)
    np.testing.assert_allclose(whole.nll, single.nll, rtol=1e-4)


def test_padding_never_changes_a_score(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    short = "open the file"
    long_item = " ".join(tiny_corpus.splits["test"]["zh_Hans"].values())[:200]
    alone = score_items(tiny_model, tiny_tokenizer, [short]).nll[0]
    padded = score_items(tiny_model, tiny_tokenizer, [long_item, short, long_item[:50]],
                         batch_tokens=10**6)
    assert padded.nll[1] == pytest.approx(alone, rel=1e-5)
    # the order of the items in the input does not matter either
    shuffled = score_items(tiny_model, tiny_tokenizer, [short, long_item[:50], long_item],
                           batch_tokens=10**6)
    np.testing.assert_allclose(shuffled.nll[[2, 0, 1]], padded.nll, rtol=1e-5)


def test_score_items_depends_on_the_text(tiny_model, tiny_tokenizer) -> None:
    scores = score_items(tiny_model, tiny_tokenizer, ["open the file", "file the open"])
    assert scores.nll[0] != scores.nll[1]


def test_score_corpus_table(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    splits = {"dev": {loc: dict(list(items.items())[:3])
                      for loc, items in tiny_corpus.splits["dev"].items()}}
    frame = score_corpus(tiny_model, tiny_tokenizer, splits, 512, 1024, progress=False)
    assert list(frame.columns) == ["split", "language", "item_id", "nll", "n_tokens", "n_bytes"]
    assert len(frame) == 3 * len(splits["dev"])
    row = frame.iloc[4]
    text = splits["dev"][row["language"]][row["item_id"]]
    assert row["nll"] == pytest.approx(score_items(tiny_model, tiny_tokenizer, [text]).nll[0],
                                       rel=1e-5)


# ------------------------------------------------------------------------ bootstrap CIs


def _sample(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_bytes = rng.integers(20, 200, n)
    nll = n_bytes * rng.uniform(0.8, 1.6, n)
    return nll, n_bytes


@pytest.mark.parametrize("method", ["percentile", "basic", "BCa"])
def test_ci_contains_point_and_is_reproducible(method: str) -> None:
    nll, n_bytes = _sample(0)
    point = bits_per_byte(nll, n_bytes)
    low, high = bits_per_byte_ci(nll, n_bytes, 500, 0.95, method, seed=11)
    assert low < point < high
    assert high - low < 0.5 * point
    assert (low, high) == bits_per_byte_ci(nll, n_bytes, 500, 0.95, method, seed=11)
    assert (low, high) != bits_per_byte_ci(nll, n_bytes, 500, 0.95, method, seed=12)


def test_ci_resamples_nll_and_bytes_together() -> None:
    """Each item's NLL and bytes are resampled as a pair: at a constant 1.5 bits per byte in
    every item, every resample has exactly 1.5 bits per byte, so the interval collapses."""
    n_bytes = np.random.default_rng(0).integers(10, 300, 40)
    nll = 1.5 * math.log(2) * n_bytes
    low, high = bits_per_byte_ci(nll, n_bytes, 300, 0.95, "percentile", seed=1)
    assert low == pytest.approx(1.5, abs=1e-9) and high == pytest.approx(1.5, abs=1e-9)


def test_ci_widens_with_confidence() -> None:
    nll, n_bytes = _sample(1)
    low90, high90 = bits_per_byte_ci(nll, n_bytes, 1000, 0.90, "percentile", seed=3)
    low99, high99 = bits_per_byte_ci(nll, n_bytes, 1000, 0.99, "percentile", seed=3)
    assert low99 < low90 and high99 > high90


def test_ci_of_a_single_item_is_nan() -> None:
    low, high = bits_per_byte_ci(np.array([3.0]), np.array([4]), 100, 0.95, "percentile", 0)
    assert math.isnan(low) and math.isnan(high)


def test_summarize_languages() -> None:
    rows = []
    for lang, scale in (("en", 1.0), ("yo", 2.0)):
        for k, (n_bytes, nll) in enumerate([(10, 7.0), (20, 9.0), (30, 20.0)]):
            rows.append({"split": "test", "language": lang, "item_id": f"i{2 - k}",
                         "nll": nll * scale, "n_tokens": n_bytes // 2, "n_bytes": n_bytes})
    frame = pd.DataFrame(rows)
    summary = summarize_languages(frame, 200, 0.95, "percentile", seed=0)
    assert summary["language"].tolist() == ["en", "yo"]
    en, yo = summary.iloc[0], summary.iloc[1]
    assert en["items"] == 3 and en["bytes"] == 60 and en["tokens"] == 30
    assert en["bits_per_byte"] == pytest.approx(36.0 / (60 * math.log(2)))
    assert yo["bits_per_byte"] == pytest.approx(2 * en["bits_per_byte"])
    assert en["nats_per_item"] == pytest.approx(12.0)
    # paired resampling: the same items are drawn for both languages, so yo's CI is en's, doubled
    assert yo["bpb_ci_low"] == pytest.approx(2 * en["bpb_ci_low"])
    assert yo["bpb_ci_high"] == pytest.approx(2 * en["bpb_ci_high"])
