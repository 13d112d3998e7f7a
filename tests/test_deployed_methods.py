"""The deployed quantizers against their definitions: AWQ, HQQ, activation quantization,
SmoothQuant and the Hadamard rotation (qfair.quant.awq, qfair.quant.activations, methods)."""

from __future__ import annotations

import pytest
import torch

from qfair.models.linears import target_linears
from qfair.quant.activations import (
    fake_quantize_inputs,
    hadamard_block,
    hadamard_rotation,
    smoothing_scales,
)
from qfair.quant.awq import awq_quantize, awq_scales
from qfair.quant.configs import parse_config
from qfair.quant.gptq import layer_error
from qfair.quant.methods import (
    ActivationQuant,
    Calibration,
    HadamardRotation,
    SmoothQuant,
    WeightSnapshot,
)
from qfair.quant.rtn import quantize_rtn


def _problem(seed: int, out_features: int = 32, in_features: int = 64, tokens: int = 512):
    """A weight and inputs with a few outlier channels (as transformer layer inputs have)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=g, dtype=torch.float64)
    x = torch.randn(tokens, in_features, generator=g, dtype=torch.float64)
    x[:, :3] *= 20  # outlier channels
    return w, x


# --- AWQ -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("bits", "granularity", "group_size"), [(3, "channel", None), (4, "group", 16)])
def test_awq_is_never_worse_than_rtn_on_its_objective(seed, bits, granularity, group_size) -> None:
    w, x = _problem(seed)
    hessian = x.T @ x / len(x)
    rtn = quantize_rtn(w, bits, granularity, group_size, symmetric=False)
    awq, ratio = awq_quantize(w, x.abs().mean(0), hessian, bits, granularity, group_size)
    assert layer_error(w, awq, hessian) <= layer_error(w, rtn, hessian)
    assert 0 <= ratio < 1
    if ratio == 0:  # the ratio-0 point of the grid is plain RTN
        torch.testing.assert_close(awq, rtn, rtol=0, atol=1e-12)


def test_awq_searches_the_reference_grid_and_helps_with_outlier_channels() -> None:
    w, x = _problem(0)
    hessian = x.T @ x / len(x)
    magnitude = x.abs().mean(0)
    errors = []
    for step in range(20):  # the reference's grid, by brute force
        s = awq_scales(magnitude, step / 20)
        q = quantize_rtn(w * s, 3, "group", 16, symmetric=False) / s
        errors.append(layer_error(w, q, hessian))
    awq, ratio = awq_quantize(w, magnitude, hessian, 3, "group", 16)
    assert ratio == errors.index(min(errors)) / 20
    assert layer_error(w, awq, hessian) == pytest.approx(min(errors), rel=1e-12)
    assert min(errors) < errors[0]  # with outlier channels, scaling beats RTN
    s = awq_scales(magnitude, 0.5)
    assert float(s.max() * s.min()) == pytest.approx(1.0)  # normalised by sqrt(max * min)


# --- HQQ -----------------------------------------------------------------------------------------


def test_hqq_grid_shape_dtype_and_determinism() -> None:
    pytest.importorskip("hqq")
    w, _ = _problem(1)
    w = w.float()
    config = parse_config("hqq-w3-g16")
    first = config.compress_weight("layer", w, None, None)
    again = config.compress_weight("layer", w, None, None)
    assert first.shape == w.shape and first.dtype == w.dtype and torch.equal(first, again)
    groups = first.reshape(w.shape[0], -1, 16)
    assert max(len(torch.unique(group)) for row in groups for group in row) <= 2**3
    # HQQ optimises its zero point for the weight error: no worse than min-max RTN on it
    rtn = quantize_rtn(w, 3, "group", 16, symmetric=False)
    assert float((first - w).abs().pow(0.7).sum()) <= float((rtn - w).abs().pow(0.7).sum())


# --- activation quantization ---------------------------------------------------------------------


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_per_token_activation_grid(bits: int) -> None:
    _, x = _problem(2)
    q = fake_quantize_inputs(x.float(), bits)
    levels = 2 ** (bits - 1) - 1
    step = x.float().abs().amax(-1, keepdim=True) / levels
    codes = q / step
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-3)
    assert float(codes.abs().max()) <= levels + 1e-3
    assert max(len(torch.unique(row)) for row in q) <= 2 * levels + 1
    assert float((q - x.float()).abs().max()) <= float(step.max()) / 2 + 1e-5
    torch.testing.assert_close(fake_quantize_inputs(q, bits), q)  # idempotent: the extreme is on the grid


def test_static_activation_range_clips_beyond_it() -> None:
    x = torch.tensor([[0.5, -1.0, 3.0, -7.0]])
    q = fake_quantize_inputs(x, 4, static_range=1.4)
    assert float(q.max()) == pytest.approx(1.4) and float(q.min()) == pytest.approx(-1.4)
    assert fake_quantize_inputs(torch.zeros(2, 3), 4).abs().sum() == 0  # absmax 0: zeros, no NaN


def test_bad_activation_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="activation bits 1"):
        fake_quantize_inputs(torch.ones(2, 2), 1)


# --- transforms: exact in full precision --------------------------------------------------------


@pytest.mark.parametrize("width", [64, 256, 768, 3072])
def test_hadamard_rotation_is_orthonormal_block_diagonal(width: int) -> None:
    rotation = hadamard_rotation(width)
    identity = torch.eye(width, dtype=torch.float64)
    torch.testing.assert_close(rotation @ rotation.T, identity, rtol=0, atol=1e-12)
    block = hadamard_block(width)
    assert block == {64: 64, 256: 256, 768: 256, 3072: 1024}[width]
    if block < width:  # blocks of a Hadamard matrix on the diagonal, zeros elsewhere
        assert float(rotation[:block, block:].abs().sum()) == 0
    with pytest.raises(ValueError, match="odd"):
        hadamard_rotation(63)


def test_smoothing_scales_follow_the_reference_formula() -> None:
    w, x = _problem(3)
    absmax = x.abs().amax(0)
    s = smoothing_scales(absmax, w, 0.5)
    expected = (absmax.pow(0.5) / w.abs().amax(0).pow(0.5)).clamp(min=1e-5)
    torch.testing.assert_close(s, expected)
    with pytest.raises(ValueError, match=r"alpha 1\.5"):
        smoothing_scales(absmax, w, 1.5)


@pytest.fixture
def model(make_bloom):
    return make_bloom(seed=5)


def _calibration(model, tokens: torch.Tensor) -> Calibration:
    """Input absmax of every target layer on ``tokens`` (one language)."""
    linears = target_linears(model, ["lm_head"])
    maxima = {}

    def hook(name):
        def record(module, args):
            maxima[name] = args[0].reshape(-1, args[0].shape[-1]).abs().amax(0).double()[None]
        return record

    handles = [lin.register_forward_pre_hook(hook(n)) for n, lin in linears.items()]
    with torch.no_grad():
        model(input_ids=tokens)
    for handle in handles:
        handle.remove()
    moments = {n: torch.ones_like(m) for n, m in maxima.items()}
    return Calibration(["xx"], moments, torch.ones(1, dtype=torch.float64), absmax=maxima)


@pytest.mark.parametrize("method", [
    HadamardRotation("hadamard-w16a16-token", weight_bits=None, activation_bits=None, scope="token"),
    SmoothQuant("smoothquant-a0.5-w16a16-tensor", weight_bits=None, activation_bits=None, scope="tensor",
                alpha=0.5),
    SmoothQuant("smoothquant-a0.9-w16a16-tensor", weight_bits=None, activation_bits=None, scope="tensor",
                alpha=0.9),
])
def test_transforms_leave_full_precision_outputs_unchanged(method, model) -> None:
    """Rotation and smoothing alone (no quantization): the model's logits to 1e-5."""
    model = model.double()
    tokens = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(input_ids=tokens).logits
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    method.apply(snapshot, _calibration(model, tokens))
    assert snapshot.hooks and not torch.equal(next(iter(snapshot.linears.values())).weight,
                                              next(iter(snapshot.weights.values())))
    with torch.no_grad():
        after = model(input_ids=tokens).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    snapshot.restore()
    assert not snapshot.hooks
    with torch.no_grad():
        assert torch.equal(model(input_ids=tokens).logits, before)


@pytest.mark.parametrize("name", ["w4a4-token", "w8a8-tensor", "smoothquant-a0.5-w4a8-tensor",
                                  "hadamard-w4a4-token", "w16a4-token"])
def test_activation_configs_are_deterministic_and_restorable(name, model) -> None:
    tokens = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(1))
    calibration = _calibration(model, tokens)
    with torch.no_grad():
        before = model(input_ids=tokens).logits
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    config = parse_config(name)
    assert isinstance(config, ActivationQuant)
    config.apply(snapshot, calibration)
    with torch.no_grad():
        once = model(input_ids=tokens).logits
    config.apply(snapshot, calibration)  # from the snapshot again: the hooks are not stacked
    assert len(snapshot.hooks) == len(snapshot.linears)
    with torch.no_grad():
        twice = model(input_ids=tokens).logits
    assert torch.equal(once, twice) and torch.isfinite(once).all()
    assert not torch.equal(once, before)  # the quantizers act
    snapshot.restore()
    with torch.no_grad():
        assert torch.equal(model(input_ids=tokens).logits, before)


def test_static_ranges_need_calibration(model) -> None:
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    with pytest.raises(ValueError, match="w8a8-tensor"):
        parse_config("w8a8-tensor").apply(snapshot, None)
    calibration = Calibration(["xx"], {}, torch.ones(1))
    with pytest.raises(ValueError, match="absmax"):
        parse_config("w8a8-tensor").apply(snapshot, calibration)
    with pytest.raises(ValueError, match=r"smoothquant-a0\.5-w4a8-token"):  # its scales need the absmax
        parse_config("smoothquant-a0.5-w4a8-token").apply(snapshot, None)


@pytest.mark.parametrize("name", ["w4a4-token", "w16a4-token", "hadamard-w4a4-token"])
def test_per_token_configs_run_without_calibration_as_with_it(model, name) -> None:
    """Per-token ranges are dynamic: the calibration's absmax is not read (Track B applies these
    without a calibration pass)."""
    tokens = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(1))
    calibration = _calibration(model, tokens)
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    config = parse_config(name)
    assert not config.needs_input_ranges
    try:
        config.apply(snapshot, calibration)
        with torch.no_grad():
            calibrated = model(input_ids=tokens).logits
        config.apply(snapshot, None)
        with torch.no_grad():
            uncalibrated = model(input_ids=tokens).logits
    finally:
        snapshot.restore()
    assert torch.equal(calibrated, uncalibrated)


@pytest.mark.parametrize(("name", "message"), [
    ("w1a8-token", "bits 1"), ("w4a9-token", "bits 9"), ("smoothquant-a1.5-w4a8-token", r"alpha 1\.5"),
    ("smoothquant-a-0.1-w4a8-token", "unknown compression config"),
    ("hadamard-w4a4-tensor", "per-token"), ("hqq-w5-g64", "hqq quantizes"),
    ("awq-w4-g128-english", "unknown compression config"), ("w16a16-token", "compresses nothing"),
])
def test_bad_configs_are_named(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(name)
