"""bitsandbytes: real int8 (LLM.int8()) and 4-bit (nf4/fp4) quantization, loaded from the saved model."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import torch
from torch import nn

from qfair.quant.methods.base import CompressionMethod, SweepContext, register


@register
@dataclass(frozen=True)
class BitsAndBytes(CompressionMethod):
    """``bnb-{int8|nf4|fp4}[-dq]``: transformers' ``BitsAndBytesConfig`` (blocks of 64 for 4-bit)."""

    quant_type: str  # int8 | nf4 | fp4
    double_quant: bool = False
    group_size: ClassVar[None] = None  # 4-bit blocks of 64 are bitsandbytes' own, not a grid of ours
    family = "bnb"
    pattern = r"bnb-(int8|nf4|fp4)(-dq)?"

    @classmethod
    def parse(cls, name: str, match: re.Match[str]) -> BitsAndBytes:
        if match[1] == "int8" and match[2]:
            raise ValueError("double quantization (-dq) applies to nf4/fp4 only")
        return cls(name, match[1], bool(match[2]))

    @property
    def bits(self) -> int:
        return 8 if self.quant_type == "int8" else 4

    def apply(self, snapshot, calibration=None, settings=None) -> None:
        raise ValueError(f"config {self.name!r} is real quantization: it loads a quantized model "
                         "(load_bitsandbytes), it cannot rewrite weights in place")

    def run(self, sweep: SweepContext) -> list[pd.DataFrame]:
        quantized = load_bitsandbytes(sweep.model_path, self, sweep.exclude_modules,
                                      sweep.bnb_int8_threshold, device=str(sweep.device),
                                      dtype=sweep.dtype)
        frames = [sweep.score(quantized, sweep.languages, self.name)]
        del quantized
        if sweep.device.type == "cuda":
            torch.cuda.empty_cache()  # the quantized copy's memory goes back before the next config
        return frames


def load_bitsandbytes(path: Path | str, config: BitsAndBytes, exclude: Sequence[str],
                      int8_threshold: float, device: str = "cpu", dtype: str = "float32") -> nn.Module:
    """Load the saved model with real bitsandbytes quantization of its Linear layers.

    ``device`` is where the quantized layers live ("cpu", "cuda", "cuda:1"); ``dtype`` is the
    dtype of the unquantized parts and the 4-bit compute dtype (bfloat16 on a GPU).
    """
    from transformers import BitsAndBytesConfig

    from qfair.models.load import DTYPES, check_device, load_model

    check_device(device)
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown {dtype!r}; choose one of {sorted(DTYPES)}")
    if config.quant_type == "int8":
        quant = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=int8_threshold,
                                   llm_int8_skip_modules=list(exclude))
    else:
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=config.quant_type,
                                   bnb_4bit_use_double_quant=config.double_quant,
                                   bnb_4bit_compute_dtype=DTYPES[dtype],
                                   llm_int8_skip_modules=list(exclude))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inputs will be cast.*")
        return load_model(path, dtype=dtype, quantization_config=quant, device_map=device)
