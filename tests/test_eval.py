"""Evaluation: bits per byte, the byte-unigram baseline, batching, and batched scoring."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfair.scoring.causal import (
    TokenItems,
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


def test_evaluate_summary_adds_the_unigram_script_and_resource_level(tiny_model, tiny_tokenizer,
                                                                     tiny_corpus) -> None:
    """qfair.scoring.summary: the evaluate stage's table, from scores to metrics."""
    from qfair.analysis.resource import from_manifest
    from qfair.scoring.summary import (
        add_unigram_nll,
        eval_metrics,
        language_summary,
        score_splits,
        unigram_split,
    )

    splits = {"test": {loc: dict(list(items.items())[:4])
                       for loc, items in tiny_corpus.splits["test"].items()}}
    items = score_splits(tiny_model, tiny_tokenizer, splits, masked=False, batch_tokens=512,
                         max_tokens=1024)
    assert unigram_split(tiny_corpus.splits["train"]) == "train"
    assert unigram_split({loc: {} for loc in tiny_corpus.splits["train"]}) == "dev"
    add_unigram_nll(items, splits, tiny_corpus.splits["train"])
    row = items.iloc[0]
    fitted = list(tiny_corpus.splits["train"][row["language"]].values())
    text = splits["test"][row["language"]][row["item_id"]]
    assert row["unigram_nll"] == unigram_byte_nll(fitted, [text])[0]
    languages = tiny_corpus.manifest["languages"]
    summary = language_summary(items, languages, from_manifest(languages), resamples=50,
                               confidence=0.9, method="percentile", seed=0)
    assert list(summary.columns[:4]) == ["split", "language", "script", "resource_level"]
    assert (summary["unigram_bits_per_byte"] > 0).all()
    metrics = eval_metrics(summary, hub=False, masked=False, fitted_on="train")
    assert metrics["test"]["languages"] == len(splits["test"]) and "scoring" not in metrics["test"]
    hub = eval_metrics(summary, hub=True, masked=False, fitted_on="dev")["test"]
    assert hub["scoring"] == "causal bits per byte" and hub["unigram_fitted_on"] == "dev"


# ------------------------------------------------ the fast path (GPU-ready) against the old loop


def _per_item_greedy_batches(lengths, batch_tokens):
    """length_sorted_batches as first written: one greedy step per item."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, current, width = [], [], 0
    for index in order:
        new_width = max(width, lengths[index])
        if current and new_width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, new_width = [], lengths[index]
        current.append(index)
        width = new_width
    if current:
        batches.append(current)
    return batches


def _per_item_loop_nll(model, tokenizer, texts, batch_tokens, max_tokens=1024) -> np.ndarray:
    """score_items as first written: padded batches filled item by item, CPU float32."""
    items = encode_items(tokenizer, texts, max_tokens)
    lengths = [len(ids) for ids in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll = np.zeros(len(texts))
    for batch in _per_item_greedy_batches(lengths, batch_tokens):
        width = max(lengths[i] for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            input_ids[row, : lengths[index]] = torch.tensor(items[index])
            mask[row, : lengths[index]] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        token_nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), input_ids[:, 1:], reduction="none") * mask[:, 1:]
        nll[batch] = token_nll.double().sum(dim=1).numpy()
    return nll


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 300), max_size=60), budget=st.integers(1, 1000))
def test_length_sorted_batches_equal_the_per_item_greedy(lengths, budget) -> None:
    assert length_sorted_batches(lengths, budget) == _per_item_greedy_batches(lengths, budget)


def test_cpu_float32_scores_are_bit_identical_to_the_per_item_loop(tiny_model, tiny_tokenizer,
                                                                    tiny_corpus) -> None:
    texts = _varied_texts(tiny_corpus)
    for budget in (1, 300, 10**6):
        fast = score_items(tiny_model, tiny_tokenizer, texts, batch_tokens=budget)
        np.testing.assert_array_equal(fast.nll, _per_item_loop_nll(tiny_model, tiny_tokenizer, texts, budget))


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=30), min_size=1, max_size=20),
       data=st.data())
def test_token_items_padded_batch_matches_a_row_by_row_build(items, data) -> None:
    tokens = TokenItems.from_lists(items)
    assert len(tokens) == len(items) and tokens.lengths.tolist() == [len(ids) for ids in items]
    batch = data.draw(st.lists(st.integers(0, len(items) - 1), min_size=1, max_size=8, unique=True))
    input_ids, mask = tokens.padded(batch, pad_id=-7)
    width = max(len(items[i]) for i in batch)
    assert input_ids.shape == mask.shape == (len(batch), width)
    assert input_ids.dtype == mask.dtype == np.int64
    for row, index in enumerate(batch):
        n = len(items[index])
        assert input_ids[row, :n].tolist() == items[index]
        assert input_ids[row, n:].tolist() == [-7] * (width - n)
        assert mask[row].tolist() == [1] * n + [0] * (width - n)


def test_both_nll_layouts_compute_the_log_softmax_nll() -> None:
    from qfair.scoring.causal import _nll_class_axis_second, _nll_last_axis

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 11, 5000, generator=generator) * 4
    targets = torch.randint(0, 5000, (3, 11), generator=generator)
    exact = -torch.log_softmax(logits.double(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # the last-axis form takes one more position (the whole logits) and ignores the last one
    extra = torch.cat([logits, torch.full((3, 1, 5000), float("nan"))], dim=1)
    for result in (_nll_class_axis_second(logits, targets), _nll_last_axis(extra, targets)):
        assert result.dtype == torch.float32 and result.shape == targets.shape
        torch.testing.assert_close(result.double(), exact, rtol=1e-5, atol=1e-5)
    # bf16 logits: the log-softmax itself still runs in float32 (on the bf16 values)
    half = extra.bfloat16()
    torch.testing.assert_close(_nll_last_axis(half, targets),
                               _nll_class_axis_second(half[:, :-1].float(), targets), rtol=1e-6, atol=1e-5)


def test_fused_nll_equals_the_log_softmax_nll() -> None:
    from qfair.scoring.causal import fused_token_nll_sums, token_nll_sums

    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 9, 3000, generator=generator) * 4
    input_ids = torch.randint(0, 3000, (4, 9), generator=generator)
    mask = (torch.arange(9) < torch.tensor([9, 5, 2, 7])[:, None]).long()
    for dtype in (torch.float32, torch.bfloat16):
        fused = fused_token_nll_sums(logits.to(dtype), input_ids, mask)
        assert fused.dtype == torch.float64 and fused.shape == (4,)
        torch.testing.assert_close(fused, token_nll_sums(logits.to(dtype), input_ids, mask),
                                   rtol=1e-6, atol=1e-5)
    # padding is never read: poisoning the masked positions' logits changes nothing
    poisoned = logits.clone()
    poisoned[1, 4:] = float("nan")
    assert torch.equal(fused_token_nll_sums(poisoned, input_ids, mask)[[0, 2, 3]],
                       fused_token_nll_sums(logits, input_ids, mask)[[0, 2, 3]])


def _compiled_matches_eager(model, tokenizer, texts: list[str]) -> None:
    lengths = [len(ids) for ids in encode_items(tokenizer, texts, 1024)]
    batches = length_sorted_batches(lengths, 300)
    assert min(lengths) == 2 and min(len(b) for b in batches) == 1  # the sizes compile would specialise on
    eager = score_items(model, tokenizer, texts, batch_tokens=300)
    compiled = score_items(model, tokenizer, texts, batch_tokens=300, compile=True)
    np.testing.assert_allclose(compiled.nll, eager.nll, rtol=1e-5)
    np.testing.assert_array_equal(compiled.n_tokens, eager.n_tokens)
    # the default path is untouched by a compiled call: still bit for bit the same
    np.testing.assert_array_equal(score_items(model, tokenizer, texts, batch_tokens=300).nll, eager.nll)


def test_compiled_scoring_matches_eager(tiny_model, tiny_tokenizer, tiny_corpus, monkeypatch) -> None:
    """The compiled path's logic (graph capture, padding to sizes >= 2/3, fused NLL), traced by
    dynamo and run by the cheap ``aot_eager`` backend; the inductor test below is opt-in."""
    import torch._dynamo

    import qfair.scoring.causal

    monkeypatch.setattr(qfair.scoring.causal, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    try:
        _compiled_matches_eager(tiny_model, tiny_tokenizer, _varied_texts(tiny_corpus))
        # one graph for every batch shape: no graph break, no recompilation
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    finally:
        torch._dynamo.reset()


@pytest.mark.skipif(not os.environ.get("QFAIR_TEST_INDUCTOR"),
                    reason="inductor compiles C++ kernels on CPU (~30 s); set QFAIR_TEST_INDUCTOR=1")
def test_inductor_compiled_scoring_matches_eager(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    try:
        _compiled_matches_eager(tiny_model, tiny_tokenizer, _varied_texts(tiny_corpus))
    finally:
        torch._dynamo.reset()


def test_bfloat16_model_scores_close_to_float32(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    import copy

    texts = _varied_texts(tiny_corpus)
    full = score_items(tiny_model, tiny_tokenizer, texts, batch_tokens=300)
    half = score_items(copy.deepcopy(tiny_model).to(torch.bfloat16), tiny_tokenizer, texts, batch_tokens=300)
    assert half.nll.dtype == np.float64
    assert not np.array_equal(half.nll, full.nll)  # it really ran in bf16
    np.testing.assert_allclose(half.nll, full.nll, rtol=0.05)


def test_score_corpus_uses_the_given_scorer(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    calls = []

    def scorer(model, tokenizer, texts, batch_tokens, max_tokens, progress):
        calls.append((len(texts), batch_tokens, max_tokens))
        return score_items(model, tokenizer, texts, batch_tokens, max_tokens, progress)

    splits = {"dev": {loc: dict(list(items.items())[:2]) for loc, items in tiny_corpus.splits["dev"].items()}}
    frame = score_corpus(tiny_model, tiny_tokenizer, splits, 512, 1024, progress=False, scorer=scorer)
    assert calls == [(len(frame), 512, 1024)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    import copy

    texts = _varied_texts(tiny_corpus)
    cpu = score_items(tiny_model, tiny_tokenizer, texts, batch_tokens=300)
    gpu = copy.deepcopy(tiny_model).to("cuda")
    np.testing.assert_allclose(score_items(gpu, tiny_tokenizer, texts, batch_tokens=300).nll, cpu.nll,
                               rtol=1e-4)
    np.testing.assert_allclose(score_items(gpu.to(torch.bfloat16), tiny_tokenizer, texts, 300).nll,
                               cpu.nll, rtol=0.05)


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
