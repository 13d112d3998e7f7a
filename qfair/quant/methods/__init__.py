"""Compression methods, one class each behind :class:`~qfair.quant.methods.base.CompressionMethod`.

Importing this package registers every method's names with :func:`qfair.quant.configs.parse_config`.
"""

from qfair.quant.methods.activations import ActivationQuant, HadamardRotation, SmoothQuant
from qfair.quant.methods.awq import Awq, Hqq
from qfair.quant.methods.base import (
    Calibration,
    CompressionMethod,
    MethodSettings,
    SweepContext,
    WeightSnapshot,
)
from qfair.quant.methods.bitsandbytes import BitsAndBytes
from qfair.quant.methods.gptq import Gptq, LanguageAwareGptq
from qfair.quant.methods.language_aware import LanguageAwareAciq, LanguageOracle, language_weights
from qfair.quant.methods.pruning import MagnitudePruning, Wanda
from qfair.quant.methods.rounding import Aciq, MseClip, RoundToNearest

__all__ = [
    "Aciq",
    "ActivationQuant",
    "Awq",
    "BitsAndBytes",
    "Calibration",
    "CompressionMethod",
    "Gptq",
    "HadamardRotation",
    "Hqq",
    "LanguageAwareAciq",
    "LanguageAwareGptq",
    "LanguageOracle",
    "MagnitudePruning",
    "MethodSettings",
    "MseClip",
    "RoundToNearest",
    "SmoothQuant",
    "SweepContext",
    "Wanda",
    "WeightSnapshot",
    "language_weights",
]
