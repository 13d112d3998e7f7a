"""The reference PLL scorer the batched one is tested against: one forward pass per masked token."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from qfair.scoring.causal import ItemScores, model_device, utf8_lengths
from qfair.scoring.mlm import encode_pll_items


@torch.no_grad()
def score_items_pll_naive(model: nn.Module, tokenizer, texts: Sequence[str],
                          max_tokens: int = 512) -> ItemScores:
    """The naive loop: one forward pass of the whole model per masked token."""
    items, positions = encode_pll_items(tokenizer, texts, max_tokens)
    device = model_device(model)
    nll = []
    for ids, scored in zip(items, positions, strict=True):
        total = 0.0
        for position in scored:
            masked = torch.tensor([ids], device=device)
            masked[0, position] = tokenizer.mask_token_id
            logits = model(input_ids=masked).logits[0, position].float()
            total -= float(torch.log_softmax(logits, dim=-1)[ids[position]])
        nll.append(total)
    return ItemScores(nll=np.array(nll, dtype=np.float64),
                      n_tokens=np.array([len(p) for p in positions], dtype=np.int64),
                      n_bytes=utf8_lengths(texts))
