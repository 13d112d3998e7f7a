"""Pseudo-log-likelihood scoring of masked LMs: batched vs a naive one-token-at-a-time loop.

Models are tiny BertForMaskedLM / XLMRobertaForMaskedLM built from configs, with a WordLevel
tokenizer built in memory (BERT-style [CLS]/[SEP] or XLM-R-style <s>/</s> framing), so nothing
is downloaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pll_reference import score_items_pll_naive
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForMaskedLM,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from qfair.models.load import load_model
from qfair.scoring.causal import score_corpus
from qfair.scoring.mlm import encode_pll_items, score_items_pll

WORDS = ["river", "long", "the", "is", "odò", "gùn", "नदी", "लंबी", "है", "河", "很", "长", "a", "b", "c"]
TEXTS = ["the river is long", "odò gùn", "नदी लंबी है", "河 很 长", "a b c a b c the river",
         "long", "the the river river is is long long a b"]
STYLES = {  # special tokens: cls, sep, pad, mask, unk
    "bert": ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"),
    "xlmr": ("<s>", "</s>", "<pad>", "<mask>", "<unk>"),
}


def make_tokenizer(style: str) -> PreTrainedTokenizerFast:
    cls, sep, pad, mask, unk = STYLES[style]
    specials = [cls, pad, sep, unk, mask] if style == "xlmr" else [pad, unk, cls, sep, mask]
    vocab = {token: index for index, token in enumerate(specials + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, cls_token=cls, sep_token=sep, pad_token=pad,
                                   mask_token=mask, unk_token=unk, bos_token=cls, eos_token=sep)


def make_model(style: str, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    # A wide initializer: a default-initialised encoder is near-uniform over the vocabulary, which
    # would make every comparison below pass trivially.
    common = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, initializer_range=0.5, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(3)
    if style == "bert":
        return BertForMaskedLM(BertConfig(max_position_embeddings=64, **common)).eval()
    return XLMRobertaForMaskedLM(XLMRobertaConfig(max_position_embeddings=66, bos_token_id=0, eos_token_id=2,
                                                  **common)).eval()


@pytest.fixture(scope="module", params=sorted(STYLES))
def masked_lm(request) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    tokenizer = make_tokenizer(request.param)
    return make_model(request.param, tokenizer), tokenizer


def test_special_tokens_frame_every_copy_and_are_not_scored(masked_lm) -> None:
    _, tokenizer = masked_lm
    items, positions = encode_pll_items(tokenizer, ["the river is long", "long"], max_tokens=64)
    assert items[0][0] == tokenizer.cls_token_id and items[0][-1] == tokenizer.sep_token_id
    assert positions == [[1, 2, 3, 4], [1]]


@pytest.mark.parametrize("batch_tokens", [1, 24, 4096])
def test_batched_pll_equals_the_naive_loop(masked_lm, batch_tokens: int) -> None:
    model, tokenizer = masked_lm
    naive = score_items_pll_naive(model, tokenizer, TEXTS)
    batched = score_items_pll(model, tokenizer, TEXTS, batch_tokens=batch_tokens, max_tokens=64)
    np.testing.assert_allclose(batched.nll, naive.nll, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(batched.n_tokens, [len(t.split()) for t in TEXTS])
    np.testing.assert_array_equal(batched.n_bytes, [len(t.encode()) for t in TEXTS])
    # Not a trivial agreement: per-token PLLs differ clearly from item to item and from uniform.
    per_token = naive.nll / naive.n_tokens
    assert np.ptp(per_token) > 0.5
    assert np.all(np.abs(per_token - np.log(len(tokenizer))) > 0.1)


def test_masking_matters(masked_lm) -> None:
    """Scoring tokens that are visible (no mask) would give a different, lower number."""
    model, tokenizer = masked_lm
    ids = torch.tensor([tokenizer("the river is long")["input_ids"]])
    with torch.no_grad():
        visible = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)
    unmasked = -float(sum(visible[p, ids[0, p]] for p in range(1, ids.shape[1] - 1)))
    pll = score_items_pll(model, tokenizer, ["the river is long"]).nll[0]
    assert abs(pll - unmasked) > 0.1


def test_score_corpus_takes_the_pll_scorer(masked_lm) -> None:
    model, tokenizer = masked_lm
    splits = {"test": {"eng": {"0": TEXTS[0], "1": TEXTS[4]}, "hin": {"0": TEXTS[2], "1": TEXTS[2]}}}
    items = score_corpus(model, tokenizer, splits, batch_tokens=64, max_tokens=64, progress=False,
                         scorer=score_items_pll)
    assert list(items.columns) == ["split", "language", "item_id", "nll", "n_tokens", "n_bytes"]
    expected = score_items_pll_naive(model, tokenizer, [TEXTS[0], TEXTS[4], TEXTS[2], TEXTS[2]]).nll
    np.testing.assert_allclose(items["nll"], expected, rtol=1e-5)
    assert isinstance(items, pd.DataFrame) and items["nll"].gt(0).all()


def test_bad_items_are_named(masked_lm) -> None:
    model, tokenizer = masked_lm
    with pytest.raises(ValueError, match=r"item 1 has 12 tokens > eval.max_tokens 8"):
        score_items_pll(model, tokenizer, ["long", TEXTS[-1]], max_tokens=8)
    with pytest.raises(ValueError, match=r"item 0 .* no token to score"):
        score_items_pll(model, tokenizer, [""], max_tokens=8)


def test_a_tokenizer_without_mask_token_is_refused(tmp_path) -> None:
    tokenizer = make_tokenizer("bert")
    model = make_model("bert", tokenizer)
    tokenizer.mask_token = None
    with pytest.raises(ValueError, match="mask token"):
        score_items_pll(model, tokenizer, ["long"])


def test_masked_lm_load_round_trip(tmp_path) -> None:
    tokenizer = make_tokenizer("xlmr")
    model = make_model("xlmr", tokenizer)
    model.save_pretrained(str(tmp_path / "m"))
    loaded = load_model(tmp_path / "m", kind="masked_lm")
    np.testing.assert_allclose(score_items_pll(loaded, tokenizer, TEXTS).nll,
                               score_items_pll(model, tokenizer, TEXTS).nll, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_model(tmp_path, kind="masked_lm")
