"""The compression sweep: every config, every language, one in-memory full-precision model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from qfair.eval import model_device, score_items
from qfair.quant.apply import (
    WeightSnapshot,
    apply_in_place,
    input_second_moments,
    language_weights,
    load_bitsandbytes,
    target_linears,
)
from qfair.quant.configs import CompressionConfig

Texts = dict[str, dict[str, str]]  # language -> item id -> text


@dataclass
class SweepSettings:
    exclude_modules: list[str]
    laaciq_prior: str
    bnb_int8_threshold: float
    batch_tokens: int
    max_tokens: int
    reference_language: str


@dataclass
class Calibration:
    """Per-language input second moments of every target layer, from calibration text."""

    languages: list[str]
    moments: dict[str, torch.Tensor]  # layer -> [languages, in_features]
    tokens: torch.Tensor  # [languages] calibration tokens per language

    def input_norms(self) -> dict[str, torch.Tensor]:
        """Wanda's ``||x_j||`` over all calibration tokens of all languages."""
        return {name: (m * self.tokens[:, None]).sum(0).sqrt() for name, m in self.moments.items()}

    def select(self, languages: list[str]) -> dict[str, torch.Tensor]:
        index = [self.languages.index(lang) for lang in languages]
        return {name: m[index] for name, m in self.moments.items()}


def calibrate(model: torch.nn.Module, tokenizer, texts: Texts, settings: SweepSettings) -> Calibration:
    linears = target_linears(model, settings.exclude_modules)
    languages = sorted(texts)
    per_language, tokens = [], []
    for lang in tqdm(languages, desc="calibrate", mininterval=2):
        moments, count = input_second_moments(model, linears, tokenizer, list(texts[lang].values()),
                                              settings.batch_tokens, settings.max_tokens)
        per_language.append(moments)
        tokens.append(count)
    stacked = {name: torch.stack([m[name] for m in per_language]) for name in linears}
    return Calibration(languages, stacked, torch.tensor(tokens, dtype=torch.float64))


def _dtype_name(model: torch.nn.Module) -> str:
    """The name (qfair.models.DTYPES) of the model's floating-point dtype."""
    from qfair.models import DTYPES

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return next(name for name, value in DTYPES.items() if value == dtype)


def _score(model, tokenizer, texts: Texts, languages: list[str], settings: SweepSettings,
           config: str) -> pd.DataFrame:
    keys = [(lang, item_id) for lang in languages for item_id in texts[lang]]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inputs will be cast.*")  # bnb int8 on CPU
        scores = score_items(model, tokenizer, [texts[lang][i] for lang, i in keys],
                             settings.batch_tokens, settings.max_tokens)
    frame = pd.DataFrame(keys, columns=["language", "item_id"])
    frame.insert(0, "config", config)
    frame["nll"], frame["n_tokens"], frame["n_bytes"] = scores.nll, scores.n_tokens, scores.n_bytes
    return frame


def run_sweep(model: torch.nn.Module, model_path: Path, tokenizer, configs: list[CompressionConfig],
              texts: Texts, calibration: Calibration, resource_share: dict[str, float],
              settings: SweepSettings) -> pd.DataFrame:
    """Per-item NLL of the full-precision model (config ``fp``) and of every config.

    Fake-quant configs are applied in place from a snapshot and undone afterwards; the oracle
    quantizes once per language with that language's statistics alone and scores only it.
    Everything runs on the model's device and dtype: bitsandbytes configs are loaded there too.
    """
    device, dtype = model_device(model), _dtype_name(model)
    languages = sorted(texts)
    snapshot = WeightSnapshot(target_linears(model, settings.exclude_modules))
    frames = [_score(model, tokenizer, texts, languages, settings, "fp")]
    norms = calibration.input_norms()
    for config in tqdm(configs, desc="sweep", mininterval=1):
        if config.method == "bnb":
            quantized = load_bitsandbytes(model_path, config, settings.exclude_modules,
                                          settings.bnb_int8_threshold, device=str(device), dtype=dtype)
            frames.append(_score(quantized, tokenizer, texts, languages, settings, config.name))
            del quantized
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the quantized copy's memory goes back before the next config
        elif config.method == "oracle":
            for lang in languages:
                apply_in_place(snapshot, config, moments=calibration.select([lang]),
                               laaciq_prior=settings.laaciq_prior)
                frames.append(_score(model, tokenizer, texts, [lang], settings, config.name))
        else:
            weights = None
            if config.method == "laaciq":
                weights = language_weights(config.weighting, calibration.languages, resource_share,
                                           settings.reference_language)
            apply_in_place(snapshot, config, moments=calibration.select(calibration.languages),
                           weights=weights, input_norms=norms, laaciq_prior=settings.laaciq_prior)
            frames.append(_score(model, tokenizer, texts, languages, settings, config.name))
        snapshot.restore()
    return pd.concat(frames, ignore_index=True)
