"""Unstructured pruning: by magnitude (per tensor or one global threshold) and Wanda."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    number,
    register,
)
from qfair.quant.prune import prune_magnitude, prune_magnitude_global, prune_wanda


def sparsity_of(text: str) -> float:
    sparsity = number(text, "sparsity percent") / 100
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity} outside [0, 1)")
    return sparsity


@register
@dataclass(frozen=True)
class MagnitudePruning(CompressionMethod):
    """``prune-magnitude-{tensor|global}-{percent}``: zero the smallest |w|, in each tensor or
    below one threshold for all tensors together."""

    scope: str  # tensor | global
    sparsity: float
    bits: ClassVar[None] = None
    group_size: ClassVar[None] = None
    family = "prune"
    pattern = r"prune-magnitude-(tensor|global)-(\d+)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> MagnitudePruning:
        return cls(name, match[1], sparsity_of(match[2]))

    @property
    def granularity_label(self) -> str:
        return self.scope

    def compress_weight(self, name: str, weight: torch.Tensor, calibration: Calibration | None,
                        settings: MethodSettings) -> torch.Tensor:
        return prune_magnitude(weight, self.sparsity)

    @torch.no_grad()
    def apply(self, snapshot, calibration: Calibration | None = None,
              settings: MethodSettings | None = None) -> None:
        if self.scope == "tensor":
            super().apply(snapshot, calibration, settings)
            return
        pruned = prune_magnitude_global({name: snapshot.weights[name] for name in snapshot.linears},
                                        self.sparsity)
        for name, lin in snapshot.linears.items():
            lin.weight.copy_(pruned[name])


@register
@dataclass(frozen=True)
class UnscopedMagnitudePruning(CompressionMethod):
    """``prune-magnitude-{percent}`` is ambiguous: the error says which two names exist."""

    pattern = r"prune-magnitude-(\d+)"
    family = "prune"
    bits: ClassVar[None] = None
    group_size: ClassVar[None] = None

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> CompressionMethod:
        raise ValueError(f"name the scope of magnitude pruning: prune-magnitude-tensor-{match[1]} (each "
                         f"tensor loses the same share) or prune-magnitude-global-{match[1]} (one "
                         "threshold for all tensors)")


@register
@dataclass(frozen=True)
class Wanda(CompressionMethod):
    """``prune-wanda-{percent}``: zero the lowest |w_ij| * ||x_j|| in each output row (Sun et al.
    2023), with ``||x_j||`` over the calibration tokens of every language."""

    sparsity: float
    bits: ClassVar[None] = None
    group_size: ClassVar[None] = None
    family = "prune"
    pattern = r"prune-wanda-(\d+)"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> Wanda:
        return cls(name, sparsity_of(match[1]))

    @torch.no_grad()
    def apply(self, snapshot, calibration: Calibration | None = None,
              settings: MethodSettings | None = None) -> None:
        if calibration is None:
            raise ValueError(f"config {self.name!r} needs calibration activations (input norms)")
        norms = calibration.input_norms()  # once for all layers
        self.rewrite(snapshot, lambda name, weight: prune_wanda(weight, norms[name], self.sparsity))
