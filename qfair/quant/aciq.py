"""ACIQ analytic clipping (Banner, Nahshan & Soudry, 2019) and an empirical MSE grid search.

Noise model.  A zero-mean variable X is clipped to [-a, a] and the range is split into 2^M
equal bins of width ``delta = 2a / 2^M``.  The expected squared error is modelled as

    D(a) = E[(|X| - a)^2 ; |X| > a]  +  delta^2 / 12  =  clip(a)  +  a^2 / (3 * 4^M).

The second term is the uniform-within-bin rounding noise with all probability mass counted as
in range (the paper's choice; weighting it by P(|X| <= a) moves the optimum).  The clipping term
is integrated exactly:

* Laplace(0, b):  2 * int_a^inf (x - a)^2 e^(-x/b) / (2b) dx = 2 b^2 e^(-a/b)  (exact, as in
  the paper);
* Gaussian(0, s): with Q the standard normal tail and phi its density,
  2 s^2 [(1 + t^2) Q(t) - t phi(t)], t = a/s, i.e.
  ``(a^2 + s^2) erfc(a / (sqrt(2) s)) - sqrt(2/pi) a s exp(-a^2 / (2 s^2))``.

Both terms scale as (scale)^2 when a and the scale parameter are scaled together, so the optimal
clip is ``a* = c(prior, M) * scale`` with a constant computed once by bounded 1-D minimisation.
With these exact terms the constants reproduce the paper's tables: Laplace 2.83, 3.90, 5.03,
Gaussian 1.71, 2.15, 2.56 for M = 2, 3, 4 (see ``optimal_clip_ratio``).

The model is a high-resolution approximation: against a Monte-Carlo quantizer at the optimal
clip it underestimates the true MSE by 40-47 % at 2 bits, 21-24 % at 3 bits, 11-12 % at 4 bits
and <= 3 % from 7 bits on (clipped values are reproduced at a bin centre, not at +-a, and the
uniform-within-bin assumption breaks for wide bins).  The two terms separately are accurate.

Fitting.  Per unit (tensor or row) we fit b = mean|w - mean(w)| (Laplace) and s = std(w)
(population) on centred values, and clip symmetrically around 0 because the quantizer grid is
centred at 0; LLM weight rows have means that are tiny compared with their spread.  A clip is
never larger than the unit's absmax: beyond it there is nothing to clip and a wider grid only
adds rounding noise.

``"mix"`` chooses, per unit, between the Laplace clip and the Gaussian clip by the ACIQ noise
model evaluated on the unit's *empirical* distribution, ``mean((|w| - a)_+^2) + a^2/(3*4^M)``.
Comparing each prior's own predicted MSE under its own fit would be biased: a Gaussian fit
always predicts lighter tails, e.g. at 4 bits it would be chosen whenever b/s > 0.48, which is
true of exactly-Laplace data (b/s = 0.71).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import scipy.special
import torch
from scipy.optimize import minimize_scalar

from qfair.quant.rtn import check_bits, compute_dtype, quantize_units, reshape_to_units

PRIORS = ("laplace", "gaussian")
ACIQ_PRIORS = (*PRIORS, "mix")


def _backend(*xs: Any) -> tuple[Any, list[Any], bool]:
    """Pick torch if any input is a tensor, else numpy; return (module, converted, all_scalar)."""
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    if tensors:
        dtype = tensors[0].dtype if tensors[0].is_floating_point() else torch.float64
        dev = tensors[0].device
        return torch, [torch.as_tensor(x, dtype=dtype, device=dev) for x in xs], False
    scalar = all(np.ndim(x) == 0 for x in xs)
    return np, [np.asarray(x, dtype=np.float64) for x in xs], scalar


def _finish(out: Any, scalar: bool) -> Any:
    return float(out) if scalar else out


def rounding_noise(alpha: Any, bits: int) -> Any:
    """Uniform rounding noise ``alpha^2 / (3 * 4^bits)`` of 2^bits bins over [-alpha, alpha]."""
    _, (a,), scalar = _backend(alpha)
    return _finish(a * a / (3.0 * 4.0**bits), scalar)


def clipping_noise_laplace(alpha: Any, b: Any) -> Any:
    """Exact ``E[(|X| - alpha)^2 ; |X| > alpha] = 2 b^2 exp(-alpha / b)`` for X ~ Laplace(0, b)."""
    xp, (a, s), scalar = _backend(alpha, b)
    pos = s > 0
    safe = xp.where(pos, s, 1.0)
    return _finish(xp.where(pos, 2.0 * s * s * xp.exp(-a / safe), 0.0), scalar)


def clipping_noise_gaussian(alpha: Any, sigma: Any) -> Any:
    """Exact ``E[(|X| - alpha)^2 ; |X| > alpha]`` for X ~ N(0, sigma^2) (module docstring)."""
    xp, (a, s), scalar = _backend(alpha, sigma)
    erfc = torch.special.erfc if xp is torch else scipy.special.erfc
    pos = s > 0
    safe = xp.where(pos, s, 1.0)
    t = a / safe
    val = (a * a + s * s) * erfc(t / math.sqrt(2.0)) - math.sqrt(2.0 / math.pi) * a * s * xp.exp(
        -0.5 * t * t
    )
    # Zero sigma: the variable is 0, nothing is clipped. clamp: cancellation can go below 0.
    val = xp.where(pos, val, 0.0)
    return _finish(val.clip(min=0.0) if xp is np else val.clamp(min=0.0), scalar)


def expected_mse_laplace(alpha: Any, b: Any, bits: int) -> Any:
    """ACIQ expected MSE for Laplace(0, b) clipped at ``alpha`` with 2^bits bins (vectorised)."""
    return clipping_noise_laplace(alpha, b) + rounding_noise(alpha, bits)


def expected_mse_gaussian(alpha: Any, sigma: Any, bits: int) -> Any:
    """ACIQ expected MSE for N(0, sigma^2) clipped at ``alpha`` with 2^bits bins (vectorised)."""
    return clipping_noise_gaussian(alpha, sigma) + rounding_noise(alpha, bits)


def expected_mse(prior: str, alpha: Any, scale: Any, bits: int) -> Any:
    """Dispatch to ``expected_mse_laplace`` / ``expected_mse_gaussian`` by ``prior`` name."""
    if prior == "laplace":
        return expected_mse_laplace(alpha, scale, bits)
    if prior == "gaussian":
        return expected_mse_gaussian(alpha, scale, bits)
    raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")


@functools.lru_cache(maxsize=64)
def optimal_clip_ratio(prior: str, bits: int) -> float:
    """``alpha* / scale`` minimising the ACIQ MSE (scale = b for Laplace, sigma for Gaussian).

    The MSE is homogeneous of degree 2 in (alpha, scale), so one 1-D minimisation per
    (prior, bits) serves every channel.  ``bits`` may be any integer in [1, 16] here.
    """
    bits = check_bits(bits, 1, 16)
    expected_mse(prior, 1.0, 1.0, bits)  # validates the prior name
    res = minimize_scalar(
        lambda a: expected_mse(prior, a, 1.0, bits),
        bounds=(1e-6, 40.0),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(res.x)


def optimal_clip(prior: str, scale: Any, bits: int) -> Any:
    """Optimal ACIQ clip ``optimal_clip_ratio(prior, bits) * scale`` (float, array or tensor)."""
    return optimal_clip_ratio(prior, bits) * scale


def fit_scales(
    x: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Laplace ``b = E|x - mu|`` and Gaussian ``sigma = sqrt(E(x - mu)^2)`` over the last axis.

    ``weights`` (last-axis length, summing to 1) turns the expectations into weighted ones.
    """
    if weights is None:
        dev = x - x.mean(-1, keepdim=True)
        return dev.abs().mean(-1), dev.square().mean(-1).sqrt()
    dev = x - (x @ weights).unsqueeze(-1)
    return dev.abs() @ weights, (dev.square() @ weights).sqrt()


def empirical_model_mse(
    x: torch.Tensor, alpha: torch.Tensor, bits: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """ACIQ noise model on the empirical distribution: ``E(|x| - a)_+^2 + a^2 / (3 * 4^bits)``.

    ``x`` is ``[..., n]``, ``alpha`` is ``[...]``; ``weights`` as in ``fit_scales``.
    """
    over = (x.abs() - alpha.unsqueeze(-1)).clamp(min=0.0).square()
    clip_part = over.mean(-1) if weights is None else over @ weights
    return clip_part + rounding_noise(alpha, bits)


def fit_prior(
    x: torch.Tensor, bits: int, prior: str, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the prior per slice of ``x`` (last axis = members) and fit its scale.

    Returns ``(is_laplace, scale)``, both shaped like ``x`` minus its last axis.  For
    ``prior="mix"`` Laplace is kept where its (absmax-capped) clip has an
    ``empirical_model_mse`` no larger than the Gaussian clip's.
    """
    if prior not in ACIQ_PRIORS:
        raise ValueError(f"prior must be one of {ACIQ_PRIORS}, got {prior!r}")
    b, sigma = fit_scales(x, weights)
    if prior != "mix":
        is_lap = torch.full_like(b, prior == "laplace", dtype=torch.bool)
        return is_lap, b if prior == "laplace" else sigma
    absmax = x.abs().amax(-1)
    a_lap = torch.minimum(optimal_clip("laplace", b, bits), absmax)
    a_gau = torch.minimum(optimal_clip("gaussian", sigma, bits), absmax)
    is_lap = empirical_model_mse(x, a_lap, bits, weights) <= empirical_model_mse(
        x, a_gau, bits, weights
    )
    return is_lap, torch.where(is_lap, b, sigma)


def select_prior_clip(
    x: torch.Tensor, bits: int, prior: str, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """ACIQ clip per slice of ``x`` (last axis = members), capped at the slice's absmax."""
    is_lap, scale = fit_prior(x, bits, prior, weights)
    a_star = torch.where(
        is_lap, optimal_clip("laplace", scale, bits), optimal_clip("gaussian", scale, bits)
    )
    return torch.minimum(a_star, x.abs().amax(-1))


def _unit_shape(units: torch.Tensor, granularity: str) -> torch.Tensor:
    """Return per-unit values ``[R, G]`` in the clip shape ``quantize_rtn`` documents."""
    if granularity == "tensor":
        return units.reshape(())
    if granularity == "channel":
        return units.reshape(-1)
    return units


def aciq_clip(
    w: torch.Tensor,
    bits: int,
    prior: str = "laplace",
    granularity: str = "channel",
    group_size: int | None = None,
) -> torch.Tensor:
    """ACIQ clipping values for ``quantize_rtn(w, bits, granularity, clip=...)``.

    Returns a 0-d tensor (tensor), ``[out]`` (channel) or ``[out, in // group_size]`` (group),
    in float32 (float64 for float64 ``w``).
    """
    bits = check_bits(bits)
    units = reshape_to_units(w, granularity, group_size).to(compute_dtype(w))
    return _unit_shape(select_prior_clip(units, bits, prior), granularity)


def mse_grid_clip(
    w: torch.Tensor,
    bits: int,
    granularity: str = "channel",
    n_grid: int = 100,
    symmetric: bool = True,
    group_size: int | None = None,
    min_ratio: float = 0.2,
) -> torch.Tensor:
    """Empirically MSE-optimal clip per unit by grid search over ``ratio * absmax``.

    Ratios are ``linspace(min_ratio, 1, n_grid)`` (for asymmetric grids the min-max range is
    scaled by the ratio, see ``quantize_rtn``); each candidate is scored by the exact
    squared error of ``quantize_rtn`` with that clip.  The loop runs over grid points, each step
    vectorised over all units.  Ties keep the larger clip.  Output shape as ``aciq_clip``.
    """
    bits = check_bits(bits)
    if isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 1:
        raise ValueError(f"n_grid must be a positive integer, got {n_grid!r}")
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio!r}")
    units = reshape_to_units(w, granularity, group_size).to(compute_dtype(w))
    absmax = units.abs().amax(-1, keepdim=True)
    best_err = torch.full(absmax.shape, math.inf, dtype=units.dtype, device=units.device)
    best_clip = absmax.clone()
    for ratio in torch.linspace(
        1.0, min_ratio, n_grid, dtype=torch.float64
    ).tolist():  # descending: ties keep larger
        cand = absmax * ratio
        err = (quantize_units(units, bits, symmetric, cand) - units).square().sum(-1, keepdim=True)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_clip = torch.where(better, cand, best_clip)
    return _unit_shape(best_clip.squeeze(-1), granularity)
