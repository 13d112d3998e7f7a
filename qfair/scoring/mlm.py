"""Pseudo-log-likelihood (PLL) scoring of masked LMs (mBERT, XLM-R): Salazar et al. (2020).

A masked LM gives no left-to-right likelihood. Its PLL of an item is the sum over the item's
tokens of ``log P(token | every other token)``, each token masked in turn. The special tokens the
tokenizer adds (``[CLS]``/``[SEP]``, ``<s>``/``</s>``) frame every copy and are never scored.
An item with n scored tokens becomes n masked copies. The copies of many items share one forward
pass (length-sorted batches under a token budget, as :mod:`qfair.scoring.causal` batches causal items).
The MLM head runs only at the masked position of each copy, never over the whole
``[batch, length, vocabulary]``, which for XLM-R's 250k vocabulary would dominate memory.

:func:`score_items_pll` returns :class:`qfair.scoring.causal.ItemScores` (nll = -PLL in nats),
so ``qfair.scoring.causal.score_corpus(..., scorer=score_items_pll)`` and
:func:`qfair.scoring.causal.bits_per_byte` work unchanged. **PLL bits per byte are not
comparable with causal bits per byte**: every token is predicted from both sides, so PLL is far
lower than a causal LM's NLL on the same text. Compare PLL results only with other PLL results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from qfair.scoring.causal import (
    ItemScores,
    TokenItems,
    check_finite_nll,
    length_sorted_batches,
    model_device,
    pad_token_id,
    to_device,
    utf8_lengths,
)

# The module that maps final hidden states to vocabulary logits, by architecture:
# BertForMaskedLM.cls, (XLM-)RobertaForMaskedLM.lm_head.
_HEAD_NAMES = ("cls", "lm_head")


def encode_pll_items(tokenizer, texts: Sequence[str],
                     max_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
    """``(ids with the tokenizer's special tokens, positions to score)`` per item.

    An item longer than ``max_tokens`` (special tokens included) or without a token to score is an
    error naming it.
    """
    if tokenizer.mask_token_id is None:
        raise ValueError("PLL scoring needs a tokenizer with a mask token (a masked LM's tokenizer)")
    encoded = tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True)
    items, positions = [], []
    for index, (ids, special) in enumerate(zip(encoded["input_ids"], encoded["special_tokens_mask"],
                                               strict=True)):
        scored = [position for position, flag in enumerate(special) if not flag]
        if len(ids) > max_tokens:
            raise ValueError(f"item {index} has {len(ids)} tokens > eval.max_tokens {max_tokens}")
        if not scored:
            raise ValueError(f"item {index} ({texts[index]!r}) has no token to score")
        items.append(list(ids))
        positions.append(scored)
    return items, positions


def _split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(encoder, head)`` where the head maps hidden states to logits; None if not found."""
    encoder = getattr(model, "base_model", None)
    for name in _HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module) and encoder is not None and encoder is not model:
            return encoder, head
    return None


def masked_position_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           positions: torch.Tensor) -> torch.Tensor:
    """``[batch, vocabulary]`` logits at one position per row (the masked one)."""
    rows = torch.arange(len(positions), device=input_ids.device)
    split = _split_head(model)
    if split is None:  # any other masked LM: full logits, then the one position per row
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, positions]
    encoder, head = split
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return head(hidden[rows, positions])


@torch.no_grad()
def score_items_pll(model: nn.Module, tokenizer, texts: Sequence[str], batch_tokens: int = 4096,
                    max_tokens: int = 512, progress: bool = False) -> ItemScores:
    """Negative PLL (nats, float64) of every item, with its scored tokens and UTF-8 bytes.

    The masked copies of all items are length-sorted and batched so that each padded batch holds
    at most ``batch_tokens`` tokens (at least one copy per batch); per-copy log-probabilities are
    summed per item on the device and copied to the host once.
    """
    items, positions = encode_pll_items(tokenizer, texts, max_tokens)
    tokens = TokenItems.from_lists(items)
    counts = np.fromiter((len(p) for p in positions), dtype=np.int64, count=len(positions))
    copy_item = np.repeat(np.arange(len(items), dtype=np.int64), counts)  # item-major: copies of one
    copy_position = np.fromiter((p for scored in positions for p in scored), dtype=np.int64,
                                count=int(counts.sum()))
    copy_target = tokens.flat[tokens.offsets[copy_item] + copy_position]
    batches = length_sorted_batches(tokens.lengths[copy_item], batch_tokens)
    pad = pad_token_id(tokenizer)
    device = model_device(model)
    nll = torch.zeros(len(items), dtype=torch.float64, device=device)
    for batch in tqdm(batches, desc="pll", disable=not progress, mininterval=2):
        batch = np.asarray(batch, dtype=np.int64)
        input_ids, mask = tokens.padded(copy_item[batch], pad)
        input_ids[np.arange(len(batch)), copy_position[batch]] = tokenizer.mask_token_id
        ids, attention = to_device(input_ids, device), to_device(mask, device)
        where = to_device(copy_position[batch], device)
        logits = masked_position_logits(model, ids, attention, where)
        log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
        picked = log_probs.gather(-1, to_device(copy_target[batch], device)[:, None]).squeeze(-1)
        nll.index_add_(0, to_device(copy_item[batch], device), -picked.double())
    result = nll.cpu().numpy()
    check_finite_nll(result, "score_items_pll")
    return ItemScores(nll=result, n_tokens=counts, n_bytes=utf8_lengths(texts))


def pll_bits_per_byte_note() -> str:
    """One line for stage printouts and metrics: what PLL bits per byte are (and are not)."""
    return ("pseudo-log-likelihood bits per byte (masked LM, Salazar et al. 2020); not comparable "
            "with causal bits per byte")
