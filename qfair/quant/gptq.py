"""GPTQ (Frantar et al. 2022): round weights column by column, each error compensated by the rest.

For a Linear layer with weight ``W [out, in]`` and inputs ``X``, GPTQ minimises the layer-output
error ``tr((W - Q) H (W - Q)^T)`` with ``H = E[x x^T]`` (the calibration Hessian up to a factor).
Columns are quantized one at a time onto a fixed grid; after column ``j`` is rounded, the optimal
(OBS) update of the not-yet-quantized columns, ``-(w_j - q_j) / [H^-1]_jj * [H^-1]_{j, >j}``,
absorbs its error. ``H^-1`` is taken through its upper Cholesky factor, and updates are applied
lazily in blocks of ``block_size`` columns, as in the reference implementation
(github.com/IST-DASLab/gptq, ``gptq.py``); the arithmetic is the same.

Options, as in the reference: ``damp`` adds ``damp * mean(diag H)`` to the diagonal; a column
whose input is never active (``H_jj == 0``) is zeroed; ``act_order`` quantizes columns in order of
decreasing ``H_jj``. Groups: without ``act_order`` a group's grid is fitted to its columns as
updated when its first column is reached (the reference's default); with ``act_order`` every group's
grid is fitted to the original weights first (the reference's ``static_groups``), so groups stay
contiguous in the original column order. Grids are the RTN grids of :mod:`qfair.quant.rtn`.
"""

from __future__ import annotations

import torch

from qfair.quant.rtn import (
    Grid,
    check_bits,
    check_weight,
    compute_dtype,
    reshape_to_units,
    round_to_grid,
    unit_grid,
)


def _column_grid(grid: Grid, unit: int) -> Grid:
    """The ``[R, 1, 1]`` grid of unit column ``unit`` of a ``[R, G, 1]`` grid."""
    pick = slice(unit, unit + 1)
    return Grid(grid.bits, grid.symmetric, grid.scale[:, pick],
                None if grid.flip is None else grid.flip[:, pick],
                None if grid.zero is None else grid.zero[:, pick])


def _round_column(values: torch.Tensor, grid: Grid) -> torch.Tensor:
    """One column ``[out]`` onto a ``[out or 1, 1, 1]`` grid."""
    return round_to_grid(values.reshape(-1, 1, 1), grid).reshape(-1)


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, bits: int, granularity: str = "channel",
                  group_size: int | None = None, symmetric: bool = True, act_order: bool = False,
                  damp: float = 0.01, block_size: int = 128) -> torch.Tensor:
    """The GPTQ-quantized (dequantized) weight, same shape, dtype and device as ``weight``.

    ``hessian`` is ``[in, in]``, symmetric positive semi-definite (e.g. ``E[x x^T]`` over
    calibration tokens). Arithmetic runs in float32 (float64 for float64 weights).
    """
    check_weight(weight)
    bits = check_bits(bits)
    out_features, in_features = weight.shape
    if hessian.shape != (in_features, in_features):
        raise ValueError(f"hessian must be [{in_features}, {in_features}], got {tuple(hessian.shape)}")
    if not damp > 0:
        raise ValueError(f"damp must be positive, got {damp}")
    dtype = compute_dtype(weight)
    w = weight.detach().to(dtype).clone()
    h = hessian.detach().to(device=w.device, dtype=dtype).clone()
    reshape_to_units(w, granularity, group_size)  # validates granularity and group size

    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    order = torch.argsort(torch.diag(h), descending=True, stable=True) if act_order else None
    # Fixed grids: per tensor / channel from the weights; per group with act_order from the original
    # weights (static groups); per group without it, fitted when the group's first column comes.
    grids = None if granularity == "group" and not act_order else unit_grid(
        reshape_to_units(w, granularity, group_size), bits, symmetric)
    if order is not None:
        w, h = w[:, order], h[order][:, order]
    h[range(in_features), range(in_features)] += damp * torch.mean(torch.diag(h))
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)

    q = torch.zeros_like(w)
    group_grid = None
    for start in range(0, in_features, block_size):
        stop = min(start + block_size, in_features)
        block, block_inv = w[:, start:stop].clone(), h_inv[start:stop, start:stop]
        errors = torch.zeros_like(block)
        for i in range(stop - start):
            column = start + i
            original = int(order[column]) if order is not None else column
            if granularity == "group" and grids is None:
                if column % group_size == 0:  # as the reference: W as of the block's start
                    group = w[:, column : column + group_size]
                    group_grid = unit_grid(group.reshape(out_features, 1, group_size), bits, symmetric)
                grid = group_grid
            elif granularity == "group":
                grid = _column_grid(grids, original // group_size)
            else:
                grid = grids  # [out, 1, 1] per channel, [1, 1, 1] per tensor
            values = block[:, i]
            rounded = _round_column(values, grid)
            q[:, column] = rounded
            error = (values - rounded) / block_inv[i, i]
            block[:, i:] -= error.unsqueeze(1) * block_inv[i, i:].unsqueeze(0)
            errors[:, i] = error
        w[:, stop:] -= errors @ h_inv[start:stop, stop:]
    if order is not None:
        q = q[:, torch.argsort(order)]
    return q.to(weight.dtype)


def layer_error(weight: torch.Tensor, quantized: torch.Tensor, hessian: torch.Tensor) -> float:
    """GPTQ's objective ``tr((W - Q) H (W - Q)^T)`` (float64)."""
    delta = (weight.double() - quantized.double())
    return float(torch.einsum("oi,ij,oj->", delta, hessian.to(delta.device).double(), delta))
