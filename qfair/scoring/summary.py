"""The evaluate stage's work: score every split, add the byte-unigram baseline, summarize.

The unigram is fitted on the training split; a corpus without one (FLORES+, paper profile) fits it
on the dev split, so dev is scored in-sample and test is not. A masked LM (mBERT, XLM-R) is scored
by pseudo-log-likelihood (:mod:`qfair.scoring.mlm`): its bits per byte are not comparable with a
causal LM's. Launched by ``torchrun``, the ranks share the causal batches
(:mod:`qfair.scoring.distributed`); every rank holds the full result.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import pandas as pd
import torch

from qfair.analysis.resource import ResourceLevels
from qfair.scoring import distributed
from qfair.scoring.causal import bits_per_byte, score_corpus, summarize_languages, unigram_byte_nll
from qfair.scoring.mlm import pll_bits_per_byte_note, score_items_pll

Splits = dict[str, dict[str, dict[str, str]]]  # split -> language -> item id -> text


def score_splits(model: torch.nn.Module, tokenizer, splits: Splits, masked: bool, batch_tokens: int,
                 max_tokens: int, compile: bool = False) -> pd.DataFrame:
    """Per-item scores of every split: PLL for a masked LM, else causal NLL (shared among ranks)."""
    scorer = score_items_pll if masked else partial(distributed.score_items, compile=compile)
    return score_corpus(model, tokenizer, splits, batch_tokens, max_tokens, scorer=scorer)


def unigram_split(train: Mapping[str, Mapping[str, str]]) -> str:
    """The split the unigram baseline is fitted on: train where the corpus has one, else dev."""
    return "train" if any(train.values()) else "dev"


def add_unigram_nll(items: pd.DataFrame, splits: Splits,
                    fitted_on: Mapping[str, Mapping[str, str]]) -> None:
    """Add ``unigram_nll`` to ``items`` (in place): each language's byte unigram on ``fitted_on``."""
    items["unigram_nll"] = 0.0
    for (split, lang), index in items.groupby(["split", "language"]).groups.items():
        texts = [splits[split][lang][i] for i in items.loc[index, "item_id"]]
        items.loc[index, "unigram_nll"] = unigram_byte_nll(list(fitted_on[lang].values()), texts)


def language_summary(items: pd.DataFrame, manifest: Mapping[str, Mapping], levels: ResourceLevels,
                     resamples: int, confidence: float, method: str, seed: int) -> pd.DataFrame:
    """Per split and language: bits per byte with its CI, the unigram's, script and resource level."""
    summary = summarize_languages(items, resamples=resamples, confidence=confidence, method=method,
                                  seed=seed)
    unigram = {key: bits_per_byte(g["unigram_nll"].to_numpy(), g["n_bytes"].to_numpy())
               for key, g in items.groupby(["split", "language"])}
    summary["unigram_bits_per_byte"] = [unigram[(s, lang)] for s, lang in
                                        zip(summary["split"], summary["language"], strict=True)]
    # A language without a published pretraining share has no level: an empty cell.
    summary.insert(2, "resource_level", summary["language"].map(levels.level_or_nan))
    summary.insert(2, "script", summary["language"].map(lambda lang: manifest[lang]["script"]))
    return summary


def eval_metrics(summary: pd.DataFrame, hub: bool, masked: bool, fitted_on: str) -> dict:
    """metrics/eval.json: per split, the range of bits per byte and the comparison with the unigram.

    ``hub``: also say what the numbers are (causal or PLL) and where the unigram was fitted.
    """
    metrics = {}
    for split, group in summary.groupby("split"):
        metrics[split] = {
            "mean_bits_per_byte": float(group["bits_per_byte"].mean()),
            "min_bits_per_byte": float(group["bits_per_byte"].min()),
            "max_bits_per_byte": float(group["bits_per_byte"].max()),
            "mean_unigram_bits_per_byte": float(group["unigram_bits_per_byte"].mean()),
            "languages_below_unigram": int((group["bits_per_byte"]
                                            < group["unigram_bits_per_byte"]).sum()),
            "languages": len(group),
            "bits_per_byte": dict(zip(group["language"], group["bits_per_byte"].round(6), strict=True)),
        }
        if hub:  # what these numbers are, for a reader of this file alone
            metrics[split].update(scoring=pll_bits_per_byte_note() if masked else "causal bits per byte",
                                  unigram_fitted_on=fitted_on)
    return metrics
