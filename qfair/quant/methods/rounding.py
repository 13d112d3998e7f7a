"""Round-to-nearest weight quantization with three ways to choose the clipping range."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from qfair.quant.aciq import aciq_clip, mse_grid_clip
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    bit_width,
    granularity,
    label,
    register,
)
from qfair.quant.rtn import quantize_rtn


@register
@dataclass(frozen=True)
class RoundToNearest(CompressionMethod):
    """``rtn-w{2..8}-{tensor|ch|g<N>}-{sym|asym}``: absmax (sym) or min-max (asym) RTN."""

    bits: int
    granularity: str  # tensor | channel | group
    group_size: int | None = None
    symmetric: bool = True
    family = "rtn"
    pattern = r"rtn-w(\d+)-(tensor|ch|g\d+)-(sym|asym)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> RoundToNearest:
        kind, size = granularity(match[2])
        return cls(name, bit_width(match[1]), kind, size, match[3] == "sym")

    @property
    def granularity_label(self) -> str:
        return label(self.granularity, self.group_size)

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        return quantize_rtn(weight, self.bits, self.granularity, self.group_size, self.symmetric)


@register
@dataclass(frozen=True)
class Aciq(CompressionMethod):
    """``aciq-{laplace|gaussian|mix}-w{b}-{tensor|ch}``: ACIQ's analytic clip for a fitted prior."""

    prior: str  # laplace | gaussian | mix
    bits: int
    granularity: str  # tensor | channel
    group_size: ClassVar[None] = None
    family = "aciq"
    pattern = r"aciq-(laplace|gaussian|mix)-w(\d+)-(tensor|ch)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> Aciq:
        return cls(name, match[1], bit_width(match[2]), granularity(match[3])[0])

    @property
    def granularity_label(self) -> str:
        return self.granularity

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        clip = aciq_clip(weight, self.bits, self.prior, self.granularity)
        return quantize_rtn(weight, self.bits, self.granularity, clip=clip)


@register
@dataclass(frozen=True)
class MseClip(CompressionMethod):
    """``mse-w{b}-{tensor|ch|g<N>}``: the clip that minimises the weight MSE on a grid."""

    bits: int
    granularity: str
    group_size: int | None = None
    family = "mse"
    pattern = r"mse-w(\d+)-(tensor|ch|g\d+)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> MseClip:
        return cls(name, bit_width(match[1]), *granularity(match[2]))

    @property
    def granularity_label(self) -> str:
        return label(self.granularity, self.group_size)

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        clip = mse_grid_clip(weight, self.bits, self.granularity, group_size=self.group_size)
        return quantize_rtn(weight, self.bits, self.granularity, self.group_size, clip=clip)
