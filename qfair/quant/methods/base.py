"""The one interface every compression method implements, and the registry of config names.

A method is a frozen dataclass parsed from a stable name (``rtn-w4-ch-sym``): the class says
which names it owns (``pattern``), how to read its fields from one (``parse``), what the report
calls it (``family``, ``bits``, ``granularity_label``), and how it compresses a model. Most
methods rewrite each Linear weight from the full-precision snapshot (:meth:`compress_weight`);
a method that must do more (all tensors at once, one model per language, a real quantized model
loaded from disk) overrides :meth:`apply` or :meth:`run`. Adding a method is one new class here;
nothing else dispatches on the family (docs/quantization.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd
import torch
from torch import nn


class WeightSnapshot:
    """A copy of the target weights as loaded, on their device, restored after each config."""

    def __init__(self, linears: dict[str, nn.Linear]) -> None:
        self.linears = linears
        self.weights = {name: lin.weight.detach().clone() for name, lin in linears.items()}
        self.hooks: list[torch.utils.hooks.RemovableHandle] = []  # a method's input quantizers

    def add_hook(self, handle: torch.utils.hooks.RemovableHandle) -> None:
        """A hook a method registered on the model; removed with the next restore."""
        self.hooks.append(handle)

    def remove_hooks(self) -> None:
        for handle in self.hooks:
            handle.remove()
        self.hooks.clear()

    @torch.no_grad()
    def restore(self) -> None:
        """The loaded weights again, and no method's hooks."""
        self.remove_hooks()
        for name, lin in self.linears.items():
            lin.weight.copy_(self.weights[name])


@dataclass
class Calibration:
    """Per-language input statistics of every target layer, from calibration text
    (:class:`qfair.quant.calibration.InputStats`, stacked over languages)."""

    languages: list[str]
    moments: dict[str, torch.Tensor]  # layer -> [languages, in_features]: E[x_j^2]
    tokens: torch.Tensor  # [languages] calibration tokens per language
    covariances: dict[str, torch.Tensor] | None = None  # layer -> [languages, in, in]: E[x x^T]
    mean_abs: dict[str, torch.Tensor] | None = None  # layer -> [languages, in]: E|x_j|
    absmax: dict[str, torch.Tensor] | None = None  # layer -> [languages, in]: max |x_j|

    def input_norms(self) -> dict[str, torch.Tensor]:
        """Wanda's ``||x_j||`` over all calibration tokens of all languages."""
        return {name: (m * self.tokens[:, None]).sum(0).sqrt() for name, m in self.moments.items()}

    def require(self, field: str, config: str) -> dict[str, torch.Tensor]:
        """A per-layer statistic a config needs; ValueError naming both when it was not measured."""
        values = getattr(self, field)
        if values is None:
            raise ValueError(f"config {config!r} needs the calibration statistic {field!r}")
        return values

    def subset(self, languages: list[str]) -> Calibration:
        """The statistics of ``languages`` alone (the oracle calibrates on one language)."""
        index = [self.languages.index(lang) for lang in languages]

        def pick(values: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
            return None if values is None else {name: v[index] for name, v in values.items()}

        return Calibration(list(languages), pick(self.moments), self.tokens[index],
                           pick(self.covariances), pick(self.mean_abs), pick(self.absmax))


@dataclass(frozen=True)
class MethodSettings:
    """What some methods read beyond their name: params' compress/corpus settings and the corpus'
    resource shares (LA-ACIQ's resource weighting)."""

    laaciq_prior: str = "laplace"
    reference_language: str = "en"
    resource_share: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepContext:
    """What a method's :meth:`CompressionMethod.run` may use: the in-memory model, its snapshot and
    saved folder, the calibration, and ``score(model, languages, config_name)`` (one frame)."""

    model: torch.nn.Module
    model_path: object  # Path of the saved model (bitsandbytes loads it again)
    snapshot: WeightSnapshot
    calibration: Calibration
    settings: MethodSettings
    languages: list[str]
    score: Callable[[torch.nn.Module, list[str], str], pd.DataFrame]
    exclude_modules: list[str]
    bnb_int8_threshold: float
    device: torch.device
    dtype: str


@dataclass(frozen=True)
class CompressionMethod:
    """A parsed config: its stable ``name`` and the fields of its family."""

    name: str
    family: ClassVar[str]  # the ``method`` column of the sweep's tables
    pattern: ClassVar[str]  # the names this class owns (a regex, anchored at both ends)

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> CompressionMethod:
        raise NotImplementedError

    # Every method also says its ``bits`` and ``group_size`` (None where they do not apply), as
    # fields or class constants. They are not declared here: a subclass field would then keep the
    # base's position among the fields, ahead of fields without a default.
    needs_resource_shares: ClassVar[bool] = False  # every language's share (params-checked early)
    needs_covariances: ClassVar[bool] = False  # calibration measures E[x x^T] per layer and language

    @property
    def granularity_label(self) -> str:
        """The ``granularity`` column: tensor, channel, ``group<size>``, global, or empty."""
        return ""

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        """The compressed (dequantized or pruned) version of one Linear weight."""
        raise NotImplementedError(f"{type(self).__name__} does not compress tensor by tensor")

    @torch.no_grad()
    def apply(self, snapshot: WeightSnapshot, calibration: Calibration | None = None,
              settings: MethodSettings | None = None) -> None:
        """Overwrite every target weight with its compressed version, starting from the snapshot."""
        settings = settings or MethodSettings()
        self.rewrite(snapshot, lambda name, weight: self.compress_weight(name, weight, calibration, settings))

    @torch.no_grad()
    def rewrite(self, snapshot: WeightSnapshot,
                compress: Callable[[str, torch.Tensor], torch.Tensor]) -> None:
        """Each target weight becomes ``compress(name, original)``; non-finite results are refused."""
        for name, lin in snapshot.linears.items():
            new = compress(name, snapshot.weights[name])
            if not torch.isfinite(new).all():
                raise FloatingPointError(f"config {self.name!r} produced non-finite weights in {name}")
            lin.weight.copy_(new)

    def run(self, sweep: SweepContext) -> list[pd.DataFrame]:
        """Per-item rows of this config in the sweep: compress in place, score every language.

        The sweep restores the snapshot afterwards, whatever happens here.
        """
        self.apply(sweep.snapshot, sweep.calibration, sweep.settings)
        return [sweep.score(sweep.model, sweep.languages, self.name)]


def run_per_language(method: CompressionMethod, sweep: SweepContext) -> list[pd.DataFrame]:
    """An oracle's rows: one model per language, calibrated on it alone and scored on it alone."""
    frames = []
    for lang in sweep.languages:
        method.apply(sweep.snapshot, sweep.calibration.subset([lang]), sweep.settings)
        frames.append(sweep.score(sweep.model, [lang], method.name))
    return frames


def weighted_hessian(covariances: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_l w_l C_l / sum_l w_l`` of ``[languages, in, in]`` covariances."""
    weights = weights.to(covariances.dtype)
    if weights.shape != covariances.shape[:1] or bool((weights < 0).any()) or not float(weights.sum()) > 0:
        raise ValueError(f"language weights must be {covariances.shape[0]} non-negative values with a "
                         f"positive sum, got {weights.tolist()}")
    return torch.einsum("l,lij->ij", weights, covariances) / weights.sum()


def calibration_weights(calibration_set: str, calibration: Calibration,
                        settings: MethodSettings) -> torch.Tensor:
    """The per-language weights ``w_l`` of a named calibration set (module docstring)."""
    languages = calibration.languages
    if calibration_set == "reference":
        if settings.reference_language not in languages:
            raise ValueError(f"calibration set 'reference': {settings.reference_language!r} has no "
                             f"calibration statistics (languages: {languages})")
        return torch.tensor([float(lang == settings.reference_language) for lang in languages],
                            dtype=torch.float64)
    if calibration_set == "uniform":
        return calibration.tokens.to(torch.float64)
    if calibration_set == "mix":
        return torch.tensor([settings.resource_share[lang] for lang in languages], dtype=torch.float64)
    if calibration_set == "oracle":  # calibration holds one language: the oracle's own
        return torch.ones(len(languages), dtype=torch.float64)
    raise ValueError(f"unknown calibration set {calibration_set!r}")


REGISTRY: list[type[CompressionMethod]] = []


def register(cls: type[CompressionMethod]) -> type[CompressionMethod]:
    """Class decorator: the class parses the names its ``pattern`` matches."""
    REGISTRY.append(cls)
    return cls


def number(text: str, field: str) -> int:
    """An integer written without leading zeros, so each config has exactly one name."""
    if len(text) > 1 and text.startswith("0"):
        raise ValueError(f"{field} {text!r} has a leading zero")
    return int(text)


def bit_width(text: str) -> int:
    bits = number(text, "bits")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits {bits} outside 2-8")
    return bits


def granularity(text: str) -> tuple[str, int | None]:
    """``tensor``, ``ch`` or ``g<N>`` -> (tensor | channel | group, group size)."""
    if text == "tensor":
        return "tensor", None
    if text == "ch":
        return "channel", None
    size = number(text[1:], "group size")
    if size < 1:
        raise ValueError(f"group size {size} must be positive")
    return "group", size


def label(granularity_name: str | None, group_size: int | None) -> str:
    """Group configs carry their size (B* and the curves never mix sizes)."""
    if granularity_name == "group":
        return f"group{group_size}"
    return granularity_name or ""
