"""B-001: language-specific attention heads, and EXP-034: do they overlap with outlier-heavy heads?

Per item and head, three features of the attention pattern (measured by
:func:`qfair.analysis.patching.head_features`), each averaged over the item's query positions 1..
(position 0 attends only to itself):
- ``entropy``: the entropy (nats) of the query's attention distribution over its keys;
- ``distance``: the expected distance back to the attended key, ``sum_k p_k (q - k)``;
- ``sink_mass``: the probability on key 0.

A head's *specificity* for a feature is the between-language variance of the language means over
the mean within-language variance (items are the same parallel verses in every language, so the
groups are equal-sized); its statistic is the largest over the three features. A label-shuffle
permutation test (``scipy.stats.permutation_test``, labels shuffled within each parallel item)
gives each head a p-value; Holm adjusts them over the heads. A head is ``specific`` when its
statistic reaches ``specific_min`` with a Holm p below alpha, ``universal`` when it is below
``universal_max``, else ``mixed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats.contingency import odds_ratio

from qfair.analysis.stats import holm

FEATURES = ("entropy", "distance", "sink_mass")


def _variance_ratios(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
    """Per feature: between-language variance of the language means over the mean within-language
    variance (``groups``: one array per language, items along ``axis``)."""
    means = np.stack([g.mean(axis=axis) for g in groups])
    within = np.stack([g.var(axis=axis, ddof=1) for g in groups]).mean(axis=0)
    return means.var(axis=0, ddof=1) / np.maximum(within, np.finfo(float).tiny)


def _max_ratio(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
    """A head's specificity statistic: its largest ratio over the features (axis -2 after reduction)."""
    return _variance_ratios(*groups, axis=axis).max(axis=-2)


def head_specificity(features: pd.DataFrame, specific_min: float, universal_max: float,
                     alpha: float, resamples: int, seed: int) -> pd.DataFrame:
    """Per (layer, head): each feature's specificity, the head's largest, its permutation p (Holm
    over heads) and its class.

    The null shuffles language labels within each parallel item (``permutation_type="samples"``:
    the items are the same verses in every language), one test per head on its largest ratio.
    """
    keys = ["layer", "head"]
    heads = features[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    index = pd.MultiIndex.from_frame(heads)
    languages = sorted(features["language"].unique())
    # [feature, head, item] per language; every language has the same items
    wide = {name: features.pivot_table(index=keys, columns=["language", "item"], values=name).loc[index]
            for name in FEATURES}
    groups = [np.stack([wide[name][language].to_numpy(dtype=np.float64) for name in FEATURES])
              for language in languages]
    counts = {g.shape[-1] for g in groups}
    if len(counts) != 1 or np.isnan(np.stack(groups)).any():
        raise ValueError("head_specificity: every language needs the same items (a parallel set)")
    result = stats.permutation_test(groups, _max_ratio, permutation_type="samples", alternative="greater",
                                    n_resamples=resamples, axis=-1, vectorized=True, batch=100,
                                    random_state=np.random.default_rng(seed))
    ratios = _variance_ratios(*groups)
    out = heads.copy()
    for j, name in enumerate(FEATURES):
        out[f"{name}_specificity"] = ratios[j]
    out["max_specificity"] = result.statistic
    out["p"] = result.pvalue
    out["p_holm"] = holm(result.pvalue)
    specific = (out["max_specificity"] >= specific_min) & (out["p_holm"] < alpha)
    out["class"] = np.where(specific, "specific",
                            np.where(out["max_specificity"] < universal_max, "universal", "mixed"))
    return out


def top_heads(heads: pd.DataFrame, column: str, top_fraction: float) -> pd.Series:
    """Boolean per (layer, head): ``column`` is in the top ``top_fraction`` of the model's heads
    (rounded up, at least one head; ties broken by layer, then head)."""
    count = max(1, int(np.ceil(top_fraction * len(heads))))
    ranked = heads.sort_values([column, "layer", "head"], ascending=[False, True, True])
    chosen = set(map(tuple, ranked[["layer", "head"]].head(count).to_numpy()))
    keys = heads[["layer", "head"]].to_numpy()
    return pd.Series([(int(layer), int(head)) in chosen for layer, head in keys], index=heads.index)


def outlier_heads(census_heads: pd.DataFrame, top_fraction: float) -> pd.Series:
    """EXP-034's outlier heads: the output-projection slice's excess kurtosis in the top fraction."""
    return top_heads(census_heads, "excess_kurtosis", top_fraction)


def overlap_test(specific: np.ndarray, outlier: np.ndarray, confidence: float) -> dict:
    """Hypergeometric (one-sided Fisher exact) test that the two head sets overlap more than chance,
    with the conditional odds ratio and its CI."""
    specific, outlier = np.asarray(specific, bool), np.asarray(outlier, bool)
    table = np.array([[np.sum(specific & outlier), np.sum(specific & ~outlier)],
                      [np.sum(~specific & outlier), np.sum(~specific & ~outlier)]])
    n_heads, n_specific, n_outlier = specific.size, int(specific.sum()), int(outlier.sum())
    overlap = int(table[0, 0])
    p = float(stats.hypergeom.sf(overlap - 1, n_heads, n_outlier, n_specific))
    ratio = odds_ratio(table, kind="conditional")
    ci = ratio.confidence_interval(confidence, alternative="two-sided")
    estimate, low, high, method = float(ratio.statistic), float(ci.low), float(ci.high), "conditional"
    if not np.isfinite([estimate, low, high]).all() or estimate == 0 or low == 0:
        # An empty cell makes the odds ratio 0 or infinite: Haldane-Anscombe's +0.5 per cell with
        # Woolf's log-normal interval keeps the estimate and its interval finite.
        corrected = table + 0.5
        estimate = float(corrected[0, 0] * corrected[1, 1] / (corrected[0, 1] * corrected[1, 0]))
        half = stats.norm.ppf(0.5 + confidence / 2) * float(np.sqrt((1 / corrected).sum()))
        low, high, method = estimate * np.exp(-half), estimate * np.exp(half), "haldane-anscombe"
    return {"n_heads": n_heads, "n_specific": n_specific, "n_outlier": n_outlier, "overlap": overlap,
            "expected_overlap": n_specific * n_outlier / n_heads, "odds_ratio": estimate,
            "odds_ratio_method": method, "ci_low": float(low), "ci_high": float(high), "p": p}
