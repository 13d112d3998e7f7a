"""A registry of compression configs with stable names.

Each family registers a name pattern and a parser; ``parse_config("rtn-w4-g128-sym")`` returns a
:class:`CompressionConfig`. Params list configs by name, so a typo or an out-of-range value is
caught when params are validated, before any model is loaded.

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
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CompressionConfig:
    name: str
    method: str  # rtn | aciq | mse | laaciq | oracle | bnb | prune
    bits: int | None = None
    granularity: str | None = None  # tensor | channel | group; magnitude pruning: tensor | global
    group_size: int | None = None
    symmetric: bool = True
    prior: str | None = None  # ACIQ prior
    weighting: str | None = None  # LA-ACIQ language weighting
    sparsity: float | None = None
    bnb_type: str | None = None
    double_quant: bool = False

    @property
    def fake_quant(self) -> bool:
        """True when the config rewrites weights in place (everything but bitsandbytes)."""
        return self.method != "bnb"


_REGISTRY: list[tuple[re.Pattern[str], Callable[[str, re.Match[str]], CompressionConfig]]] = []


def register(pattern: str) -> Callable:
    def add(parser: Callable[[str, re.Match[str]], CompressionConfig]) -> Callable:
        _REGISTRY.append((re.compile(pattern + r"$"), parser))
        return parser

    return add


def _number(text: str, field: str) -> int:
    """An integer written without leading zeros, so each config has exactly one name."""
    if len(text) > 1 and text.startswith("0"):
        raise ValueError(f"{field} {text!r} has a leading zero")
    return int(text)


def _bits(text: str) -> int:
    bits = _number(text, "bits")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits {bits} outside 2-8")
    return bits


def _granularity(text: str) -> tuple[str, int | None]:
    if text == "tensor":
        return "tensor", None
    if text == "ch":
        return "channel", None
    size = _number(text[1:], "group size")
    if size < 1:
        raise ValueError(f"group size {size} must be positive")
    return "group", size


@register(r"rtn-w(\d+)-(tensor|ch|g\d+)-(sym|asym)")
def _rtn(name: str, m: re.Match[str]) -> CompressionConfig:
    granularity, group = _granularity(m[2])
    return CompressionConfig(name, "rtn", _bits(m[1]), granularity, group, m[3] == "sym")


@register(r"aciq-(laplace|gaussian|mix)-w(\d+)-(tensor|ch)")
def _aciq(name: str, m: re.Match[str]) -> CompressionConfig:
    granularity, _ = _granularity(m[3])
    return CompressionConfig(name, "aciq", _bits(m[2]), granularity, prior=m[1])


@register(r"mse-w(\d+)-(tensor|ch|g\d+)")
def _mse(name: str, m: re.Match[str]) -> CompressionConfig:
    granularity, group = _granularity(m[2])
    return CompressionConfig(name, "mse", _bits(m[1]), granularity, group)


@register(r"laaciq-(uniform|resource|minimax|reference)-w(\d+)-ch")
def _laaciq(name: str, m: re.Match[str]) -> CompressionConfig:
    return CompressionConfig(name, "laaciq", _bits(m[2]), "channel", weighting=m[1])


@register(r"oracle-w(\d+)-ch")
def _oracle(name: str, m: re.Match[str]) -> CompressionConfig:
    return CompressionConfig(name, "oracle", _bits(m[1]), "channel", weighting="own")


@register(r"bnb-(int8|nf4|fp4)(-dq)?")
def _bnb(name: str, m: re.Match[str]) -> CompressionConfig:
    if m[1] == "int8" and m[2]:
        raise ValueError("double quantization (-dq) applies to nf4/fp4 only")
    bits = 8 if m[1] == "int8" else 4
    return CompressionConfig(name, "bnb", bits, bnb_type=m[1], double_quant=bool(m[2]))


def _sparsity(text: str) -> float:
    sparsity = _number(text, "sparsity percent") / 100
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity} outside [0, 1)")
    return sparsity


@register(r"prune-magnitude-(tensor|global)-(\d+)")
def _prune_magnitude(name: str, m: re.Match[str]) -> CompressionConfig:
    return CompressionConfig(name, "prune", granularity=m[1], prior="magnitude", sparsity=_sparsity(m[2]))


@register(r"prune-magnitude-(\d+)")
def _prune_magnitude_unscoped(name: str, m: re.Match[str]) -> CompressionConfig:
    raise ValueError(f"name the scope of magnitude pruning: prune-magnitude-tensor-{m[1]} (each "
                     f"tensor loses the same share) or prune-magnitude-global-{m[1]} (one threshold "
                     "for all tensors)")


@register(r"prune-wanda-(\d+)")
def _prune_wanda(name: str, m: re.Match[str]) -> CompressionConfig:
    return CompressionConfig(name, "prune", prior="wanda", sparsity=_sparsity(m[1]))


def parse_config(name: str) -> CompressionConfig:
    """The config a stable name describes; ValueError naming the problem otherwise."""
    for pattern, parser in _REGISTRY:
        if match := pattern.match(name):
            try:
                return parser(name, match)
            except ValueError as error:
                raise ValueError(f"config {name!r}: {error}") from None
    raise ValueError(
        f"unknown compression config {name!r}; known patterns: "
        + ", ".join(p.pattern.removesuffix("$") for p, _ in _REGISTRY)
    )


def check_group_sizes(configs: list[CompressionConfig], in_features: set[int]) -> None:
    """Every group size must divide the input width of every quantized layer."""
    for config in configs:
        if config.group_size is not None:
            bad = sorted(n for n in in_features if n % config.group_size)
            if bad:
                raise ValueError(f"config {config.name!r}: group size {config.group_size} does not "
                                 f"divide the layer input width(s) {bad}")
