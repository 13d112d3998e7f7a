"""The hypothesis ledger: every pre-registered hypothesis of params.yaml with a computed verdict.

Metrics are looked up by name in per-unit tables (one row per language, layer or checkpoint)
that the analysis stage assembles from pipeline outputs; ``rho:<config>`` is a language's
relative degradation under a swept compression config. Correlation and sign-test p-values form
one family, Holm-corrected together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from qfair.stats import correlation_battery, holm, verdict

METRICS = {
    "language": {
        "resource_level": "ln of the language's share of training bytes",
        "baseline_bpb": "full-precision test bits per byte",
        "script_latin": "1 for Latin script, else 0",
        "tokens_per_byte": "project tokenizer, parallel test set",
        "token_premium": "tokens relative to English on the parallel test set",
        "outlier_layer_share": "share of block-output norm in the outlier layers (attention + MLP)",
        "effective_kurtosis": "sum over layers: normalised block-output norm x layer kurtosis",
    },
    "layer": {
        "layer_index": "block index",
        "max_kurtosis": "largest excess kurtosis of the layer's weight matrices",
        "attn_kurtosis": "largest excess kurtosis of the layer's attention matrices",
        "mlp_kurtosis": "largest excess kurtosis of the layer's MLP matrices",
        "sink_mass": "mean attention mass on position 0 (all languages)",
        "attn_out_norm": "mean norm of the attention output (all languages)",
        "mlp_out_norm": "mean norm of the MLP output (all languages)",
    },
    "checkpoint": {
        "step": "training step",
        "max_kurtosis": "largest tensor excess kurtosis of the checkpoint",
    },
}


def check_metric(unit: str, name: str, configs: Sequence[str]) -> str | None:
    """None if ``name`` is a metric of ``unit``; otherwise what is wrong with it."""
    if unit == "language" and name.startswith("rho:"):
        config = name.removeprefix("rho:")
        return None if config in configs else f"{name!r} names a config not in compress.configs"
    if name not in METRICS[unit]:
        return f"unknown {unit} metric {name!r}; known: {sorted(METRICS[unit])} (and rho:<config>)"
    return None


def _column(table: pd.DataFrame, name: str, rule_id: str) -> np.ndarray:
    if name not in table.columns:
        raise KeyError(f"hypothesis {rule_id}: metric {name!r} is missing from the analysis table")
    return table[name].to_numpy(dtype=np.float64)


MIN_UNITS = 4  # the correlation battery's minimum


def _complete_units(table: pd.DataFrame, names: Sequence[str],
                    rule_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The units where every metric of a test is defined, and the units left out.

    A metric may be undefined for some units, e.g. ``resource_level`` of a language whose model
    has no published pretraining share; such a unit is left out of that test only.
    """
    defined = np.logical_and.reduce([np.isfinite(_column(table, name, rule_id)) for name in names])
    return table[defined], [str(unit) for unit in table.index[~defined]]


def evaluate_ledger(rules: Sequence, tables: dict[str, pd.DataFrame], sweep_verdicts: list[dict],
                    alpha: float, permutation_resamples: int, bootstrap_resamples: int,
                    confidence: float, seed: int) -> list[dict]:
    """One record per hypothesis, in params order, with statistic, CI, Holm-adjusted p, verdict."""
    by_id = {v["id"]: v for v in sweep_verdicts}
    records: list[dict] = []
    for rule in rules:
        base = {"id": rule.id, "statement": rule.statement, "kind": rule.kind}
        if rule.kind == "not_run":
            records.append({**base, "verdict": "NOT RUN", "reason": rule.reason})
        elif rule.kind == "laaciq_vs_aciq":
            found = by_id.get(rule.id)
            if found is None:
                raise KeyError(f"hypothesis {rule.id}: no LA-ACIQ comparison was computed for it")
            records.append({**base, "statistic": "range_reduction", "value": found["range_reduction"],
                            "ci_low": found["range_reduction_ci_low"],
                            "ci_high": found["range_reduction_ci_high"],
                            "mean_rho_increase": found["mean_rho_increase"],
                            "verdict": found["verdict"]})
        elif rule.kind == "correlation":
            table, left_out = _complete_units(tables[rule.unit], [rule.x, rule.y, *rule.covariates], rule.id)
            if left_out and len(table) < MIN_UNITS:  # too few once undefined units are left out
                records.append({**base, "verdict": "NOT RUN", "left_out": left_out,
                                "reason": f"only {len(table)} {rule.unit}s have every metric of this test "
                                          f"(at least {MIN_UNITS} needed); left out: {left_out}"})
                continue
            covariates = {c: _column(table, c, rule.id) for c in rule.covariates}
            alternative = rule.direction if rule.threshold == 0 else "two-sided"
            result = correlation_battery(
                _column(table, rule.x, rule.id), _column(table, rule.y, rule.id),
                [str(u) for u in table.index], covariates or None, method=rule.statistic,
                n_resamples=permutation_resamples, n_bootstrap=bootstrap_resamples,
                confidence=confidence, seed=seed, alternative=alternative)
            records.append({**base, "unit": rule.unit, "x": rule.x, "y": rule.y,
                            "threshold": rule.threshold, "direction": rule.direction,
                            **result.to_dict(), "p": result.permutation_p,
                            **({"left_out": left_out} if left_out else {})})
        elif rule.kind == "sign_test":
            table = tables[rule.unit]
            x, y = _column(table, rule.x, rule.id), _column(table, rule.y, rule.id)
            wins, n = int((x > y).sum()), int((x != y).sum())  # a sign test drops ties
            if n == 0:
                raise ValueError(f"hypothesis {rule.id}: every unit is a tie")
            test = sps.binomtest(wins, n, 0.5, alternative=rule.direction)
            # a two-sided interval, comparable with the correlation CIs
            ci = sps.binomtest(wins, n, 0.5).proportion_ci(confidence_level=confidence)
            records.append({**base, "unit": rule.unit, "x": rule.x, "y": rule.y, "n": n,
                            "statistic": "share_x_greater", "value": wins / n, "ci_low": ci.low,
                            "ci_high": ci.high, "threshold": 0.5, "direction": rule.direction,
                            "p": test.pvalue})
        else:
            raise ValueError(f"hypothesis {rule.id}: unknown kind {rule.kind!r}")
    tested = [r for r in records if "p" in r]
    if tested:
        for record, adjusted in zip(tested, holm([r["p"] for r in tested]), strict=True):
            record["p_holm"] = float(adjusted)
            record["verdict"] = verdict(record["value"], record["ci_low"], record["ci_high"],
                                        record["p_holm"], record["threshold"], record["direction"],
                                        alpha)
    return records
