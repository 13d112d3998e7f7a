"""GPTQ against the algorithm it implements: the OBS update is the exact least-squares solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfair.quant.gptq import gptq_quantize, layer_error
from qfair.quant.rtn import quantize_rtn, reshape_to_units, round_to_grid, unit_grid


def _problem(seed: int, out_features: int = 6, in_features: int = 8, tokens: int = 200):
    """A weight and the Hessian of correlated inputs (as a Linear layer's inputs are)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=g, dtype=torch.float64)
    mix = torch.randn(in_features, in_features, generator=g, dtype=torch.float64)
    x = torch.randn(tokens, in_features, generator=g, dtype=torch.float64) @ mix
    return w, x.T @ x / tokens


def _brute_force(w: torch.Tensor, h: torch.Tensor, bits: int, order: list[int]) -> torch.Tensor:
    """Quantize columns in ``order``; after each, re-solve every free column by least squares.

    The objective per row is ``(w' - w) H (w' - w)^T``; with columns F fixed, the free columns R
    minimise it at ``w'_R = w_R - H_RR^-1 H_RF (w'_F - w_F)`` (a linear solve, no OBS formula).
    """
    grid = unit_grid(reshape_to_units(w, "channel"), bits, True)  # fixed per-row grid, as GPTQ
    current, fixed = w.clone(), []
    for column in order:
        rounded = round_to_grid(current[:, column].reshape(-1, 1, 1), grid).reshape(-1)
        current[:, column] = rounded
        fixed.append(column)
        free = [c for c in range(w.shape[1]) if c not in fixed]
        if free:
            delta = (current[:, fixed] - w[:, fixed]).numpy()
            h_rr, h_rf = h[np.ix_(free, free)].numpy(), h[np.ix_(free, fixed)].numpy()
            solved = w[:, free].numpy() - np.linalg.solve(h_rr, h_rf @ delta.T).T
            current[:, free] = torch.from_numpy(solved)
    return current


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("act_order", [False, True])
def test_obs_updates_equal_the_least_squares_solution(seed: int, act_order: bool) -> None:
    w, h = _problem(seed)
    damp = 1e-10  # GPTQ's damping changes H slightly; the brute force sees the same H
    damped = h + damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    order = (torch.argsort(torch.diag(h), descending=True, stable=True).tolist() if act_order
             else list(range(h.shape[0])))
    expected = _brute_force(w, damped, 3, order)
    got = gptq_quantize(w, h, 3, "channel", act_order=act_order, damp=damp, block_size=3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("bits", "granularity", "group_size"),
                         [(2, "channel", None), (3, "channel", None), (4, "channel", None),
                          (3, "group", 16), (4, "tensor", None)])
def test_gptq_is_never_worse_than_rtn_on_its_objective(seed, bits, granularity, group_size) -> None:
    w, h = _problem(seed, out_features=32, in_features=64, tokens=512)
    rtn = quantize_rtn(w, bits, granularity, group_size)
    for act_order in (False, True):
        q = gptq_quantize(w, h, bits, granularity, group_size, act_order=act_order)
        assert layer_error(w, q, h) <= layer_error(w, rtn, h)


def test_shapes_dtype_grid_and_determinism() -> None:
    w, h = _problem(0, out_features=16, in_features=32)
    w32 = w.float()
    q = gptq_quantize(w32, h, 3, "channel", block_size=8)
    assert q.shape == w32.shape and q.dtype == torch.float32
    assert all(len(torch.unique(row)) <= 2**3 for row in q)  # every row stays on one 3-bit grid
    assert torch.equal(q, gptq_quantize(w32, h, 3, "channel", block_size=8))
    # lazy block updates change the order of additions, not the algorithm
    torch.testing.assert_close(q, gptq_quantize(w32, h, 3, "channel", block_size=32), rtol=0, atol=1e-5)
    grouped = gptq_quantize(w32, h, 3, "group", 8, act_order=True)
    for unit in reshape_to_units(grouped, "group", 8).reshape(-1, 8):
        assert len(torch.unique(unit)) <= 2**3


def test_a_column_without_input_is_zeroed() -> None:
    w, h = _problem(1)
    h[2, :], h[:, 2] = 0, 0
    assert torch.count_nonzero(gptq_quantize(w, h, 4)[:, 2]) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hessian": torch.eye(5)}, "hessian must be"),
    ({"damp": 0.0}, "damp must be positive"),
    ({"bits": 1}, "bits must be an integer"),
    ({"granularity": "group", "group_size": 3}, "group_size must be"),
])
def test_bad_arguments_are_named(kwargs, message) -> None:
    w, h = _problem(2)
    arguments = {"weight": w, "hessian": h, "bits": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        gptq_quantize(**arguments)
