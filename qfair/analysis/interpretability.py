"""The interpretability stage's work (Track B): where in the network each language's loss comes from.

One fixed set of parallel test items (``interpretability.items_per_language`` per language) and the
full-precision model give B-001 (head specificity), B-003 (mean ablation of every head and block),
B-004 (attribution patching, checked against B-003) and B-005 (causal mediation of the
``interpretability.config`` quantization, and its converse, one block quantized at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from scipy import stats

from qfair.analysis.heads import head_specificity
from qfair.analysis.patching import (
    ItemSet,
    ablation,
    attribution,
    block_quantization,
    cache_values,
    cached_means,
    head_features,
    item_nll,
    mediation,
    relative_change,
)
from qfair.models.hooks import ComponentHooks
from qfair.models.linears import target_linears
from qfair.quant.configs import parse_config
from qfair.quant.methods.base import WeightSnapshot


@dataclass
class InterpretabilityRun:
    specificity: pd.DataFrame  # per head: features' specificity, Holm p, class (B-001)
    ablation: pd.DataFrame  # per component and language: nll_change (B-003)
    attribution: pd.DataFrame  # per component and language: nll_change_estimate (B-004)
    attribution_check: pd.DataFrame  # per language: Spearman of B-004 against B-003 over components
    mediation: pd.DataFrame  # per component and language: recovered_share (B-005)
    block_quantization: pd.DataFrame  # per block and language: rel_degradation (B-005 converse)
    languages: pd.DataFrame  # per language: the summaries the ledger and the paper read


def attribution_agreement(ablated: pd.DataFrame, estimated: pd.DataFrame) -> pd.DataFrame:
    """Per language, the Spearman correlation over components of B-004's estimate and B-003's effect."""
    joined = ablated.merge(estimated, on=["component", "language"], validate="one_to_one")
    rows = []
    for language, group in joined.groupby("language"):
        result = stats.spearmanr(group["nll_change_estimate"], group["nll_change"])
        rows.append({"language": language, "n_components": len(group), "spearman": float(result.statistic)})
    return pd.DataFrame(rows)


def language_summary(ablated: pd.DataFrame, mediated: pd.DataFrame, rho: pd.Series) -> pd.DataFrame:
    """Per language: mean relative NLL change over block ablations (B-003's sensitivity), the
    quantization's rho on the item set, and the largest share one block restores (B-005)."""
    blocks = ablated[ablated["kind"] != "head"]
    frame = pd.DataFrame({"ablation_sensitivity": blocks.groupby("language")["nll_change"].mean(),
                          "rho": rho})
    block_mediation = mediated[mediated["kind"] != "head"]
    frame["max_block_recovered_share"] = block_mediation.groupby("language")["recovered_share"].max()
    return frame.rename_axis("language").reset_index()


def run_interpretability(model: torch.nn.Module, items: ItemSet, n_head: int, ip, exclude_modules: list[str],
                         alpha: float, device: torch.device) -> InterpretabilityRun:
    """Every Track B measurement on ``model`` (full precision, eager attention) and ``items``."""
    hooks = ComponentHooks(model, n_head)
    blocks, heads = hooks.blocks(), hooks.heads()
    components = blocks + heads
    config = parse_config(ip.config)

    specificity = head_specificity(head_features(model, items, device), ip.specific_min, ip.universal_max,
                                   alpha, ip.null_resamples, ip.seed)
    full_precision = item_nll(model, items, device, desc="full precision")
    # one recording pass serves both the ablation means and the mediation cache
    cache = cache_values(model, hooks, items, components, device)
    means = cached_means(items, cache, device)
    ablated = ablation(model, hooks, items, components, means, full_precision, device)
    estimated = attribution(model, hooks, items, components, means, full_precision, device)

    linears = target_linears(model, exclude_modules)
    snapshot = WeightSnapshot(linears)
    try:
        config.apply(snapshot)
        quantized = item_nll(model, items, device, desc=config.name)
        mediated = mediation(model, hooks, items, components, cache, quantized, full_precision, device)
    finally:
        snapshot.restore()
    del cache
    per_block = block_quantization(model, items, linears, config, blocks, full_precision, device)
    rho = relative_change(items, quantized, full_precision)
    return InterpretabilityRun(specificity, ablated, estimated, attribution_agreement(ablated, estimated),
                               mediated, per_block, language_summary(ablated, mediated, rho))


def interpretability_metrics(run: InterpretabilityRun) -> dict:
    """``metrics/interpretability.json``: head classes, agreement of B-004 with B-003, B-005 shares.

    A block's share is the median over languages: a language whose quantization barely raised its
    NLL on the item set has a near-zero denominator and an unstable share, which would drive a mean.
    """
    classes = run.specificity["class"].value_counts()
    blocks = run.mediation[run.mediation["kind"] != "head"]
    by_block = blocks.groupby("component")["recovered_share"].median()
    agreement = run.attribution_check["spearman"].dropna()
    return {
        "heads": {name: int(classes.get(name, 0)) for name in ("specific", "mixed", "universal")},
        "attribution_spearman_median": float(agreement.median()) if len(agreement) else None,
        "mean_rho": float(run.languages["rho"].mean()),
        "top_mediating_block": str(by_block.idxmax()) if by_block.notna().any() else None,
        "top_mediating_block_share": float(by_block.max()) if by_block.notna().any() else None,
    }
