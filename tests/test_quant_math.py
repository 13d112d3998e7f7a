"""Property and reference tests for qfair.quant: RTN, ACIQ, LA-ACIQ, MSE grid, pruning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfair.quant import (
    aciq_clip,
    activation_weighted_aciq_clip,
    clipping_noise_gaussian,
    clipping_noise_laplace,
    expected_mse,
    expected_mse_gaussian,
    expected_mse_laplace,
    laaciq_clip,
    language_curves,
    mse_grid_clip,
    optimal_clip,
    optimal_clip_ratio,
    prune_magnitude,
    prune_magnitude_global,
    prune_wanda,
    quantize_rtn,
    rounding_noise,
)

DISTS = ("gaussian", "student_t2", "laplace")


def sample(dist: str, shape: tuple[int, ...], seed: int, dtype=torch.float32) -> torch.Tensor:
    """Gaussian, Student-t(df=2) or Laplace samples from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    if dist == "gaussian":
        x = torch.randn(shape, generator=g, dtype=torch.float64)
    elif dist == "laplace":  # inverse CDF of Laplace(0, 1)
        u = torch.rand(shape, generator=g, dtype=torch.float64) - 0.5
        x = -torch.sign(u) * torch.log1p(-2 * u.abs())
    else:  # t_2 = Z / sqrt(chi2_2 / 2) and chi2_2 / 2 = -log(U)
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        u = torch.rand(shape, generator=g, dtype=torch.float64).clamp(min=1e-300)
        x = z / torch.sqrt(-torch.log(u))
    return x.to(dtype)


def units_of(w: torch.Tensor, granularity: str, group_size: int | None) -> torch.Tensor:
    out_f, in_f = w.shape
    if granularity == "tensor":
        return w.reshape(1, -1)
    if granularity == "channel":
        return w
    return w.reshape(out_f * (in_f // group_size), group_size)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).square().mean())


weights_st = st.tuples(
    st.sampled_from(DISTS),
    st.sampled_from([(4, 32), (7, 64), (16, 128)]),
    st.integers(0, 2**31 - 1),
    st.sampled_from([torch.float32, torch.float64]),
)
gran_st = st.sampled_from([("tensor", None), ("channel", None), ("group", 8), ("group", 32)])


# ----------------------------------------------------------------------------- RTN


@settings(max_examples=60, deadline=None)
@given(weights_st, st.integers(2, 8), gran_st, st.booleans())
def test_rtn_levels_shape_and_idempotence(wspec, bits, gran, symmetric):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    granularity, group_size = gran
    q = quantize_rtn(w, bits, granularity, group_size, symmetric)
    assert q.shape == w.shape and q.dtype == w.dtype and bool(torch.isfinite(q).all())
    for unit in units_of(q, granularity, group_size):
        assert unit.unique().numel() <= 2**bits
    qq = quantize_rtn(q, bits, granularity, group_size, symmetric)
    if symmetric:  # power-of-two scale: exactly idempotent
        assert torch.equal(qq, q)
    else:  # the integer zero point shifts the re-fitted min-max range: at most one step moves
        for unit, again in zip(units_of(q, granularity, group_size), units_of(qq, granularity, group_size),
                               strict=True):
            step = float(unit.max().clamp(min=0) - unit.min().clamp(max=0)) / (2**bits - 1)
            assert float((again - unit).abs().max()) <= step * 1.001 + 1e-12


@settings(max_examples=40, deadline=None)
@given(weights_st, gran_st, st.booleans())
def test_rtn_mse_does_not_grow_with_bits(wspec, gran, symmetric):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    errs = [mse(quantize_rtn(w, b, *gran, symmetric=symmetric), w) for b in range(2, 9)]
    for lo_bits, hi_bits in itertools.pairwise(errs):
        assert hi_bits <= lo_bits * (1 + 1e-9) + 1e-15
    assert errs[-1] < errs[0]


def test_rtn_symmetric_grid_reproduces_extreme_and_uses_2_pow_b_levels():
    w = sample("student_t2", (32, 256), 1)
    for bits in range(2, 9):
        q = quantize_rtn(w, bits, "channel")
        # the largest-magnitude weight of each row is reproduced exactly
        assert torch.equal(q.abs().amax(1), w.abs().amax(1))
        step = (w.abs().amax(1, keepdim=True) / 2 ** (bits - 1)).double()
        k = q.double() / step
        torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-5)  # float32 products
        assert int((k.round().abs() <= 2 ** (bits - 1)).all()) == 1
    # with 4 bits and enough spread, all 16 levels of a row get used
    assert quantize_rtn(sample("gaussian", (1, 4096), 2), 4).unique().numel() == 16


def test_rtn_zero_rows_clip_and_dtypes():
    w = sample("gaussian", (6, 64), 3)
    w[2] = 0.0
    for gran, gs in [("tensor", None), ("channel", None), ("group", 16)]:
        for sym in (True, False):
            q = quantize_rtn(w, 4, gran, gs, sym)
            assert bool(torch.isfinite(q).all()) and bool((q[2] == 0).all())
    assert bool((quantize_rtn(torch.zeros(3, 8), 3) == 0).all())
    assert bool((quantize_rtn(w, 4, clip=0.0) == 0).all())
    # per-row clip: nothing exceeds it; a clip above absmax changes the grid
    clip = torch.full((6,), 0.5)
    q = quantize_rtn(w, 4, "channel", clip=clip)
    assert float(q.abs().max()) <= 0.5 + 1e-7
    assert not torch.equal(quantize_rtn(w, 4, clip=10.0), quantize_rtn(w, 4))
    torch.testing.assert_close(
        quantize_rtn(w, 4, "group", 16, clip=clip),
        quantize_rtn(w, 4, "group", 16, clip=clip[:, None].expand(6, 4)),
    )
    qb = quantize_rtn(w.bfloat16(), 4)
    assert qb.dtype == torch.bfloat16 and bool(torch.isfinite(qb).all())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bits": 1}, "bits"),
        ({"bits": 9}, "bits"),
        ({"bits": 4.0}, "bits"),
        ({"bits": True}, "bits"),
        ({"bits": 4, "granularity": "group", "group_size": 10}, "group_size"),
        ({"bits": 4, "granularity": "group"}, "group_size"),
        ({"bits": 4, "granularity": "row"}, "granularity"),
        ({"bits": 4, "clip": torch.ones(5)}, "clip"),
        ({"bits": 4, "clip": -1.0}, "clip"),
    ],
)
def test_rtn_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        quantize_rtn(torch.randn(6, 64), **kwargs)


# ----------------------------------------------------------------------------- ACIQ analytics

PAPER = {
    "laplace": {2: 2.83, 3: 3.89, 4: 5.03},
    "gaussian": {2: 1.71, 3: 2.15, 4: 2.55},
}


@pytest.mark.parametrize("prior", ["laplace", "gaussian"])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_aciq_constants_match_paper(prior, bits):
    ratio = optimal_clip_ratio(prior, bits)
    assert ratio == pytest.approx(PAPER[prior][bits], rel=0.01)
    f = lambda a: expected_mse(prior, a, 1.0, bits)  # noqa: E731
    assert f(ratio) < f(ratio * 0.98) and f(ratio) < f(ratio * 1.02)
    assert optimal_clip(prior, 3.0, bits) == pytest.approx(3.0 * ratio)


def test_aciq_constants_grow_with_bits_and_vectorise():
    for prior in ("laplace", "gaussian"):
        ratios = [optimal_clip_ratio(prior, b) for b in range(1, 9)]
        assert all(b > a for a, b in itertools.pairwise(ratios))
    alpha, scale = np.array([0.5, 1.0, 4.0]), np.array([1.0, 0.3, 2.0])
    for fn in (expected_mse_laplace, expected_mse_gaussian):
        vec = fn(alpha, scale, 4)
        ref = [fn(float(a), float(s), 4) for a, s in zip(alpha, scale, strict=True)]
        np.testing.assert_allclose(vec, ref, rtol=1e-12)
        tvec = fn(torch.tensor(alpha), torch.tensor(scale), 4)
        np.testing.assert_allclose(tvec.numpy(), ref, rtol=1e-12)
    # homogeneity: D(k a; k s) = k^2 D(a; s)
    assert expected_mse_gaussian(6.0, 2.0, 3) == pytest.approx(
        4 * expected_mse_gaussian(3.0, 1.0, 3)
    )
    assert clipping_noise_gaussian(1.0, 0.0) == 0.0 and clipping_noise_laplace(1.0, 0.0) == 0.0


N_MC = 2_000_000


@pytest.fixture(scope="module")
def mc_samples():
    return {"laplace": sample("laplace", (N_MC,), 11), "gaussian": sample("gaussian", (N_MC,), 12)}


def paper_quantizer(x: torch.Tensor, alpha: float, bits: int) -> torch.Tensor:
    """ACIQ's grid: clip to [-alpha, alpha], 2^bits equal bins, reconstruct at bin centres."""
    step = 2 * alpha / 2**bits
    k = torch.clamp(torch.floor((x.double() + alpha) / step), 0, 2**bits - 1)
    return -alpha + (k + 0.5) * step


@pytest.mark.parametrize("prior", ["laplace", "gaussian"])
def test_aciq_terms_match_monte_carlo(mc_samples, prior):
    x = mc_samples[prior].double()
    clip_fn = clipping_noise_laplace if prior == "laplace" else clipping_noise_gaussian
    for alpha in (0.5, 1.0, 2.0, 3.0):
        mc = float((x.abs() - alpha).clamp(min=0).square().mean())
        assert mc == pytest.approx(clip_fn(alpha, 1.0), rel=0.05)
    for bits in range(3, 9):
        for frac in (0.5, 1.0):
            alpha = frac * optimal_clip_ratio(prior, bits)
            inside = x.abs() <= alpha
            mc = float(((x - paper_quantizer(x, alpha, bits)).square() * inside).mean())
            assert mc == pytest.approx(
                rounding_noise(alpha, bits) * float(inside.double().mean()), rel=0.05
            )


@pytest.mark.parametrize("prior", ["laplace", "gaussian"])
@pytest.mark.parametrize("bits", [7, 8])
def test_aciq_total_mse_matches_monte_carlo(mc_samples, prior, bits):
    x = mc_samples[prior].double()
    # The model is a high-resolution approximation: below ~7 bits, or well below the optimal
    # clip, it underestimates (clipped values land on a bin centre, not on +-alpha).
    for frac in (1.0, 1.5):
        alpha = frac * optimal_clip_ratio(prior, bits)
        mc = float((x - paper_quantizer(x, alpha, bits)).square().mean())
        assert mc == pytest.approx(expected_mse(prior, alpha, 1.0, bits), rel=0.05)


# ----------------------------------------------------------------------------- clip selection


def test_aciq_clip_fits_and_mix_picks_the_true_prior():
    w = torch.cat([sample("laplace", (8, 4096), 5), sample("gaussian", (8, 4096), 6)]) * 0.02
    lap, gau, mix = (aciq_clip(w, 4, p) for p in ("laplace", "gaussian", "mix"))
    dev = w.double() - w.double().mean(1, keepdim=True)
    b, sigma = dev.abs().mean(1), dev.square().mean(1).sqrt()
    absmax = w.abs().amax(1).double()
    torch.testing.assert_close(lap.double(), torch.minimum(5.0286 * b, absmax), rtol=1e-4, atol=0)
    torch.testing.assert_close(
        gau.double(), torch.minimum(2.5591 * sigma, absmax), rtol=1e-4, atol=0
    )
    assert torch.equal(mix[:8], lap[:8]) and torch.equal(mix[8:], gau[8:])
    assert aciq_clip(w, 4, "laplace", "tensor").shape == ()
    assert aciq_clip(w, 4, "gaussian", "group", 512).shape == (16, 8)
    assert bool((aciq_clip(torch.zeros(3, 16), 4, "mix") == 0).all())
    # on Laplace rows the ACIQ clip beats absmax at 3 bits (not on t_2 rows: there the rare
    # huge weights dominate the MSE and absmax, which keeps them, wins)
    t = sample("laplace", (16, 1024), 7)
    assert mse(quantize_rtn(t, 3, clip=aciq_clip(t, 3, "mix")), t) < mse(quantize_rtn(t, 3), t)


@settings(max_examples=15, deadline=None)
@given(weights_st, st.integers(2, 6), gran_st, st.booleans())
def test_mse_grid_clip_is_the_grid_argmin(wspec, bits, gran, symmetric):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    granularity, group_size = gran
    n_grid = 9
    clip = mse_grid_clip(w, bits, granularity, n_grid, symmetric, group_size=group_size)
    units = units_of(w, granularity, group_size)
    best = units_of(quantize_rtn(w, bits, granularity, group_size, symmetric, clip), *gran)
    # reference: quantize each unit on its own at every grid ratio
    for u, bu in zip(units, best, strict=True):
        ref = min(
            mse(quantize_rtn(u[None], bits, "tensor", None, symmetric, r * u.abs().max()), u[None])
            for r in np.linspace(1.0, 0.2, n_grid)
        )
        assert mse(bu[None], u[None]) <= ref * (1 + 1e-5) + 1e-12


# ----------------------------------------------------------------------------- LA-ACIQ


@settings(max_examples=20, deadline=None)
@given(
    weights_st,
    st.integers(2, 8),
    st.sampled_from(["laplace", "gaussian", "mix"]),
    st.sampled_from(["weighted", "minimax"]),
    st.sampled_from(["signal", "energy", "none"]),
    st.integers(1, 4),
)
def test_laaciq_identical_statistics_reduce_to_aciq(wspec, bits, prior, objective, norm, n_lang):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype) * 0.05
    s = sample("gaussian", (shape[1],), seed + 1, dtype).square() + 0.1
    lam = torch.rand(n_lang, generator=torch.Generator().manual_seed(seed)) + 0.1
    la = laaciq_clip(w, s.expand(n_lang, -1), bits, prior, lam, objective, norm)
    torch.testing.assert_close(
        la, activation_weighted_aciq_clip(w, s, bits, prior), rtol=1e-5, atol=0
    )
    const = torch.full((n_lang, shape[1]), 3.7, dtype=dtype)
    la_const = laaciq_clip(w, const, bits, prior, lam, objective, norm)
    torch.testing.assert_close(la_const, aciq_clip(w, bits, prior, "channel"), rtol=1e-5, atol=0)


def two_languages(seed: int = 0):
    """Rows whose 2nd half is 3x wider; language 0 reads the 1st half, language 1 the 2nd."""
    w = sample("laplace", (8, 512), seed) * 0.01
    w[:, 256:] *= 3
    s = torch.ones(2, 512)
    s[0, 256:] = 0.05
    s[1, :256] = 0.05
    return w, s


@pytest.mark.parametrize("prior", ["laplace", "gaussian", "mix"])
@pytest.mark.parametrize("objective", ["weighted", "minimax"])
def test_laaciq_finds_the_shared_optimum(prior, objective):
    w, s = two_languages()
    per_lang = torch.stack([activation_weighted_aciq_clip(w, s_l, 3, prior) for s_l in s])
    assert bool((per_lang[1] > 1.5 * per_lang[0]).all())  # the languages really disagree
    clip = laaciq_clip(w, s, 3, prior, objective=objective)
    assert bool((clip > per_lang[0]).all() and (clip < per_lang[1]).all())
    curves = language_curves(w, s, 3, prior)
    grid = torch.linspace(0, float(per_lang.max()) * 1.2, 4001, dtype=torch.float64)
    vals = curves.mse(grid[:, None].expand(-1, 8))  # [K, L, out]
    agg = vals.sum(1) if objective == "weighted" else vals.amax(1)
    ref = grid[agg.argmin(0)]
    torch.testing.assert_close(clip.double(), ref, rtol=0, atol=float(grid[1]) * 1.01)
    # a language with weight 0 is ignored
    only0 = laaciq_clip(w, s, 3, prior, torch.tensor([1.0, 0.0]), objective)
    torch.testing.assert_close(only0, per_lang[0], rtol=1e-5, atol=0)


def test_laaciq_edge_cases_and_validation():
    w, s = two_languages()
    w[3] = 0.0
    assert float(laaciq_clip(w, s, 4)[3]) == 0.0
    s_dead = s.clone()
    s_dead[:, :] = 0.0
    torch.testing.assert_close(laaciq_clip(w, s_dead, 4), w.abs().amax(1))
    for kwargs, field in [
        ({"bits": 1}, "bits"),
        ({"bits": 4, "prior": "cauchy"}, "prior"),
        ({"bits": 4, "objective": "median"}, "objective"),
        ({"bits": 4, "normalize": "max"}, "normalize"),
        ({"bits": 4, "language_weights": torch.tensor([1.0, -1.0])}, "language_weights"),
        ({"bits": 4, "language_weights": torch.ones(3)}, "language_weights"),
    ]:
        with pytest.raises(ValueError, match=field):
            laaciq_clip(w, s, **kwargs)
    with pytest.raises(ValueError, match="second_moments"):
        laaciq_clip(w, s[:, :10], 4)
    with pytest.raises(ValueError, match="second_moments"):
        activation_weighted_aciq_clip(w, -s[0], 4)


# ----------------------------------------------------------------------------- pruning


@settings(max_examples=40, deadline=None)
@given(weights_st, st.floats(0.0, 0.99))
def test_pruning_hits_sparsity_exactly(wspec, sparsity):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    pm = prune_magnitude(w, sparsity)
    assert int((pm == 0).sum()) == round(sparsity * w.numel())
    kept = w[pm != 0].abs()
    if 0 < kept.numel() < w.numel():  # every kept weight beats every pruned one
        assert float(kept.min()) >= float(w[pm == 0].abs().max())
    assert torch.equal(pm[pm != 0], w[pm != 0])
    norm = sample("gaussian", (shape[1],), seed + 1, dtype).abs()
    pw = prune_wanda(w, norm, sparsity)
    assert ((pw == 0).sum(1) == round(sparsity * shape[1])).all()


@settings(max_examples=25, deadline=None)
@given(weights_st, st.floats(0.0, 0.99), st.sampled_from([1.0, 2.0, 0.25]))
def test_wanda_with_uniform_norms_is_per_row_magnitude(wspec, sparsity, c):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    per_row = torch.cat([prune_magnitude(row[None], sparsity) for row in w])
    assert torch.equal(prune_wanda(w, torch.full((shape[1],), c), sparsity), per_row)


def test_global_magnitude_pruning_uses_one_threshold_for_all_tensors():
    small = torch.tensor([[0.1, -0.2], [0.3, 0.4]])
    large = torch.tensor([[5.0, -6.0, 7.0], [8.0, 9.0, 10.0]])
    pruned = prune_magnitude_global({"a": small, "b": large}, 0.4)  # round(0.4 * 10) = 4 entries
    assert torch.equal(pruned["a"], torch.zeros(2, 2))  # the small tensor loses everything
    assert torch.equal(pruned["b"], large)  # the large one nothing
    per_tensor = prune_magnitude(small, 0.4), prune_magnitude(large, 0.4)
    assert int((per_tensor[0] == 0).sum()) == 2 and int((per_tensor[1] == 0).sum()) == 2
    assert prune_magnitude_global({}, 0.5) == {}


@settings(max_examples=25, deadline=None)
@given(weights_st, st.floats(0.0, 0.99))
def test_global_magnitude_pruning_hits_sparsity_and_of_one_tensor_is_per_tensor(wspec, sparsity):
    dist, shape, seed, dtype = wspec
    w = sample(dist, shape, seed, dtype)
    v = sample("laplace", shape, seed + 1, dtype)
    assert torch.equal(prune_magnitude_global({"w": w}, sparsity)["w"], prune_magnitude(w, sparsity))
    both = prune_magnitude_global({"w": w, "v": v}, sparsity)
    assert sum(int((t == 0).sum()) for t in both.values()) == round(sparsity * 2 * w.numel())
    assert both["w"].dtype == w.dtype and both["v"].shape == v.shape


def test_pruning_ties_norms_and_validation():
    assert torch.equal(
        prune_magnitude(torch.ones(2, 3), 0.5), torch.tensor([[0.0, 0, 0], [1, 1, 1]])
    )
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    assert torch.equal(
        prune_wanda(w, torch.tensor([10.0, 1.0, 1.0, 0.1]), 0.5), w * torch.tensor([1.0, 0, 1, 0])
    )
    for bad in (1.0, -0.1, math.nan, 1.5):
        with pytest.raises(ValueError, match="sparsity"):
            prune_magnitude(w, bad)
        with pytest.raises(ValueError, match="sparsity"):
            prune_wanda(w, torch.ones(4), bad)
    with pytest.raises(ValueError, match="input_norm"):
        prune_wanda(w, torch.ones(3), 0.5)
