"""The hypothesis ledger: every pre-registered hypothesis of params.yaml with its rule and verdict.

Metrics are looked up by name in per-unit tables (one row per language, layer or checkpoint)
that the analysis stage assembles from pipeline outputs; ``rel_degradation:<config>`` is a
language's relative degradation under a swept compression config.

The Holm family is pre-registered (``analysis.holm_family``). Before a test runs, the smallest
p-value it can attain at its ``n`` is computed from the test's kind; a test that cannot go below
``alpha / m`` (``m`` = size of the pre-registered family; ``alpha`` for a test outside it) could
only be rejected after every other member, never on its own evidence: it is reported NOT
TESTABLE with that reason and left out of the family, so it does not inflate the others' Holm p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from qfair.analysis.stats import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_TESTABLE,
    REJECTED,
    SUPPORTED,
    correlation_battery,
    holm,
    permutation_min_p,
    sign_test_min_p,
    verdict,
)

REL_PREFIX = "rel_degradation:"
METRICS = {
    "language": {
        "resource_level": "ln of the language's share of training bytes",
        "baseline_bpb": "full-precision test bits per byte",
        "script_latin": "1 for Latin script, else 0",
        "tokens_per_byte": "project tokenizer, parallel test set",
        "token_premium": "tokens relative to corpus.reference_language on the parallel test set",
        "outlier_layer_share": "share of block-output norm in the outlier layers (attention + MLP)",
        "effective_kurtosis": "sum over layers: normalised block-output norm x layer kurtosis",
        "act_kurtosis_mean": "mean over compressed layers of the excess kurtosis of the layer's inputs",
        "act_channel_max_over_median_mean": "mean over compressed layers of the largest over the median "
                                            "per-channel input absmax",
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
    "head": {
        "language_specific": "1 for a language-specific head (B-001), else 0",
        "outlier_head": "1 if the head's output-projection slice is among the most heavy-tailed, else 0",
    },
}
# Language metrics that exist once the interpretability stage (Track B) has run.
METRICS["language"] |= {
    "ablation_sensitivity": "mean relative NLL change over mean-ablations of each attention and MLP "
                            "block (B-003)",
    "probe_accuracy_drop": "full-precision minus quantized language-ID probe accuracy, mean over blocks "
                           "(B-002; only where interpretability.probe_folds is set)",
}
MIN_UNITS = 4  # the correlation battery's minimum
TESTED_KINDS = ("correlation", "sign_test", "overlap")  # the kinds with a p-value (Holm family members)


def check_metric(unit: str, name: str, configs: Sequence[str]) -> str | None:
    """None if ``name`` is a metric of ``unit``; otherwise what is wrong with it."""
    if unit == "language" and name.startswith(REL_PREFIX):
        config = name.removeprefix(REL_PREFIX)
        return None if config in configs else f"{name!r} names a config not in compress.configs"
    if name not in METRICS[unit]:
        return (f"unknown {unit} metric {name!r}; known: {sorted(METRICS[unit])} "
                f"(and {REL_PREFIX}<config>)")
    return None


def check_family(family: Sequence[str], rules: Sequence) -> str | None:
    """None if every id of ``family`` is a tested hypothesis; otherwise what is wrong."""
    kinds = {rule.id: rule.kind for rule in rules}
    unknown = [i for i in family if i not in kinds]
    if unknown:
        return f"unknown hypothesis id(s) {unknown}; known: {sorted(kinds)}"
    untested = [i for i in family if kinds[i] not in TESTED_KINDS]
    if untested:
        return f"{untested} have no p-value (kind not in {list(TESTED_KINDS)}); only tests join a Holm family"
    repeated = sorted({i for i in family if list(family).count(i) > 1})
    return f"listed more than once: {repeated}" if repeated else None


def range_reduction_verdict(result: dict[str, float], min_range_reduction: float,
                   max_mean_rel_degradation_increase: float) -> str:
    """EXP-031's rule on its two conditions (range reduction, relative mean-degradation increase).

    SUPPORTED when the whole CI of the range reduction is at or above ``min_range_reduction`` and
    the whole CI of the relative increase of the mean relative degradation is below
    ``max_mean_rel_degradation_increase``; REJECTED when either CI lies entirely on the wrong
    side (reduction's upper bound below the target, or the increase's lower bound at or above the
    limit);
    INCONCLUSIVE otherwise (NaN included).
    """
    bounds = [result[k] for k in ("range_reduction_ci_low", "range_reduction_ci_high",
                                  "mean_rel_degradation_increase_ci_low",
                                  "mean_rel_degradation_increase_ci_high")]
    if any(math.isnan(b) for b in bounds):
        return INCONCLUSIVE
    rr_low, rr_high, mri_low, mri_high = bounds
    if rr_low >= min_range_reduction and mri_high < max_mean_rel_degradation_increase:
        return SUPPORTED
    if rr_high < min_range_reduction or mri_low >= max_mean_rel_degradation_increase:
        return REJECTED
    return INCONCLUSIVE


def min_attainable_p(rule, n: int, permutation_resamples: int) -> float:
    """The smallest p-value ``rule``'s test can give over ``n`` units, known before it runs."""
    if rule.kind == "sign_test":
        return sign_test_min_p(n, rule.direction)
    if rule.kind == "correlation":
        return permutation_min_p(n, permutation_resamples, _alternative(rule))
    if rule.kind == "overlap":
        raise ValueError(f"hypothesis {rule.id}: an overlap test's smallest p depends on its margins "
                         "(overlap_min_p)")
    raise ValueError(f"hypothesis {rule.id}: kind {rule.kind!r} has no p-value")


def _alternative(rule) -> str:
    return rule.direction if rule.threshold == 0 else "two-sided"


def _column(table: pd.DataFrame, name: str, rule_id: str) -> np.ndarray:
    if name not in table.columns:
        raise KeyError(f"hypothesis {rule_id}: metric {name!r} is missing from the analysis table")
    return table[name].to_numpy(dtype=np.float64)


def _complete_units(table: pd.DataFrame, names: Sequence[str],
                    rule_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The units where every metric of a test is defined, and the units left out.

    A metric may be undefined for some units, e.g. ``resource_level`` of a language whose model
    has no published pretraining share; such a unit is left out of that test only.
    """
    defined = np.logical_and.reduce([np.isfinite(_column(table, name, rule_id)) for name in names])
    return table[defined], [str(unit) for unit in table.index[~defined]]


def overlap_min_p(n_units: int, n_x: int, n_y: int) -> float:
    """Smallest p of the one-sided hypergeometric test with these margins (the largest overlap)."""
    return float(sps.hypergeom.sf(min(n_x, n_y) - 1, n_units, n_y, n_x))


def _overlap(rule, table: pd.DataFrame, confidence: float) -> dict:
    from qfair.analysis.heads import overlap_test

    x, y = _column(table, rule.x, rule.id) > 0, _column(table, rule.y, rule.id) > 0
    result = overlap_test(x, y, confidence)
    return {"statistic": "odds_ratio", "value": result["odds_ratio"], "threshold": 1.0,
            "n": result["n_heads"],
            **{k: v for k, v in result.items() if k != "odds_ratio"}}


def _not_testable(min_p: float, level: float, n: int, unit: str, alpha: float, m: int) -> str:
    bound = f"alpha / m = {alpha:g} / {m} = {level:.3g}" if m > 1 else f"alpha = {alpha:g}"
    return (f"at n = {n} {unit}s the smallest attainable p is {min_p:.3g}, not below {bound}; "
            "left out of the Holm family")


def _estimate(rule, table: pd.DataFrame) -> dict:
    """The point estimate alone (descriptive: no CI, no p) of a correlation that is not tested."""
    x, y = _column(table, rule.x, rule.id), _column(table, rule.y, rule.id)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float((sps.spearmanr if rule.statistic == "spearman" else sps.pearsonr)(x, y).statistic)
    name = {"spearman": "spearman_rho", "pearson": "pearson_r"}[rule.statistic]
    return {"statistic": name, "value": value} if np.isfinite(value) else {}


def _correlation(rule, table: pd.DataFrame, left_out: list[str], settings: dict) -> dict:
    covariates = {c: _column(table, c, rule.id) for c in rule.covariates}
    result = correlation_battery(
        _column(table, rule.x, rule.id), _column(table, rule.y, rule.id),
        [str(u) for u in table.index], covariates or None, method=rule.statistic,
        n_resamples=settings["permutation_resamples"], n_bootstrap=settings["bootstrap_resamples"],
        confidence=settings["confidence"], seed=settings["seed"], alternative=_alternative(rule))
    return {"threshold": rule.threshold, **result.to_dict(), "p": result.permutation_p,
            **({"left_out": left_out} if left_out else {})}


def _sign_test(rule, wins: int, n: int, confidence: float) -> dict:
    test = sps.binomtest(wins, n, 0.5, alternative=rule.direction)
    # a two-sided interval, comparable with the correlation CIs
    ci = sps.binomtest(wins, n, 0.5).proportion_ci(confidence_level=confidence)
    return {"n": n, "statistic": "share_x_greater", "value": wins / n, "ci_low": ci.low,
            "ci_high": ci.high, "threshold": 0.5, "p": test.pvalue}


def evaluate_ledger(rules: Sequence, tables: dict[str, pd.DataFrame], comparisons: pd.DataFrame,
                    alpha: float, permutation_resamples: int, bootstrap_resamples: int,
                    confidence: float, seed: int, holm_family: Sequence[str] | None = None) -> list[dict]:
    """One record per hypothesis, in params order, with statistic, CI, Holm-adjusted p, verdict.

    ``comparisons``: one row per ``range_reduction`` rule, by ``id`` (the compare_configs stage's
    table, :func:`qfair.analysis.sweep.comparison_table`); its decision is :func:`range_reduction_verdict`.

    ``holm_family``: the pre-registered ids corrected together (None: every test). A test
    outside it is corrected alone (``p_holm = p``). Each record of a test says ``holm_family``
    (True/False) and ``min_p``, the smallest p attainable at its n.
    """
    family = {r.id for r in rules if r.kind in TESTED_KINDS} if holm_family is None else set(holm_family)
    settings = {"permutation_resamples": permutation_resamples, "seed": seed,
                "bootstrap_resamples": bootstrap_resamples, "confidence": confidence}
    by_id = {row["id"]: row for row in comparisons.to_dict("records")}
    records: list[dict] = []
    for rule in rules:
        base = {"id": rule.id, "statement": rule.statement, "kind": rule.kind}
        if rule.kind == "not_run":
            records.append({**base, "verdict": NOT_RUN, "reason": rule.reason})
            continue
        if rule.kind == "range_reduction":
            found = by_id.get(rule.id)
            if found is None:
                raise KeyError(f"hypothesis {rule.id}: results/sweep/comparisons.csv has no row for it "
                               "(rerun the compare_configs stage)")
            if (found["treatment"], found["baseline"]) != (rule.treatment, rule.baseline):
                raise ValueError(f"hypothesis {rule.id}: results/sweep/comparisons.csv compares "
                                 f"{found['treatment']} with {found['baseline']}, params "
                                 f"{rule.treatment} with {rule.baseline} (rerun compare_configs)")
            records.append({**base, "statistic": "range_reduction", "value": found["range_reduction"],
                            "ci_low": found["range_reduction_ci_low"],
                            "ci_high": found["range_reduction_ci_high"],
                            **{k: found[k] for k in ("mean_rel_degradation_increase",
                                                     "mean_rel_degradation_increase_ci_low",
                                                     "mean_rel_degradation_increase_ci_high")},
                            "verdict": range_reduction_verdict(found, rule.min_range_reduction,
                                                      rule.max_mean_rel_degradation_increase)})
            continue
        if rule.kind not in TESTED_KINDS:
            raise ValueError(f"hypothesis {rule.id}: unknown kind {rule.kind!r}")
        base |= {"unit": rule.unit, "x": rule.x, "y": rule.y, "direction": rule.direction,
                 "holm_family": rule.id in family}
        if rule.kind == "correlation":
            table, left_out = _complete_units(tables[rule.unit], [rule.x, rule.y, *rule.covariates], rule.id)
            n = len(table)
            if left_out and n < MIN_UNITS:  # too few once undefined units are left out
                records.append({**base, "verdict": NOT_RUN, "left_out": left_out,
                                "reason": f"only {n} {rule.unit}s have every metric of this test "
                                          f"(at least {MIN_UNITS} needed); left out: {left_out}"})
                continue
            constant = [c for c in (rule.x, rule.y) if np.unique(_column(table, c, rule.id)).size == 1]
            if constant:  # e.g. a probe accuracy that quantization never moves: no correlation exists
                value = float(_column(table, constant[0], rule.id)[0])
                records.append({**base, "n": n, "verdict": NOT_TESTABLE, "holm_family": False,
                                **({"left_out": left_out} if left_out else {}),
                                "reason": f"{constant[0]} is the same ({value:g}) for every {rule.unit}; "
                                          "a correlation with it is undefined"})
                continue
        elif rule.kind == "overlap":
            if rule.unit not in tables:
                records.append({**base, "verdict": NOT_RUN,
                                "reason": f"no {rule.unit} table (the interpretability stage's output)"})
                continue
            table, left_out = tables[rule.unit], []
            n = len(table)
            n_x, n_y = (int((_column(table, c, rule.id) > 0).sum()) for c in (rule.x, rule.y))
            if n_x == 0 or n_y == 0:
                records.append({**base, "n": n, "min_p": 1.0, "verdict": NOT_TESTABLE, "holm_family": False,
                                "overlap": 0, "expected_overlap": n_x * n_y / n,
                                "reason": f"no head has {rule.x if n_x == 0 else rule.y}; "
                                          "nothing to overlap"})
                continue
        else:
            table, left_out = tables[rule.unit], []
            x, y = _column(table, rule.x, rule.id), _column(table, rule.y, rule.id)
            wins, n = int((x > y).sum()), int((x != y).sum())  # a sign test drops ties
            if n == 0:
                raise ValueError(f"hypothesis {rule.id}: every unit is a tie")
        m = len(family) if rule.id in family else 1
        min_p = (overlap_min_p(n, n_x, n_y) if rule.kind == "overlap"
                 else min_attainable_p(rule, n, permutation_resamples))
        if min_p >= alpha / m:
            estimate = (_estimate(rule, table) if rule.kind == "correlation"
                        else _overlap(rule, table, confidence) if rule.kind == "overlap"
                        else {"statistic": "share_x_greater", "value": wins / n})
            # descriptive only: the estimate (and an overlap's counts), no p-value
            estimate = {k: estimate[k] for k in ("statistic", "value", "overlap", "expected_overlap")
                        if k in estimate}
            records.append({**base, "n": n, "min_p": min_p, "verdict": NOT_TESTABLE,
                            "holm_family": False, **estimate, **({"left_out": left_out} if left_out else {}),
                            "reason": _not_testable(min_p, alpha / m, n, rule.unit, alpha, m)})
            continue
        result = (_correlation(rule, table, left_out, settings) if rule.kind == "correlation"
                  else _overlap(rule, table, confidence) if rule.kind == "overlap"
                  else _sign_test(rule, wins, n, confidence))
        records.append({**base, **result, "min_p": min_p})
    _adjust(records, alpha)
    return records


def _adjust(records: list[dict], alpha: float) -> None:
    """Holm-adjust the family's p-values together (others alone) and set the verdicts."""
    tested = [r for r in records if "p" in r]
    members = [r for r in tested if r["holm_family"]]
    if members:
        for record, adjusted in zip(members, holm([r["p"] for r in members]), strict=True):
            record["p_holm"] = float(adjusted)
    for record in tested:
        record.setdefault("p_holm", float(record["p"]))
        record["verdict"] = verdict(record["value"], record["ci_low"], record["ci_high"],
                                    record["p_holm"], record["threshold"], record["direction"], alpha)
