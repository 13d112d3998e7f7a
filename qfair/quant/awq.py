"""AWQ (Lin et al. 2024): activation-aware weight scaling before round-to-nearest.

Input channel ``j`` of a Linear layer is scaled by ``s_j = m_j^r`` (``m_j = E|x_j|``, the mean
input magnitude on calibration text), normalised by ``sqrt(max s * min s)``: ``Q(W diag(s))
diag(s)^-1`` replaces ``W``, so salient channels get a finer grid. The ratio ``r`` is searched on
the grid ``0, 1/20, ..., 19/20`` for the smallest layer-output error, as in the reference
implementation (github.com/mit-han-lab/llm-awq, ``auto_scale.py``). Two deviations, both
documented in docs/quantization.md: the error is the exact calibration error of the layer,
``tr(D H D^T)`` with ``H = E[x x^T]`` (the reference measures the output of the block the layer
sits in on a calibration batch), and the clipping search that follows the scaling is not run.
``r = 0`` is plain RTN, so AWQ's error is never above RTN's on the calibration objective.
"""

from __future__ import annotations

import torch

from qfair.quant.gptq import layer_error
from qfair.quant.rtn import quantize_rtn

RATIO_GRID = 20


def awq_scales(magnitude: torch.Tensor, ratio: float) -> torch.Tensor:
    """``m^r`` (clamped at 1e-4 as the reference), normalised by ``sqrt(max * min)``."""
    scales = magnitude.double().pow(ratio).clamp(min=1e-4)
    return scales / (scales.max() * scales.min()).sqrt()


def awq_quantize(weight: torch.Tensor, magnitude: torch.Tensor, hessian: torch.Tensor, bits: int,
                 granularity: str = "group", group_size: int | None = 128,
                 symmetric: bool = False) -> tuple[torch.Tensor, float]:
    """The AWQ-quantized (dequantized) weight and the chosen ratio ``r``.

    ``magnitude`` is ``[in]`` (``E|x_j|``), ``hessian`` ``[in, in]`` (``E[x x^T]``); the grid is the
    RTN grid of :func:`qfair.quant.rtn.quantize_rtn` (AWQ's default: asymmetric, groups of 128).
    Ties keep the smaller ratio.
    """
    if magnitude.shape != weight.shape[1:]:
        raise ValueError(f"magnitude must be [{weight.shape[1]}], got {tuple(magnitude.shape)}")
    magnitude = magnitude.to(weight.device)
    hessian = hessian.to(weight.device)
    best, best_error, best_ratio = None, float("inf"), 0.0
    for step in range(RATIO_GRID):
        ratio = step / RATIO_GRID
        scales = awq_scales(magnitude, ratio)
        scaled = (weight.double() * scales).to(weight.dtype)
        quantized = (quantize_rtn(scaled, bits, granularity, group_size, symmetric).double()
                     / scales).to(weight.dtype)
        error = layer_error(weight, quantized, hessian)
        if error < best_error:
            best, best_error, best_ratio = quantized, error, ratio
    return best, best_ratio
