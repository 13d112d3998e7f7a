"""EXP-031's verdict (LA-ACIQ vs ACIQ), computed from its pre-registered rule in params.yaml."""

from __future__ import annotations

import math

from qfair.stats import INCONCLUSIVE, REJECTED, SUPPORTED


def laaciq_verdict(result: dict[str, float], min_range_reduction: float,
                   max_mean_rho_increase: float) -> str:
    """The ledger's rule applied to EXP-031's two conditions.

    SUPPORTED when the whole CI of the range reduction is at or above ``min_range_reduction`` and
    the whole CI of the relative mean-rho increase is below ``max_mean_rho_increase``; REJECTED
    when either CI lies entirely on the wrong side (reduction's upper bound below the target, or
    the increase's lower bound at or above the limit); INCONCLUSIVE otherwise (NaN included).
    """
    bounds = [result[k] for k in ("range_reduction_ci_low", "range_reduction_ci_high",
                                  "mean_rho_increase_ci_low", "mean_rho_increase_ci_high")]
    if any(math.isnan(b) for b in bounds):
        return INCONCLUSIVE
    rr_low, rr_high, mri_low, mri_high = bounds
    if rr_low >= min_range_reduction and mri_high < max_mean_rho_increase:
        return SUPPORTED
    if rr_high < min_range_reduction or mri_low >= max_mean_rho_increase:
        return REJECTED
    return INCONCLUSIVE
