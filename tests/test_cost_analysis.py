"""C-004 against the token premium (qfair.analysis.cost)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qfair.analysis.cost import cost_vs_token_premium

LANGS = ["ar", "en", "fr", "yo", "zh"]


def _tables(seconds: list[float], premium: list[float], joules: float = math.nan):
    cost = pd.DataFrame({"language": LANGS, "seconds_per_kb": seconds,
                         "cpu_seconds_per_kb": [2 * s for s in seconds], "joules_per_kb": joules})
    premium_rows = pd.DataFrame({"tokenizer": "qfair", "split": "test", "language": LANGS,
                                 "premium": premium})
    other = premium_rows.assign(tokenizer="bloom", premium=premium[::-1])  # another tokenizer: ignored
    dev = premium_rows.assign(split="dev", premium=premium[::-1])  # another split: ignored
    return cost, pd.concat([premium_rows, other, dev], ignore_index=True)


def test_monotone_cost_gives_rho_one() -> None:
    cost, premium = _tables([0.1, 0.2, 0.3, 0.5, 0.8], [1.0, 1.1, 1.5, 2.0, 3.0])
    result = cost_vs_token_premium(cost, premium)
    assert result["seconds_per_kb"]["spearman_rho"] == pytest.approx(1.0)
    assert result["cpu_seconds_per_kb"]["n"] == 5
    assert math.isnan(result["joules_per_kb"]["spearman_rho"])  # CPU: no energy


def test_matches_scipy_and_joins_on_language() -> None:
    from scipy import stats

    seconds, prem = [0.4, 0.1, 0.3, 0.2, 0.5], [1.2, 1.0, 2.5, 1.1, 1.9]
    cost, premium = _tables(seconds, prem, joules=1.0)
    cost = cost.iloc[::-1].reset_index(drop=True)  # order must not matter
    result = cost_vs_token_premium(cost, premium)
    expected = stats.spearmanr(seconds, prem)
    assert result["seconds_per_kb"]["spearman_rho"] == pytest.approx(expected.statistic)
    assert result["seconds_per_kb"]["p_value"] == pytest.approx(expected.pvalue)
    assert np.isnan(result["joules_per_kb"]["spearman_rho"])  # constant energy: undefined rank correlation


def test_too_few_languages() -> None:
    cost, premium = _tables([0.1, 0.2, 0.3, 0.5, 0.8], [1.0, 1.1, 1.5, 2.0, 3.0])
    result = cost_vs_token_premium(cost.iloc[:2], premium)
    assert result["seconds_per_kb"]["n"] == 2 and math.isnan(result["seconds_per_kb"]["spearman_rho"])
