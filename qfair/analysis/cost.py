"""C-004 against the token premium: does a language that needs more tokens cost more to process?

Joins the evaluate stage's cost table (results/eval/cost.csv, qfair.scoring.cost) with the
tokenizer_premium stage's table (results/tokenizers/premium.csv) on language and reports the
Spearman correlation of each cost per kB with the premium of the model's own tokenizer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

COST_MEASURES = ("seconds_per_kb", "cpu_seconds_per_kb", "joules_per_kb")


def cost_vs_token_premium(cost: pd.DataFrame, premium: pd.DataFrame, tokenizer: str = "qfair",
                          split: str = "test") -> dict[str, dict[str, float]]:
    """Per cost measure: ``{"n", "spearman_rho", "p_value"}`` over the languages in both tables.

    ``premium`` rows are those of ``tokenizer`` on ``split``. A measure with a missing value
    (energy on a CPU), a constant measure or fewer than 3 languages gives NaN statistics, with its ``n``.
    """
    rows = premium[(premium["tokenizer"] == tokenizer) & (premium["split"] == split)]
    if rows["language"].duplicated().any():
        raise ValueError(f"premium table: several rows per language for {tokenizer!r} on {split!r}")
    merged = cost.merge(rows[["language", "premium"]], on="language", how="inner", validate="one_to_one")
    out = {}
    for measure in COST_MEASURES:
        values = merged[measure].to_numpy(dtype=float)
        n = len(merged)
        if n < 3 or not np.isfinite(values).all() or np.ptp(values) == 0:  # ranks undefined
            out[measure] = {"n": n, "spearman_rho": math.nan, "p_value": math.nan}
            continue
        result = stats.spearmanr(values, merged["premium"].to_numpy(dtype=float))
        out[measure] = {"n": n, "spearman_rho": float(result.statistic), "p_value": float(result.pvalue)}
    return out
