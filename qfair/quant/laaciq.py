"""LA-ACIQ: language-aware analytic clipping with one clip per output channel shared by languages.

Method.  Row i of a Linear weight W is clipped at a (on the raw weights) and quantized;
``d_ij = w_ij - Q_a(w_ij)``.  Language l feeds inputs x with second moments
``s_j(l) = E_l[x_j^2]`` and feels the output error ``e_i = sum_j d_ij x_j``.  Under the usual
noise-model assumption that quantization errors are zero-mean, uncorrelated across input
channels and independent of the activations, the cross terms vanish:

    E_l[e_i^2] = sum_j s_j(l) E[d_ij^2] = S_l * E_{j ~ pi_l}[d_ij^2],
    S_l = sum_j s_j(l),   pi_l(j) = s_j(l) / S_l.

So language l sees the raw-weight error averaged over columns drawn with probability
proportional to its activation energy.  We call the law of ``w_ij`` under ``j ~ pi_l`` the
language-effective weight distribution of row i and fit the ACIQ prior to it with
``pi_l``-weighted moments (``b_il = E_pi|w - mu_il|``, ``sigma_il^2 = E_pi (w - mu_il)^2``;
"mix" chooses the prior per (language, row) as in ``aciq``).  Because this distribution lives on
the raw-weight axis, the shared clip a enters it directly, and ACIQ gives the per-language curve

    MSE_il(a) = N_il * [clip_P(a; scale_il) + a^2 / (3 * 4^M)].

Two alternatives are less defensible: fitting the prior to the raw row and only weighting by
s_j makes l enter as the constant factor S_l, so every language would want the same clip; and
fitting to ``v_ij = w_ij sqrt(s_j(l))`` puts the shared clip a at a different place
``a sqrt(s_j(l))`` for every column, which then needs an ad-hoc effective scale.

``N_il`` chooses what is compared across languages: ``"signal"`` (default) divides by the
row's output power ``sum_j s_j(l) w_ij^2`` (same diagonal approximation), i.e. compares relative
output error, which does not depend on how large a language's activations happen to be;
``"energy"`` divides by ``S_l``; ``"none"`` keeps the absolute output MSE.  The clip minimises
``sum_l lambda_l MSE_il(a)`` ("weighted"; uniform or resource-proportional lambda) or
``max_l MSE_il(a)`` over languages with ``lambda_l > 0`` ("minimax").  Every clipping term is
convex in a (its second derivative is ``2 P(|X| > a)``), so both objectives are convex and
their minimiser lies between the smallest and largest per-language optimum
``c(P, M) * scale_il``; a golden-section search on that bracket, vectorised over rows, finds it.
The clip is finally capped at the row's absmax.

Special cases (tested): if all languages share the same s, every curve is the same and LA-ACIQ
is activation-weighted ACIQ (closed form ``c * scale_i`` with the s-weighted fit); if moreover s
is constant over j, pi is uniform and it is plain per-channel ACIQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from qfair.quant.aciq import (
    clipping_noise_gaussian,
    clipping_noise_laplace,
    fit_prior,
    optimal_clip_ratio,
    rounding_noise,
    select_prior_clip,
)
from qfair.quant.rtn import check_bits, check_weight, compute_dtype

NORMALIZATIONS = ("signal", "energy", "none")
OBJECTIVES = ("weighted", "minimax")
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def _check_moments(s: torch.Tensor, w: torch.Tensor, ndim: int) -> torch.Tensor:
    s = torch.as_tensor(s).to(device=w.device, dtype=compute_dtype(w))
    if s.ndim != ndim or s.shape[-1] != w.shape[1]:
        want = "[in_features]" if ndim == 1 else "[n_languages, in_features]"
        raise ValueError(f"second_moments must be {want} = {w.shape[1]}, got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError("second_moments must be finite and non-negative")
    return s


@dataclass(frozen=True)
class LanguageCurves:
    """Per-(language, row) ACIQ curves ``MSE_il(a)``; all fields are ``[L, out]`` float64."""

    scale: torch.Tensor  # fitted b_il (Laplace) or sigma_il (Gaussian)
    is_laplace: torch.Tensor  # which prior each curve uses
    norm: torch.Tensor  # N_il
    active: torch.Tensor  # False: the language cannot see this row (or has weight 0)
    a_star: torch.Tensor  # unconstrained per-language optimum c(P, M) * scale_il
    bits: int

    def mse(self, a: torch.Tensor) -> torch.Tensor:
        """Evaluate every curve at clips ``a`` (``[out]`` or ``[K, out]``) -> ``[(K,) L, out]``."""
        a = a.to(self.scale.dtype).unsqueeze(-2)
        clip = torch.where(
            self.is_laplace,
            clipping_noise_laplace(a, self.scale),
            clipping_noise_gaussian(a, self.scale),
        )
        return self.norm * (clip + rounding_noise(a, self.bits))


def language_curves(
    w: torch.Tensor,
    second_moments: torch.Tensor,
    bits: int,
    prior: str = "laplace",
    normalize: str = "signal",
) -> LanguageCurves:
    """Fit the per-language effective-distribution priors of every row (module docstring)."""
    check_weight(w)
    bits = check_bits(bits)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    s = _check_moments(second_moments, w, 2)
    x = w.to(compute_dtype(w))
    out_f = w.shape[0]
    f64 = {"dtype": torch.float64, "device": w.device}
    scale, is_lap = torch.zeros(len(s), out_f, **f64), torch.ones(len(s), out_f, **f64).bool()
    norm, active = torch.zeros(len(s), out_f, **f64), torch.zeros_like(is_lap)
    for lang, s_l in enumerate(s):  # loop over languages (few), vectorised over rows/columns
        energy = float(s_l.sum())
        if energy <= 0.0:
            continue  # a language that never reaches this layer feels no error from it
        pi = s_l / energy
        lap, sc = fit_prior(x, bits, prior, pi)
        scale[lang], is_lap[lang] = sc.double(), lap
        signal = (x.square() @ pi).double()  # = sum_j s_j w_ij^2 / S_l
        if normalize == "signal":
            norm[lang] = torch.where(signal > 0, 1.0 / signal.clamp(min=1e-300), 0.0)
        else:
            norm[lang] = energy if normalize == "none" else 1.0
        active[lang] = signal > 0  # zero output power: the row is invisible to this language
    c_lap, c_gau = optimal_clip_ratio("laplace", bits), optimal_clip_ratio("gaussian", bits)
    a_star = torch.where(is_lap, c_lap * scale, c_gau * scale)
    return LanguageCurves(scale, is_lap, norm, active, a_star, bits)


def laaciq_clip(
    w: torch.Tensor,
    second_moments: torch.Tensor,
    bits: int,
    prior: str = "laplace",
    language_weights: torch.Tensor | None = None,
    objective: str = "weighted",
    normalize: str = "signal",
    n_iter: int = 64,
) -> torch.Tensor:
    """One LA-ACIQ clip per output row, shared by all languages.

    Args:
        w: weight ``[out_features, in_features]``.
        second_moments: ``[n_languages, in_features]`` activation second moments ``E_l[x_j^2]``.
        bits: integer bit width in [2, 8].
        prior: ``"laplace"``, ``"gaussian"`` or ``"mix"``.
        language_weights: non-negative ``[n_languages]`` (None: uniform).  For ``"minimax"``
            they only select the languages (weight > 0) whose worst case is minimised.
        objective: ``"weighted"`` (weighted sum of per-language MSE) or ``"minimax"``.
        normalize: how per-language MSEs are scaled before combining (module docstring).
        n_iter: golden-section iterations (each shrinks the bracket by 0.618).

    Returns:
        ``[out_features]`` clips (float32, float64 for float64 ``w``) for
        ``quantize_rtn(w, bits, "channel", clip=...)``.  Rows no language sees get their absmax.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    curves = language_curves(w, second_moments, bits, prior, normalize)
    n_lang = curves.scale.shape[0]
    if language_weights is None:
        lam = torch.ones(n_lang, dtype=torch.float64, device=w.device)
    else:
        lam = torch.as_tensor(language_weights).to(device=w.device, dtype=torch.float64)
        if lam.shape != (n_lang,) or not bool(torch.isfinite(lam).all()):
            raise ValueError(f"language_weights must be finite with shape ({n_lang},)")
        if bool((lam < 0).any()) or float(lam.sum()) <= 0.0:
            raise ValueError("language_weights must be non-negative with a positive sum")
    active = curves.active & (lam > 0).unsqueeze(-1)

    def objective_fn(a: torch.Tensor) -> torch.Tensor:
        vals = curves.mse(a)
        if objective == "weighted":
            return (lam.unsqueeze(-1) * torch.where(active, vals, 0.0)).sum(-2)
        return torch.where(active, vals, -math.inf).amax(-2)

    # Convex objective: its minimiser lies between the extreme per-language optima.
    lo = torch.where(active, curves.a_star, math.inf).amin(0)
    hi = torch.where(active, curves.a_star, -math.inf).amax(0)
    seen = active.any(0)
    lo, hi = torch.where(seen, lo, 0.0), torch.where(seen, hi, 0.0)
    for _ in range(n_iter):
        x1, x2 = hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo)
        keep_left = objective_fn(x1) <= objective_fn(x2)
        lo, hi = torch.where(keep_left, lo, x1), torch.where(keep_left, x2, hi)
    absmax = w.abs().amax(1).double()
    clip = torch.where(seen, torch.minimum((lo + hi) / 2, absmax), absmax)
    return clip.to(compute_dtype(w))


def activation_weighted_aciq_clip(
    w: torch.Tensor, second_moments_1d: torch.Tensor, bits: int, prior: str = "laplace"
) -> torch.Tensor:
    """Per-row ACIQ clip fitted to the activation-weighted weight distribution (one language).

    Closed form ``min(c(P, bits) * scale_i, absmax_i)`` with ``scale_i`` the ``s / sum(s)``
    weighted fit; equals ``laaciq_clip`` when every language has these second moments.
    """
    check_weight(w)
    bits = check_bits(bits)
    s = _check_moments(second_moments_1d, w, 1)
    if float(s.sum()) <= 0.0:
        raise ValueError("second_moments must have a positive sum")
    return select_prior_clip(w.to(s.dtype), bits, prior, s / s.sum())
