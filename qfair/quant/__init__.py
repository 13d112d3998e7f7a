"""Weight-only quantization math: RTN fake quantization, ACIQ / LA-ACIQ clipping, pruning.

Everything here is pure tensor math on 2-D Linear weights ``[out_features, in_features]``.
"""

from qfair.quant.aciq import (
    aciq_clip,
    clipping_noise_gaussian,
    clipping_noise_laplace,
    expected_mse,
    expected_mse_gaussian,
    expected_mse_laplace,
    mse_grid_clip,
    optimal_clip,
    optimal_clip_ratio,
    rounding_noise,
)
from qfair.quant.laaciq import (
    LanguageCurves,
    activation_weighted_aciq_clip,
    laaciq_clip,
    language_curves,
)
from qfair.quant.prune import prune_magnitude, prune_magnitude_global, prune_wanda
from qfair.quant.rtn import quantize_rtn

__all__ = [
    "LanguageCurves",
    "aciq_clip",
    "activation_weighted_aciq_clip",
    "clipping_noise_gaussian",
    "clipping_noise_laplace",
    "expected_mse",
    "expected_mse_gaussian",
    "expected_mse_laplace",
    "laaciq_clip",
    "language_curves",
    "mse_grid_clip",
    "optimal_clip",
    "optimal_clip_ratio",
    "prune_magnitude",
    "prune_magnitude_global",
    "prune_wanda",
    "quantize_rtn",
    "rounding_noise",
]
