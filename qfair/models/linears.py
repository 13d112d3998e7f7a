"""Which layers compression acts on: one rule, shared by the quantizers and the activation profile."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def target_linears(model: nn.Module, exclude: Sequence[str]) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` whose qualified name contains none of ``exclude`` (e.g. ``lm_head``).

    Embeddings are not Linear layers, so they always stay in full precision.
    """
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not any(part in name for part in exclude)}
