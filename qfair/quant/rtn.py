"""Round-to-nearest (RTN) fake quantization of 2-D Linear weights.

A weight matrix ``w`` of shape ``[out_features, in_features]`` is split into *units* that share
one quantization grid:

* ``"tensor"``  - the whole matrix is one unit;
* ``"channel"`` - one unit per output row (per-output-channel quantization);
* ``"group"``   - each row is cut into groups of ``group_size`` consecutive input columns.

Internally every granularity is the same computation on a ``[R, G, n]`` view whose last axis
holds the members of one unit, so clip-search code (``aciq.mse_grid_clip``) can reuse it.

Symmetric grid (the default).  We use the *full* signed integer range
``q in [-2^(b-1), 2^(b-1) - 1]`` (2^b levels, like int8's -128..127) with step
``delta = clip / 2^(b-1)``.  Why this grid and not the restricted ``[-(2^(b-1)-1), 2^(b-1)-1]``:

* it spends all 2^b codes (the restricted grid wastes one; at 2 bits it is only ternary);
* zero is exactly representable, so pruned / all-zero weights stay exactly zero;
* its step ``2*clip / 2^b`` is the step of ACIQ's noise model (``clip^2 / (3 * 4^b)``), so
  ACIQ-derived clips are optimised for the grid they are used with.

The price is one level of asymmetry: one side reaches ``clip``, the other ``clip - delta``.  We
give the long side to the sign of the unit's largest-magnitude weight (as llama.cpp's Q4_0 does)
so that with absmax scaling the extreme weight is reproduced exactly.  This also makes RTN
exactly idempotent: ``delta`` is ``clip`` divided by a power of two, which is exact in floating
point, so re-quantizing ``Q(w)`` finds the same absmax, the same sign and the same grid.

Asymmetric grid.  2^b levels ``(q - z) * delta`` with ``q in [0, 2^b - 1]``, ``delta =
(hi - lo) / (2^b - 1)`` and an *integer* zero point ``z = round(-lo / delta)`` (so that zero is
representable, as in GPTQ/AWQ kernels).  ``[lo, hi]`` is ``[min(w), max(w)]`` widened to contain
0.  A ``clip`` value ``c`` replaces the absmax ``max(-lo, hi)`` here too: the range is scaled to
``[lo, hi] * c / max(-lo, hi)``, keeping its shape (as GPTQ's MSE search does).  Clipping both
ends to ``[-c, c]`` instead would make the range symmetric, and then ``-lo / delta`` is exactly
``(2^b - 1) / 2``, a rounding tie that floating-point noise decides.

All arithmetic runs in float32 (float64 for float64 input); the result is cast back to the
input dtype.  Units whose scale is zero (all-zero units, or ``clip == 0``) dequantize to zeros.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch

GRANULARITIES = ("tensor", "channel", "group")


def check_bits(bits: int, lo: int = 2, hi: int = 8) -> int:
    """Return ``bits`` as an int, raising ``ValueError`` unless it is an integer in [lo, hi]."""
    try:
        if isinstance(bits, bool):  # bool is an int subclass; True bits is surely a bug
            raise TypeError
        value = operator.index(bits)
    except TypeError:
        raise ValueError(f"bits must be an integer in [{lo}, {hi}], got {bits!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"bits must be an integer in [{lo}, {hi}], got {bits!r}")
    return value


def compute_dtype(w: torch.Tensor) -> torch.dtype:
    """float64 for float64 input, float32 for everything else (fp16/bf16 lack the precision)."""
    return torch.float64 if w.dtype == torch.float64 else torch.float32


def check_weight(w: torch.Tensor) -> None:
    """Require a 2-D floating-point tensor (a Linear weight ``[out_features, in_features]``)."""
    if not isinstance(w, torch.Tensor) or w.ndim != 2 or not w.is_floating_point():
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must be a 2-D floating-point tensor [out, in], got {shape}")


def reshape_to_units(
    w: torch.Tensor, granularity: str, group_size: int | None = None
) -> torch.Tensor:
    """View ``w`` as ``[R, G, n]``: one quantization unit per ``(r, g)``, members on the last axis.

    ``group_size`` is only read for ``granularity="group"``; it must be a positive integer that
    divides ``in_features``.
    """
    check_weight(w)
    out_f, in_f = w.shape
    if granularity == "tensor":
        return w.reshape(1, 1, out_f * in_f)
    if granularity == "channel":
        return w.reshape(out_f, 1, in_f)
    if granularity == "group":
        if (
            isinstance(group_size, bool)
            or not isinstance(group_size, int)
            or group_size < 1
            or in_f % group_size != 0
        ):
            raise ValueError(
                f"group_size must be a positive integer dividing in_features={in_f}, "
                f"got {group_size!r}"
            )
        return w.reshape(out_f, in_f // group_size, group_size)
    raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def clip_to_units(
    clip: torch.Tensor | float | None, units: torch.Tensor, granularity: str
) -> torch.Tensor | None:
    """Broadcast a user ``clip`` to ``[R, G, 1]`` (the unit shape of ``units``).

    Accepted: a scalar / one-element tensor (same clip everywhere), one value per unit
    (``[out]`` for channel, ``[out, in // group_size]`` for group), or, for group granularity,
    one value per row (``[out]``) shared by that row's groups.
    """
    if clip is None:
        return None
    r, g, _ = units.shape
    c = torch.as_tensor(clip, dtype=units.dtype, device=units.device)
    if c.numel() == 1:
        c = c.reshape(1, 1, 1).expand(r, g, 1)
    elif c.numel() == r * g:
        c = c.reshape(r, g, 1)
    elif granularity == "group" and c.numel() == r:
        c = c.reshape(r, 1, 1).expand(r, g, 1)
    else:
        raise ValueError(
            f"clip has {c.numel()} values; {granularity!r} granularity needs 1 or {r * g}"
            + (f" (or {r}, one per row)" if granularity == "group" else "")
        )
    if not bool(torch.isfinite(c).all()) or bool((c < 0).any()):
        raise ValueError("clip must be finite and non-negative")
    return c


@dataclass(frozen=True)
class Grid:
    """One quantization grid per unit (``[R, G, 1]`` tensors): what GPTQ fixes before it rounds.

    Symmetric: ``flip`` (which side gets the extra level) and ``scale``; asymmetric: ``zero`` and
    ``scale``. :func:`round_to_grid` rounds any values of matching units onto it.
    """

    bits: int
    symmetric: bool
    scale: torch.Tensor
    flip: torch.Tensor | None = None
    zero: torch.Tensor | None = None


def unit_grid(units: torch.Tensor, bits: int, symmetric: bool = True,
              clip: torch.Tensor | None = None) -> Grid:
    """The grid of each unit (last axis) of a ``[R, G, n]`` tensor; see the module docstring.

    ``clip`` is ``None`` (absmax / min-max range) or a ``[R, G, 1]`` tensor of non-negative
    clipping values.  No validation here: callers (``quantize_rtn``) validate.
    """
    if symmetric:
        half = 2 ** (bits - 1)
        mag = units.abs()
        alpha = mag.amax(-1, keepdim=True) if clip is None else clip
        # Sign of the largest-magnitude member decides which side gets the extra level.
        sgn = torch.sign(units.gather(-1, mag.argmax(-1, keepdim=True)))
        flip = torch.where(sgn == 0, -1.0, -sgn).to(units.dtype)  # maps the extreme to -half
        scale = alpha / half  # power-of-two division: exact, which makes RTN idempotent
        return Grid(bits, True, scale, flip=flip)
    n_levels = 2**bits - 1
    lo = units.amin(-1, keepdim=True).clamp(max=0.0)
    hi = units.amax(-1, keepdim=True).clamp(min=0.0)
    if clip is not None:  # clip replaces absmax = max(-lo, hi); the range keeps its shape
        absmax = torch.maximum(-lo, hi)
        ratio = torch.where(absmax > 0, clip / torch.where(absmax > 0, absmax, 1.0), 0.0)
        lo, hi = lo * ratio, hi * ratio
    scale = (hi - lo) / n_levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.clamp(torch.round(-lo / safe), 0, n_levels)
    return Grid(bits, False, scale, zero=zero)


def round_to_grid(values: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Dequantized ``values`` (``[R, G, m]``, broadcast against the grid's ``[R, G, 1]``)."""
    safe = torch.where(grid.scale > 0, grid.scale, torch.ones_like(grid.scale))  # zero units: no 0/0
    if grid.symmetric:
        half = 2 ** (grid.bits - 1)
        q = torch.clamp(torch.round(grid.flip * values / safe), -half, half - 1)
        return grid.flip * q * grid.scale  # scale == 0 gives exact zeros
    n_levels = 2**grid.bits - 1
    q = torch.clamp(torch.round(values / safe) + grid.zero, 0, n_levels)
    return (q - grid.zero) * grid.scale


def quantize_units(
    units: torch.Tensor, bits: int, symmetric: bool = True, clip: torch.Tensor | None = None
) -> torch.Tensor:
    """Fake-quantize each unit (last axis) of a ``[R, G, n]`` tensor onto its own grid."""
    return round_to_grid(units, unit_grid(units, bits, symmetric, clip))


def quantize_rtn(
    w: torch.Tensor,
    bits: int,
    granularity: str = "channel",
    group_size: int | None = None,
    symmetric: bool = True,
    clip: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Round-to-nearest fake quantization of a Linear weight; returns the dequantized weight.

    Args:
        w: weight ``[out_features, in_features]``, any floating dtype.
        bits: integer bit width in [2, 8].
        granularity: ``"tensor"``, ``"channel"`` (per output row) or ``"group"``.
        group_size: columns per group; required for ``"group"`` (must divide ``in_features``),
            ignored otherwise.
        symmetric: signed grid ``[-2^(b-1), 2^(b-1)-1] * clip / 2^(b-1)`` if True, else a
            min-max grid with an integer zero point (module docstring).
        clip: optional clipping value(s) replacing the unit's absmax (for asymmetric grids the
            min-max range is scaled by ``clip / absmax``): scalar, or one value per unit.

    Returns:
        Tensor with the shape, dtype and device of ``w``, holding at most ``2^bits`` distinct
        values per unit.
    """
    bits = check_bits(bits)
    units = reshape_to_units(w, granularity, group_size).to(compute_dtype(w))
    c = clip_to_units(clip, units, granularity)
    return quantize_units(units, bits, symmetric, c).reshape(w.shape).to(w.dtype)
