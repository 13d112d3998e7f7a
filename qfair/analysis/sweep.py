"""Tables of the compression sweep: per-language degradation, disparity per config, B*."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qfair.analysis.disparity import (
    comparison,
    disparity,
    language_rel_degradation_ci,
    rel_degradation_matrix,
    threshold_bits,
)


def nll_matrix(items: pd.DataFrame, config: str, languages: list[str]) -> np.ndarray:
    """``[languages, items]`` NLL of one config, items in id order (the same in every row)."""
    subset = items[items["config"] == config].sort_values(["language", "item_id"])
    rows = [subset.loc[subset["language"] == lang, "nll"].to_numpy() for lang in languages]
    if any(len(row) != len(rows[0]) or len(row) == 0 for row in rows):
        raise ValueError(f"config {config!r}: languages do not have the same items")
    return np.stack(rows)


def per_language_table(items: pd.DataFrame, configs: list, languages: list[str],
                       resource_level: dict[str, float], resamples: int, confidence: float,
                       seed: int, method: str = "BCa") -> pd.DataFrame:
    """One row per (config, language): NLL, relative degradation with its paired-bootstrap CI,
    delta nats/item. ``configs`` are parsed configs (qfair.quant.methods: name, family, bits,
    granularity_label), not imported here so the analysis stages do not depend on the quantizers."""
    fp = nll_matrix(items, "fp", languages)
    rows = []
    for config in configs:
        q = nll_matrix(items, config.name, languages)
        rel = rel_degradation_matrix(fp, q)
        for index, lang in enumerate(languages):
            low, high = language_rel_degradation_ci(fp[index], q[index], resamples, confidence, seed, method)
            rows.append({
                "config": config.name, "method": config.family, "bits": config.bits or 0,
                "granularity": config.granularity_label, "language": lang,
                "resource_level": resource_level[lang], "nll_fp": fp[index].sum(),
                "nll_q": q[index].sum(), "rel_degradation": rel[index],
                "rel_degradation_ci_low": low, "rel_degradation_ci_high": high,
                "delta_nats_per_item": (q[index].sum() - fp[index].sum()) / q.shape[1],
            })
    return pd.DataFrame(rows)


def disparity_table(items: pd.DataFrame, configs: list, languages: list[str],
                    resource_level: dict[str, float], resamples: int, confidence: float,
                    seed: int, method: str = "BCa") -> pd.DataFrame:
    fp = nll_matrix(items, "fp", languages)
    levels = np.array([resource_level[lang] for lang in languages])
    rows = []
    for config in configs:
        q = nll_matrix(items, config.name, languages)
        rel = rel_degradation_matrix(fp, q)
        stats = disparity(fp, q, levels, resamples, confidence, seed, method)
        rows.append({"config": config.name, "method": config.family, "bits": config.bits or 0,
                     "granularity": config.granularity_label,
                     "worst_language": languages[int(np.argmax(rel))], **stats})
    return pd.DataFrame(rows)


def threshold_table(per_language: pd.DataFrame, tau: float) -> pd.DataFrame:
    """``B*`` per language for each symmetric-RTN granularity family ("none" if no width passes)."""
    rtn = per_language[(per_language["method"] == "rtn") & per_language["config"].str.endswith("-sym")]
    rows = []
    for (granularity, lang), group in rtn.groupby(["granularity", "language"], sort=True):
        b_star = threshold_bits(group["bits"].to_numpy(), group["rel_degradation"].to_numpy(), tau)
        rows.append({"granularity": granularity, "language": lang,
                     "resource_level": group["resource_level"].iloc[0],
                     "b_star": "none" if b_star is None else str(b_star)})
    return pd.DataFrame(rows)


COMPARISON_CI_COLUMNS = ["range_reduction_ci_low", "range_reduction_ci_high",
                         "mean_rel_degradation_increase_ci_low", "mean_rel_degradation_increase_ci_high"]


def comparison_table(items: pd.DataFrame, rules: list, resamples: int, confidence: float, seed: int,
                     method: str = "BCa") -> pd.DataFrame:
    """One row per EXP-031-style rule: its treatment config against its baseline, with paired CIs.

    The statistics only (:func:`qfair.analysis.disparity.comparison`); the ledger applies each
    rule's decision (:func:`qfair.analysis.ledger.range_reduction_verdict`). Per-item NLLs are needed here,
    so this runs where the sweep's ``items.csv`` is (the scale run's GPU machine included).
    """
    languages = sorted(items.loc[items["config"] == "fp", "language"].unique())
    fp = nll_matrix(items, "fp", languages)
    rows = []
    for rule in rules:
        result = comparison(fp, nll_matrix(items, rule.treatment, languages),
                            nll_matrix(items, rule.baseline, languages), resamples, confidence,
                            seed, method)
        rows.append({"id": rule.id, "treatment": rule.treatment, "baseline": rule.baseline, **result})
    columns = ["id", "treatment", "baseline", "range_reduction", "mean_rel_degradation_increase",
               *COMPARISON_CI_COLUMNS]
    return pd.DataFrame(rows, columns=columns)
