"""Compression configs by stable name: ``parse_config("rtn-w4-g128-sym")`` returns the method.

Each method class in :mod:`qfair.quant.methods` owns a name pattern. Params list configs by name,
so a typo or an out-of-range value is caught when params are validated, before any model loads.

Names:
    rtn-w{2..8}-{tensor|ch|g<N>}-{sym|asym}     round to nearest (absmax)
    aciq-{laplace|gaussian|mix}-w{b}-{tensor|ch}  ACIQ analytic clipping
    mse-w{b}-{tensor|ch|g<N>}                     MSE-optimal grid-search clipping
    laaciq-{uniform|resource|minimax|reference}-w{b}-ch LA-ACIQ (ours), per-channel clip
    oracle-w{b}-ch                                LA-ACIQ calibrated per language, one model each
    bnb-{int8|nf4|fp4}[-dq]                       bitsandbytes (real quantization)
    prune-magnitude-{tensor|global}-{percent}     magnitude pruning, per tensor or over all tensors
    prune-wanda-{percent}                         Wanda pruning (per output row)
"""

from __future__ import annotations

import re

from qfair.quant.methods import CompressionMethod
from qfair.quant.methods.base import REGISTRY

CompressionConfig = CompressionMethod  # a parsed config is its method, with the name's fields


def parse_config(name: str) -> CompressionMethod:
    """The config a stable name describes; ValueError naming the problem otherwise."""
    for method in REGISTRY:
        if match := re.fullmatch(method.pattern, name):
            try:
                return method.parse(name, match)
            except ValueError as error:
                raise ValueError(f"config {name!r}: {error}") from None
    raise ValueError(f"unknown compression config {name!r}; known patterns: "
                     + ", ".join(method.pattern for method in REGISTRY))


def check_group_sizes(configs: list[CompressionMethod], in_features: set[int]) -> None:
    """Every group size must divide the input width of every quantized layer."""
    for config in configs:
        if config.group_size is not None:
            bad = sorted(n for n in in_features if n % config.group_size)
            if bad:
                raise ValueError(f"config {config.name!r}: group size {config.group_size} does not "
                                 f"divide the layer input width(s) {bad}")
