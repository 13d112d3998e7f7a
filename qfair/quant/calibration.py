"""The input statistics compression methods calibrate on, measured with forward hooks.

Everything runs where the model is: the statistics are summed on its device and moved to the CPU
once per language.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qfair.scoring.causal import model_device, padded_batches


@torch.no_grad()
def input_second_moments(model: nn.Module, linears: dict[str, nn.Linear], tokenizer,
                         texts: Sequence[str], batch_tokens: int, max_tokens: int,
                         covariances: bool = False) -> tuple[dict[str, torch.Tensor], int,
                                                           dict[str, torch.Tensor] | None]:
    """Per target layer, ``E[x_j^2]`` over the non-padding tokens of ``texts`` (float64).

    Returns the moments, the token count (so moments of several languages can be pooled) and,
    with ``covariances``, each layer's ``E[x x^T]`` (``[in, in]``, float64: GPTQ's Hessian up to a
    factor of 2). The moments are summed on their own, so asking for covariances leaves them
    bit-identical.
    """
    device = model_device(model)
    # Sums stay on the model's device (no host sync per layer and batch); moved to CPU once.
    sums = {name: torch.zeros(lin.in_features, dtype=torch.float64, device=device)
            for name, lin in linears.items()}
    outer = ({name: torch.zeros(lin.in_features, lin.in_features, dtype=torch.float64, device=device)
              for name, lin in linears.items()} if covariances else None)
    state: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def accumulate(module: nn.Module, args: tuple) -> None:
            x = args[0].reshape(-1, args[0].shape[-1])[state["keep"]]
            sums[name] += x.double().square().sum(0).to(device)
            if outer is not None:
                wide = x.double().to(device)
                outer[name] += wide.T @ wide
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
    moments = {name: (total / count).cpu() for name, total in sums.items()}
    return moments, count, None if outer is None else {name: (total / count).cpu()
                                                       for name, total in outer.items()}
