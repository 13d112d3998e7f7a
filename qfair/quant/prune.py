"""Unstructured pruning: magnitude pruning (per tensor or global) and Wanda (Sun et al., 2023).

Each pruning unit loses exactly ``k = round(sparsity * n)`` entries, ``n`` being the unit's size
(Python ``round``, i.e. ties to even). The unit is one tensor for per-tensor magnitude pruning
(:func:`prune_magnitude`, configs ``prune-magnitude-tensor-<percent>``), all pruned tensors
together for global magnitude pruning (:func:`prune_magnitude_global`, configs
``prune-magnitude-global-<percent>``: one threshold for the whole model, so tensors end up with
different sparsities), and one output row for Wanda.  The ``k`` entries with the lowest score
are zeroed; equal scores are broken by position (a stable sort, lower flat index pruned first) so
results are deterministic.  Entries that are already zero have the lowest score and are counted
among the ``k``; the output can hold more than ``k`` zeros only if the input already had more.
Zeroed entries are exact ``+0.0``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import torch

from qfair.quant.rtn import check_weight, compute_dtype


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float, raising ``ValueError`` unless it lies in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a real number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def _prune_lowest(w: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """Zero the ``k`` lowest-scoring entries of every row of ``w`` (``[U, n]``)."""
    if k == 0:
        return w.clone()
    order = torch.sort(scores, dim=-1, stable=True).indices[:, :k]
    keep = torch.ones_like(w, dtype=torch.bool).scatter_(-1, order, False)
    return torch.where(keep, w, torch.zeros_like(w))


def prune_magnitude(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``round(sparsity * w.numel())`` smallest-magnitude entries of the whole tensor.

    Works for any shape; returns a new tensor with the shape and dtype of ``w``.
    """
    sparsity = check_sparsity(sparsity)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise ValueError("w must be a floating-point tensor")
    flat = w.reshape(1, -1)
    k = round(sparsity * flat.shape[1])
    return _prune_lowest(flat, flat.abs(), k).reshape(w.shape)


def prune_magnitude_global(weights: Mapping[str, torch.Tensor],
                           sparsity: float) -> dict[str, torch.Tensor]:
    """Zero the ``round(sparsity * N)`` smallest-magnitude entries over all tensors together.

    ``N`` is the total number of entries. Magnitudes are compared in float64 across tensors;
    ties are broken by position in the concatenation of the tensors in ``weights`` order. Returns
    new tensors with the shapes and dtypes of the inputs, under the same names.
    """
    sparsity = check_sparsity(sparsity)
    for name, w in weights.items():
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise ValueError(f"{name}: w must be a floating-point tensor")
    if not weights:
        return {}
    flat = torch.cat([w.detach().reshape(-1).to("cpu", torch.float64) for w in weights.values()])
    k = round(sparsity * flat.numel())
    keep = _prune_lowest(torch.ones_like(flat).reshape(1, -1), flat.abs().reshape(1, -1), k)[0] != 0
    out, start = {}, 0
    for name, w in weights.items():
        mask = keep[start:start + w.numel()].reshape(w.shape).to(w.device)
        out[name] = torch.where(mask, w, torch.zeros_like(w))
        start += w.numel()
    return out


def prune_wanda(w: torch.Tensor, input_norm: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Wanda: score ``|w_ij| * ||x_j||_2`` and prune ``round(sparsity * in)`` entries per row.

    Args:
        w: weight ``[out_features, in_features]``.
        input_norm: ``[in_features]`` L2 norms of each input feature over calibration tokens
            (non-negative, finite).
        sparsity: fraction in [0, 1) of each output row to zero.

    Comparing scores within an output row (not across the layer) is Wanda's choice: it keeps
    every output neuron equally dense.
    """
    sparsity = check_sparsity(sparsity)
    check_weight(w)
    norm = torch.as_tensor(input_norm).to(device=w.device, dtype=compute_dtype(w))
    if norm.shape != (w.shape[1],):
        raise ValueError(f"input_norm must have shape ({w.shape[1]},), got {tuple(norm.shape)}")
    if not bool(torch.isfinite(norm).all()) or bool((norm < 0).any()):
        raise ValueError("input_norm must be finite and non-negative")
    # Score in float32+ so that low-precision weights do not create spurious ties.
    scores = w.to(norm.dtype).abs() * norm
    return _prune_lowest(w, scores, round(sparsity * w.shape[1]))
