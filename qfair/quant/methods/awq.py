"""AWQ on a named calibration set (EXP-036), and HQQ, which needs no calibration."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import torch

from qfair.quant.awq import awq_quantize
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    SweepContext,
    bit_width,
    calibration_weights,
    granularity,
    label,
    number,
    register,
    run_per_language,
    weighted_hessian,
)


@register
@dataclass(frozen=True)
class Awq(CompressionMethod):
    """``awq-w{b}-{ch|g<N>}-{reference|uniform|mix|oracle}``: AWQ (qfair.quant.awq) with the input
    magnitudes and Hessian of a calibration set (the sets of qfair.quant.methods.gptq)."""

    bits: int
    granularity: str  # channel | group
    group_size: int | None
    calibration_set: str
    family = "awq"
    pattern = r"awq-w(\d+)-(ch|g\d+)-(reference|uniform|mix|oracle)"
    needs_covariances = True

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> Awq:
        kind, size = granularity(match[2])
        return cls(name, bit_width(match[1]), kind, size, match[3])

    @property
    def granularity_label(self) -> str:
        return label(self.granularity, self.group_size)

    @property
    def needs_resource_shares(self) -> bool:  # type: ignore[override]
        return self.calibration_set == "mix"

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        if calibration is None:
            raise ValueError(f"config {self.name!r} needs calibration statistics")
        weights = calibration_weights(self.calibration_set, calibration, settings)
        covariances = calibration.require("covariances", self.name)[name]
        magnitudes = calibration.require("mean_abs", self.name)[name]
        magnitude = weights.to(magnitudes.dtype) @ magnitudes / weights.sum()
        quantized, _ = awq_quantize(weight, magnitude, weighted_hessian(covariances, weights),
                                    self.bits, self.granularity, self.group_size)
        return quantized

    def run(self, sweep: SweepContext) -> list[pd.DataFrame]:
        if self.calibration_set == "oracle":
            return run_per_language(self, sweep)
        return super().run(sweep)


HQQ_BITS = (2, 3, 4, 8)  # the widths the hqq library quantizes to


@register
@dataclass(frozen=True)
class Hqq(CompressionMethod):
    """``hqq-w{2|3|4|8}-g<N>``: Half-Quadratic Quantization (Badri and Shaji 2023) with the hqq
    library: an asymmetric grid per group whose zero point is optimised against a sparsity-promoting
    (l_p, p < 1) loss of the weight error. Calibration-free."""

    bits: int
    group_size: int
    family = "hqq"
    pattern = r"hqq-w(\d+)-g(\d+)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> Hqq:
        bits = bit_width(match[1])
        if bits not in HQQ_BITS:
            raise ValueError(f"bits {bits}: hqq quantizes to {list(HQQ_BITS)} bits")
        size = number(match[2], "group size")
        if size < 1:
            raise ValueError(f"group size {size} must be positive")
        return cls(name, bits, size)

    @property
    def granularity_label(self) -> str:
        return label("group", self.group_size)

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        from hqq.core.quantize import Quantizer  # imported here: only HQQ configs need the library

        quantized, meta = Quantizer.quantize(
            weight.detach().float(), nbits=self.bits, channel_wise=True, group_size=self.group_size,
            optimize=True, round_zero=False, axis=1, bitpack=False, compute_dtype=torch.float32,
            device=str(weight.device))
        return Quantizer.dequantize(quantized, meta).reshape(weight.shape).to(weight.dtype)
