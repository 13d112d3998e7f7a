"""The interpretability stage's work (Track B): where in the network each language's loss comes from.

One fixed set of parallel test items (``interpretability.items_per_language`` per language) and the
full-precision model give B-001 (head specificity), B-002 (language-ID probes on full-precision and
quantized hidden states), B-003 (mean ablation of every head and block), B-004 (attribution
patching, checked against B-003) and B-005 (causal mediation of the ``interpretability.config``
quantization, and its converse, one block quantized at a time; repeated for
``interpretability.activation_config``, a per-token activation quantizer, where set).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from qfair.analysis.heads import head_specificity
from qfair.analysis.mediation import top_block
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
    pooled_hidden_states,
    relative_change,
)
from qfair.analysis.probes import language_id_probes, probe_accuracy_drop, probe_summary
from qfair.models.hooks import Component, ComponentHooks
from qfair.models.linears import target_linears
from qfair.quant.configs import parse_config
from qfair.quant.methods.base import CompressionMethod, WeightSnapshot


@dataclass
class InterpretabilityRun:
    specificity: pd.DataFrame  # per head: features' specificity, Holm p, class (B-001)
    ablation: pd.DataFrame  # per component and language: nll_change (B-003)
    attribution: pd.DataFrame  # per component and language: nll_change_estimate (B-004)
    attribution_check: pd.DataFrame  # per language: Spearman of B-004 against B-003 over components
    mediation: pd.DataFrame  # per component and language: recovered_share (B-005)
    block_quantization: pd.DataFrame  # per block and language: rel_degradation (B-005 converse)
    languages: pd.DataFrame  # per language: the summaries the ledger and the paper read
    probes: pd.DataFrame | None = None  # per layer, language, condition: language-ID accuracy (B-002)
    # B-005 and its converse for interpretability.activation_config (None where not set)
    activation_mediation: pd.DataFrame | None = None
    activation_block_quantization: pd.DataFrame | None = None


def attribution_agreement(ablated: pd.DataFrame, estimated: pd.DataFrame) -> pd.DataFrame:
    """Per language, the Spearman correlation over components of B-004's estimate and B-003's effect."""
    joined = ablated.merge(estimated, on=["component", "language"], validate="one_to_one")
    rows = []
    for language, group in joined.groupby("language"):
        result = stats.spearmanr(group["nll_change_estimate"], group["nll_change"])
        rows.append({"language": language, "n_components": len(group), "spearman": float(result.statistic)})
    return pd.DataFrame(rows)


def language_summary(ablated: pd.DataFrame, mediated: pd.DataFrame, rho: pd.Series,
                     probes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per language: mean relative NLL change over block ablations (B-003's sensitivity), the
    quantization's rho on the item set, the largest share one block restores (B-005) and, where
    B-002 ran, the probes' mean accuracy drop under quantization."""
    blocks = ablated[ablated["kind"] != "head"]
    frame = pd.DataFrame({"ablation_sensitivity": blocks.groupby("language")["nll_change"].mean(),
                          "rho": rho})
    block_mediation = mediated[mediated["kind"] != "head"]
    frame["max_block_recovered_share"] = block_mediation.groupby("language")["recovered_share"].max()
    if probes is not None:
        frame = frame.join(probe_accuracy_drop(probes), validate="one_to_one")
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
    states = pooled_hidden_states(model, items, device) if ip.probes else None
    main = mediate_quantization(model, hooks, items, linears, config, components, blocks, cache,
                                full_precision, device, hidden_states=ip.probes)
    extra = (mediate_quantization(model, hooks, items, linears, parse_config(ip.activation_config),
                                  components, blocks, cache, full_precision, device)
             if ip.activation_config else None)
    del cache
    rho = relative_change(items, main.quantized, full_precision)
    probes = (language_id_probes(states, main.states, items.languages, items.keys, ip.probe_folds,
                                 ip.probe_regularization, ip.seed) if ip.probes else None)
    return InterpretabilityRun(specificity, ablated, estimated, attribution_agreement(ablated, estimated),
                               main.mediated, main.per_block,
                               language_summary(ablated, main.mediated, rho, probes), probes,
                               extra.mediated if extra else None, extra.per_block if extra else None)


@dataclass
class QuantizationMediation:
    quantized: np.ndarray  # per-item NLL of the compressed model
    mediated: pd.DataFrame  # B-005: per component and language, share recovered by restoring it
    per_block: pd.DataFrame  # converse: per block and language, rho with only that block compressed
    states: np.ndarray | None  # the compressed model's pooled hidden states (B-002), if asked for


def mediate_quantization(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet,
                         linears: dict[str, torch.nn.Module], config: CompressionMethod,
                         components: list[Component], blocks: list[Component],
                         cache: list[dict[Component, torch.Tensor]], full_precision: np.ndarray,
                         device: torch.device, hidden_states: bool = False) -> QuantizationMediation:
    """B-005 and its converse for a calibration-free ``config`` (the model is restored after)."""
    snapshot = WeightSnapshot(linears)
    try:
        config.apply(snapshot)
        quantized = item_nll(model, items, device, desc=config.name)
        mediated = mediation(model, hooks, items, components, cache, quantized, full_precision, device)
        states = pooled_hidden_states(model, items, device) if hidden_states else None
    finally:
        snapshot.restore()
    per_block = block_quantization(model, items, linears, config, blocks, full_precision, device)
    return QuantizationMediation(quantized, mediated, per_block, states)


def interpretability_metrics(run: InterpretabilityRun) -> dict:
    """``metrics/interpretability.json``: head classes, agreement of B-004 with B-003, B-005 shares.

    A block's share is the median over languages: a language whose quantization barely raised its
    NLL on the item set has a near-zero denominator and an unstable share, which would drive a mean.
    """
    classes = run.specificity["class"].value_counts()
    agreement = run.attribution_check["spearman"].dropna()
    return {
        "heads": {name: int(classes.get(name, 0)) for name in ("specific", "mixed", "universal")},
        "attribution_spearman_median": float(agreement.median()) if len(agreement) else None,
        "mean_rho": float(run.languages["rho"].mean()),
        **top_block(run.mediation),
        **({"probes": probe_summary(run.probes)} if run.probes is not None else {}),
        **({"activation_config": top_block(run.activation_mediation)}
           if run.activation_mediation is not None else {}),
    }
