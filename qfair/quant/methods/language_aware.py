"""LA-ACIQ (ours): per-channel clipping that weighs each language's input statistics, and its oracle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import torch

from qfair.quant.laaciq import laaciq_clip
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    SweepContext,
    bit_width,
    register,
    run_per_language,
)
from qfair.quant.rtn import quantize_rtn


def language_weights(weighting: str, languages: list[str], resource_share: dict[str, float],
                     reference: str) -> torch.Tensor:
    """LA-ACIQ's language weights: uniform, resource-proportional, minimax (all), or the
    reference language alone (``corpus.reference_language``, English in the profiles)."""
    if weighting in {"uniform", "minimax"}:
        return torch.ones(len(languages), dtype=torch.float64)
    if weighting == "resource":
        return torch.tensor([resource_share[lang] for lang in languages], dtype=torch.float64)
    if weighting == "reference":
        return torch.tensor([float(lang == reference) for lang in languages], dtype=torch.float64)
    raise ValueError(f"unknown LA-ACIQ weighting {weighting!r}")


def _needs_moments(calibration: Calibration | None, config: str) -> Calibration:
    if calibration is None:
        raise ValueError(f"config {config!r} needs per-language calibration statistics")
    return calibration


@register
@dataclass(frozen=True)
class LanguageAwareAciq(CompressionMethod):
    """``laaciq-{uniform|resource|minimax|reference}-w{b}-ch``: one clip per channel for all languages."""

    weighting: str
    bits: int
    group_size: ClassVar[None] = None
    family = "laaciq"
    pattern = r"laaciq-(uniform|resource|minimax|reference)-w(\d+)-ch"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> LanguageAwareAciq:
        return cls(name, match[1], bit_width(match[2]))

    @property
    def granularity_label(self) -> str:
        return "channel"

    @property
    def needs_resource_shares(self) -> bool:
        return self.weighting == "resource"

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        calibration = _needs_moments(calibration, self.name)
        weights = language_weights(self.weighting, calibration.languages, settings.resource_share,
                                   settings.reference_language)
        objective = "minimax" if self.weighting == "minimax" else "weighted"
        clip = laaciq_clip(weight, calibration.moments[name], self.bits, settings.laaciq_prior, weights,
                           objective)
        return quantize_rtn(weight, self.bits, "channel", clip=clip)


@register
@dataclass(frozen=True)
class LanguageOracle(CompressionMethod):
    """``oracle-w{b}-ch``: LA-ACIQ calibrated on each language alone, one model per language, each
    scored on its own language only (the best any per-channel clip could do for it)."""

    bits: int
    group_size: ClassVar[None] = None
    family = "oracle"
    pattern = r"oracle-w(\d+)-ch"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> LanguageOracle:
        return cls(name, bit_width(match[1]))

    @property
    def granularity_label(self) -> str:
        return "channel"

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        calibration = _needs_moments(calibration, self.name)
        clip = laaciq_clip(weight, calibration.moments[name], self.bits, settings.laaciq_prior, None,
                           "weighted")
        return quantize_rtn(weight, self.bits, "channel", clip=clip)

    def run(self, sweep: SweepContext) -> list[pd.DataFrame]:
        return run_per_language(self, sweep)
