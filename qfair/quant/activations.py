"""Activation fake quantization and the exact input transforms that prepare for it.

A Linear layer ``y = W x`` is rewritten as ``y = (W T)(T^-1 x)`` with an invertible ``T``, which
changes nothing in full precision; quantizing ``T^-1 x`` and ``W T`` instead of ``x`` and ``W``
moves the difficulty between them. Two transforms, after their papers:

* SmoothQuant (Xiao et al. 2023): ``T = diag(s)``, ``s_j = max|x_j|^alpha / max_i |W_ij|^(1-alpha)``,
  moving input-channel outliers into the weights (``alpha`` = how much).
* Hadamard rotation (QuaRot, Ashkboos et al. 2024): ``T = R`` orthonormal (``R R^T = I``), a
  block-diagonal Walsh-Hadamard matrix, which spreads an outlier channel over all channels of its block.
  QuaRot rotates by a full Hadamard matrix; a width that is not a power of two (768) gets blocks of
  the largest power of two dividing it (256), which keeps the transform exact.

Activations use the restricted symmetric grid ``[-(2^(b-1)-1), 2^(b-1)-1] * range / (2^(b-1)-1)`` of
int8 activation kernels, with the range per token (dynamic: the token's absmax) or per tensor
(static: the absmax over the calibration text).
"""

from __future__ import annotations

import math

import scipy.linalg
import torch


def fake_quantize_inputs(x: torch.Tensor, bits: int, static_range: float | None = None) -> torch.Tensor:
    """``x`` on the activation grid: per token (last axis) when ``static_range`` is None, else one
    range for the whole tensor (values beyond it are clipped). Float32 arithmetic, dtype kept."""
    if not 2 <= bits <= 8:
        raise ValueError(f"activation bits {bits} outside 2-8")
    levels = 2 ** (bits - 1) - 1
    values = x.float()
    if static_range is None:
        absmax = values.abs().amax(-1, keepdim=True)
    else:
        absmax = torch.tensor(float(static_range), device=x.device)
    scale = absmax / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    quantized = torch.clamp(torch.round(values / safe), -levels, levels) * scale
    return quantized.to(x.dtype)


def hadamard_block(width: int) -> int:
    """The largest power of two that divides ``width`` (the block of the rotation)."""
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    return width & -width


def hadamard_rotation(width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal block-diagonal Walsh-Hadamard matrix ``R`` (``[width, width]``)."""
    block = hadamard_block(width)
    if block == 1:
        raise ValueError(f"width {width} is odd: no Hadamard block divides it")
    h = torch.tensor(scipy.linalg.hadamard(block), dtype=torch.float64) / math.sqrt(block)
    return torch.block_diag(*[h] * (width // block)).to(dtype)


def smoothing_scales(activation_absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel ``s`` (the reference's clamps: 1e-5 on both maxima and on s)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} outside [0, 1]")
    weight_absmax = weight.detach().abs().amax(0).double().clamp(min=1e-5)
    act = activation_absmax.double().to(weight_absmax.device).clamp(min=1e-5)
    return (act.pow(alpha) / weight_absmax.pow(1 - alpha)).clamp(min=1e-5)
