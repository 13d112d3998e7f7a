"""The input statistics compression methods calibrate on, measured with forward hooks.
Everything runs where the model is: the snapshot, the quantizer arithmetic and the activation
statistics stay on its device (a GPU copy of the weights for a model on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qfair.scoring.causal import model_device, padded_batches


@torch.no_grad()
def input_second_moments(model: nn.Module, linears: dict[str, nn.Linear], tokenizer,
                         texts: Sequence[str], batch_tokens: int,
                         max_tokens: int) -> tuple[dict[str, torch.Tensor], int]:
    """Per target layer, ``E[x_j^2]`` over the non-padding tokens of ``texts`` (float64).

    Returns the moments and the token count (so moments of several languages can be pooled).
    """
    device = model_device(model)
    # Sums stay on the model's device (no host sync per layer and batch); moved to CPU once.
    sums = {name: torch.zeros(lin.in_features, dtype=torch.float64, device=device)
            for name, lin in linears.items()}
    state: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def accumulate(module: nn.Module, args: tuple) -> None:
            x = args[0].reshape(-1, args[0].shape[-1])[state["keep"]]
            sums[name] += x.double().square().sum(0).to(device)
        return accumulate

    handles = [lin.register_forward_pre_hook(hook(name)) for name, lin in linears.items()]
    count = 0
    try:
        for _, input_ids, mask in padded_batches(tokenizer, texts, batch_tokens, max_tokens, device):
            state["keep"] = mask.reshape(-1).bool()
            count += int(mask.sum())
            model(input_ids=input_ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / count).cpu() for name, total in sums.items()}, count
