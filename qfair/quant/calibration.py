"""The input statistics compression methods calibrate on, measured with forward hooks.

Everything runs where the model is: the statistics are summed on its device and moved to the CPU
once per language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from qfair.scoring.causal import model_device, padded_batches


@dataclass
class InputStats:
    """One language's inputs to every target layer, per input channel ``j`` (float64, on the CPU)."""

    moments: dict[str, torch.Tensor]  # E[x_j^2]: LA-ACIQ, Wanda
    mean_abs: dict[str, torch.Tensor]  # E|x_j|: AWQ's activation magnitude
    absmax: dict[str, torch.Tensor]  # max |x_j|: static activation ranges, SmoothQuant
    count: int  # non-padding tokens (so statistics of several languages can be pooled)
    covariances: dict[str, torch.Tensor] | None = None  # E[x x^T] ([in, in]): GPTQ's Hessian


@torch.no_grad()
def input_statistics(model: nn.Module, linears: dict[str, nn.Linear], tokenizer, texts: Sequence[str],
                     batch_tokens: int, max_tokens: int, covariances: bool = False) -> InputStats:
    """Per target layer, the statistics of :class:`InputStats` over the non-padding tokens of ``texts``.

    Each statistic is summed on its own, so asking for covariances leaves the others bit-identical.
    """
    device = model_device(model)

    def zeros(lin: nn.Linear, *shape: int) -> torch.Tensor:
        return torch.zeros(*shape or (lin.in_features,), dtype=torch.float64, device=device)

    # Sums stay on the model's device (no host sync per layer and batch); moved to CPU once.
    squares = {name: zeros(lin) for name, lin in linears.items()}
    absolute = {name: zeros(lin) for name, lin in linears.items()}
    maxima = {name: zeros(lin) for name, lin in linears.items()}
    outer = ({name: zeros(lin, lin.in_features, lin.in_features) for name, lin in linears.items()}
             if covariances else None)
    state: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def accumulate(module: nn.Module, args: tuple) -> None:
            x = args[0].reshape(-1, args[0].shape[-1])[state["keep"]].double().to(device)
            squares[name] += x.square().sum(0)
            magnitude = x.abs()
            absolute[name] += magnitude.sum(0)
            if len(magnitude):
                torch.maximum(maxima[name], magnitude.amax(0), out=maxima[name])
            if outer is not None:
                outer[name] += x.T @ x
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

    def mean(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: (total / count).cpu() for name, total in sums.items()}

    return InputStats(mean(squares), mean(absolute), {n: m.cpu() for n, m in maxima.items()}, count,
                      None if outer is None else mean(outer))
