"""Weight-and-activation quantization (EXP-035) and the outlier fixes before it (EXP-038).

``w{W}a{A}-{tensor|token}``: every target Linear's weight on the RTN per-channel symmetric grid
at ``W`` bits and its input on the activation grid at ``A`` bits (``16``: left in full precision),
the input's range per tensor (static, the absmax over every language's calibration text) or per
token (dynamic). ``smoothquant-a<alpha>-...`` and ``hadamard-...`` first apply their exact input
transform (qfair.quant.activations). Inputs are quantized by forward pre-hooks that the snapshot
removes when it restores the weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from qfair.quant.activations import (
    fake_quantize_inputs,
    hadamard_rotation,
    smoothing_scales,
)
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    WeightSnapshot,
    bit_width,
    number,
    register,
)
from qfair.quant.rtn import quantize_rtn

FULL_PRECISION = 16  # the width that means "not quantized"


@dataclass(frozen=True)
class InputTransform:
    """``y = (W T)(T^-1 x)``: the new weight, and how to map an input (row vectors, last axis)."""

    weight: torch.Tensor  # W T
    scale: torch.Tensor | None = None  # T = diag(scale): inputs are divided by it
    rotation: torch.Tensor | None = None  # T = R orthonormal: inputs are multiplied by R
    static_range: float | None = None  # absmax of T^-1 x on the calibration text

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = x / self.scale.to(x.device, x.dtype)
        if self.rotation is not None:
            x = x @ self.rotation.to(x.device, x.dtype)
        return x


def _width(text: str) -> int | None:
    return None if number(text, "bits") == FULL_PRECISION else bit_width(text)


@register
@dataclass(frozen=True)
class ActivationQuant(CompressionMethod):
    """``w{2..8|16}a{2..8|16}-{tensor|token}``: W-bit weights, A-bit inputs (module docstring)."""

    weight_bits: int | None
    activation_bits: int | None
    scope: str  # tensor: static range from calibration | token: dynamic per-token range
    family: ClassVar[str] = "actquant"
    pattern: ClassVar[str] = r"w(\d+)a(\d+)-(tensor|token)"
    group_size: ClassVar[None] = None

    @classmethod
    def fields(cls, weight: str, activation: str, scope: str) -> dict:
        fields = {"weight_bits": _width(weight), "activation_bits": _width(activation), "scope": scope}
        if fields["weight_bits"] is None and fields["activation_bits"] is None:
            raise ValueError("w16a16 compresses nothing")
        return fields

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> ActivationQuant:
        return cls(name, **cls.fields(match[1], match[2], match[3]))

    @property
    def bits(self) -> int:
        """The activation width (the curves' x axis; the weight width is in the granularity label)."""
        return self.activation_bits or FULL_PRECISION

    @property
    def granularity_label(self) -> str:
        return f"{self.scope}-w{self.weight_bits or FULL_PRECISION}"

    @property
    def needs_input_ranges(self) -> bool:
        """Whether :meth:`apply` needs the calibration's input absmax (a static range; smoothing)."""
        return self.scope == "tensor"

    def transform(self, weight: torch.Tensor, absmax: torch.Tensor | None) -> InputTransform:
        """No transform: the weight as is; the static range is the largest input absmax."""
        return InputTransform(weight, static_range=None if absmax is None else float(absmax.max()))

    @torch.no_grad()
    def apply(self, snapshot: WeightSnapshot, calibration: Calibration | None = None,
              settings: MethodSettings | None = None) -> None:
        """Rewrite every weight (transformed, then quantized) and hook every input."""
        snapshot.remove_hooks()
        ranges: dict[str, torch.Tensor | None] = dict.fromkeys(snapshot.linears)
        if self.needs_input_ranges:
            if calibration is None:
                raise ValueError(f"config {self.name!r} needs calibration statistics (input ranges)")
            absmax = calibration.require("absmax", self.name)
            # The static range must hold for every language: the maximum over all of them.
            ranges = {name: absmax[name].amax(0) for name in snapshot.linears}
        transforms = {name: self.transform(snapshot.weights[name], ranges[name]) for name in snapshot.linears}

        def weight(name: str, original: torch.Tensor) -> torch.Tensor:
            new = transforms[name].weight.to(original.dtype)
            if self.weight_bits is None:
                return new
            return quantize_rtn(new, self.weight_bits, "channel")

        self.rewrite(snapshot, weight)
        for name, linear in snapshot.linears.items():
            snapshot.add_hook(linear.register_forward_pre_hook(self.input_hook(transforms[name])))

    def input_hook(self, transform: InputTransform):
        bits = self.activation_bits
        static = transform.static_range if self.scope == "tensor" else None

        def quantize_input(module: torch.nn.Module, args: tuple) -> tuple:
            x = transform.inputs(args[0])
            if bits is not None:
                x = fake_quantize_inputs(x, bits, static)
            return (x, *args[1:])
        return quantize_input


@register
@dataclass(frozen=True)
class SmoothQuant(ActivationQuant):
    """``smoothquant-a<alpha>-w{W}a{A}-{tensor|token}``: SmoothQuant's scales (alpha in [0, 1], as
    written by ``%g``: a0.5), computed from every language's input absmax, before W/A quantization."""

    alpha: float = 0.5
    family: ClassVar[str] = "smoothquant"
    pattern: ClassVar[str] = r"smoothquant-a([0-9.]+)-w(\d+)a(\d+)-(tensor|token)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> SmoothQuant:
        try:
            alpha = float(match[1])
        except ValueError:
            raise ValueError(f"alpha {match[1]!r} is not a number") from None
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha {alpha:g} outside [0, 1]")
        if f"{alpha:g}" != match[1]:
            raise ValueError(f"alpha must be written {alpha:g}, not {match[1]!r}")
        return cls(name, **cls.fields(match[2], match[3], match[4]), alpha=alpha)

    @property
    def needs_input_ranges(self) -> bool:
        return True  # the smoothing scales are computed from the input absmax

    def transform(self, weight: torch.Tensor, absmax: torch.Tensor | None) -> InputTransform:
        scale = smoothing_scales(absmax, weight, self.alpha)
        smoothed = (weight.double() * scale).to(weight.dtype)
        return InputTransform(smoothed, scale=scale.float(),
                              static_range=float((absmax.double() / scale.cpu()).max()))


@register
@dataclass(frozen=True)
class HadamardRotation(ActivationQuant):
    """``hadamard-w{W}a{A}-token``: inputs rotated by a block-diagonal Hadamard matrix first (QuaRot).

    Per token only: a static range would need the absmax of the rotated inputs, which the
    calibration's per-channel maxima do not determine (QuaRot quantizes activations per token too).
    """

    family: ClassVar[str] = "hadamard"
    pattern: ClassVar[str] = r"hadamard-w(\d+)a(\d+)-(tensor|token)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> HadamardRotation:
        if match[3] != "token":
            raise ValueError("the Hadamard rotation is defined with per-token (dynamic) input ranges only")
        return cls(name, **cls.fields(match[1], match[2], match[3]))

    def transform(self, weight: torch.Tensor, absmax: torch.Tensor | None) -> InputTransform:
        rotation = hadamard_rotation(weight.shape[1]).to(weight.device)
        rotated = (weight.double() @ rotation).to(weight.dtype)
        return InputTransform(rotated, rotation=rotation.float())
