"""GPTQ with a named calibration set (EXP-036), and LA-GPTQ (ours, EXP-037).

Both use the per-language input covariances ``C_l = E_l[x x^T]`` of each layer, measured on the
same calibration items of every language (``compress.calibration_items`` dev items each), and
quantize with the Hessian ``H = sum_l w_l C_l / sum_l w_l`` (:func:`qfair.quant.gptq.gptq_quantize`).
The calibration set is a choice of weights ``w_l``:

* ``reference``: the reference language alone (``corpus.reference_language``, English);
* ``uniform``: the calibration items of every language pooled, so ``w_l`` is language l's token
  count (a language that needs more tokens for the same text weighs more, as in a pooled set);
* ``mix``: the training mix, ``w_l`` = the language's share of the training corpus;
* ``oracle``: one model per language, calibrated on that language alone, scored on it alone.

LA-GPTQ gives every language the same weight whatever its token count (``uniform``), or chooses
the weights per layer so that the worst language's relative layer error is smallest (``minimax``,
by iterative reweighting). With one covariance per language it generalises LA-ACIQ, which only
uses their diagonals (docs/quantization.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from qfair.quant.gptq import gptq_quantize, layer_error
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    SweepContext,
    bit_width,
    calibration_weights,
    granularity,
    label,
    register,
    run_per_language,
    weighted_hessian,
)

MINIMAX_ITERATIONS = 6  # reweighting rounds; the best round (smallest worst-language error) is kept
MINIMAX_STEP = 1.0  # exponent of the multiplicative update w_l <- w_l * (e_l / mean e)^step


def _covariances(calibration: Calibration | None, config: str) -> Calibration:
    if calibration is None or calibration.covariances is None:
        raise ValueError(f"config {config!r} needs per-language input covariances (calibration)")
    return calibration


@dataclass(frozen=True)
class _GptqFamily(CompressionMethod):
    """What GPTQ and LA-GPTQ share: the grid and the column order; subclasses choose the Hessian."""

    bits: int
    granularity: str  # channel | group
    group_size: int | None
    act_order: bool
    needs_covariances = True

    @staticmethod
    def options(bits: str, unit: str, act: str | None) -> dict:
        """The shared fields from a name's width, ``ch``/``g<N>`` and ``-act`` parts."""
        kind, size = granularity(unit)
        return {"bits": bit_width(bits), "granularity": kind, "group_size": size, "act_order": bool(act)}

    @property
    def granularity_label(self) -> str:
        return label(self.granularity, self.group_size)

    def quantize(self, weight: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
        return gptq_quantize(weight, hessian.to(weight.device), self.bits, self.granularity,
                             self.group_size, act_order=self.act_order)


@register
@dataclass(frozen=True)
class Gptq(_GptqFamily):
    """``gptq-w{b}-{ch|g<N>}-{reference|uniform|mix|oracle}[-act]``: GPTQ on a calibration set;
    ``-act`` quantizes columns by decreasing Hessian diagonal (act-order)."""

    calibration_set: str
    family = "gptq"
    pattern = r"gptq-w(\d+)-(ch|g\d+)-(reference|uniform|mix|oracle)(-act)?"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> Gptq:
        return cls(name, **cls.options(match[1], match[2], match[4]), calibration_set=match[3])

    @property
    def needs_resource_shares(self) -> bool:  # type: ignore[override]
        return self.calibration_set == "mix"

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        calibration = _covariances(calibration, self.name)
        weights = calibration_weights(self.calibration_set, calibration, settings)
        return self.quantize(weight, weighted_hessian(calibration.covariances[name], weights))

    def run(self, sweep: SweepContext) -> list[pd.DataFrame]:
        if self.calibration_set == "oracle":
            return run_per_language(self, sweep)
        return super().run(sweep)


@register
@dataclass(frozen=True)
class LanguageAwareGptq(_GptqFamily):
    """``lagptq-w{b}-{ch|g<N>}-{uniform|minimax}[-act]``: GPTQ whose Hessian weighs each language's
    covariance equally (uniform) or to minimise the worst language's relative layer error (minimax)."""

    weighting: str
    family = "lagptq"
    pattern = r"lagptq-w(\d+)-(ch|g\d+)-(uniform|minimax)(-act)?"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> LanguageAwareGptq:
        return cls(name, **cls.options(match[1], match[2], match[4]), weighting=match[3])

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        covariances = _covariances(calibration, self.name).covariances[name]
        if self.weighting == "uniform":
            weights = torch.ones(covariances.shape[0], dtype=torch.float64)
            return self.quantize(weight, weighted_hessian(covariances, weights))
        return minimax_gptq(weight, covariances, self.quantize)


def relative_errors(weight: torch.Tensor, quantized: torch.Tensor,
                    covariances: torch.Tensor) -> torch.Tensor:
    """Each language's layer-output error relative to its output energy, ``tr(D C_l D^T) / tr(W C_l W^T)``."""
    zero = torch.zeros_like(weight)
    errors = [layer_error(weight, quantized, c) / max(layer_error(weight, zero, c), 1e-300)
              for c in covariances]
    return torch.tensor(errors, dtype=torch.float64)


def minimax_gptq(weight: torch.Tensor, covariances: torch.Tensor,
                 quantize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """GPTQ under language weights reweighted toward the worst language; the round whose worst
    relative error is smallest wins (ties: the earlier round, so uniform weights win a tie)."""
    weights = torch.ones(covariances.shape[0], dtype=torch.float64)
    best, best_worst = None, float("inf")
    for _ in range(MINIMAX_ITERATIONS):
        quantized = quantize(weight, weighted_hessian(covariances, weights))
        errors = relative_errors(weight, quantized, covariances)
        if float(errors.max()) < best_worst:
            best, best_worst = quantized, float(errors.max())
        weights = weights * (errors / errors.mean()) ** MINIMAX_STEP
        weights = weights / weights.sum()
    return best
