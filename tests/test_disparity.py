"""Disparity statistics of the compression sweep, the EXP-031 verdict and the sweep tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from qfair.analysis.disparity import (
    comparison,
    disparity,
    disparity_statistics,
    language_rel_degradation_ci,
    rel_degradation_matrix,
    terciles,
    threshold_bits,
)
from qfair.analysis.ledger import INCONCLUSIVE, REJECTED, SUPPORTED, range_reduction_verdict
from qfair.analysis.sweep import (
    comparison_table,
    disparity_table,
    nll_matrix,
    per_language_table,
    threshold_table,
)
from qfair.quant.configs import parse_config

RESAMPLES = 300


def _noisy(seed: int, n_lang: int = 4, n_items: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """fp NLL and a q that degrades language l by about 0.1 * (l + 1), with item noise."""
    rng = np.random.default_rng(seed)
    fp = rng.uniform(5.0, 15.0, size=(n_lang, n_items))
    factor = 1 + 0.1 * np.arange(1, n_lang + 1)[:, None] + rng.normal(0, 0.03, size=(n_lang, n_items))
    return fp, fp * factor


def _rel_by_hand(fp: np.ndarray, q: np.ndarray) -> list[float]:
    return [sum(q[lang]) / sum(fp[lang]) - 1 for lang in range(fp.shape[0])]


# --- rel and the point estimates ---------------------------------------------------------------


def test_rel_degradation_matrix_hand_case() -> None:
    fp = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 2.0]])
    q = np.array([[2.0, 2.0, 5.0], [5.0, 4.0, 1.0]])
    np.testing.assert_allclose(rel_degradation_matrix(fp, q), [9 / 6 - 1, 10 / 10 - 1])
    # the items axis can be any axis
    np.testing.assert_allclose(rel_degradation_matrix(fp.T, q.T, axis=0), [0.5, 0.0])


def test_terciles() -> None:
    bottom, top = terciles(np.array([3.0, 1.0, 2.0, 0.5, 5.0, 4.0]))
    assert bottom.tolist() == [False, True, False, True, False, False]
    assert top.tolist() == [False, False, False, False, True, True]
    bottom, top = terciles(np.array([2.0, 1.0]))
    assert bottom.tolist() == [False, True] and top.tolist() == [True, False]


def test_disparity_point_estimates_by_hand() -> None:
    fp, q = _noisy(0, n_lang=4)
    levels = np.array([0.5, 3.0, 1.0, 2.0])  # bottom third: language 0; top third: language 1
    rel = _rel_by_hand(fp, q)
    out = disparity(fp, q, levels, RESAMPLES, 0.9, seed=1)
    assert out["range"] == pytest.approx(max(rel) - min(rel))
    assert out["worst"] == pytest.approx(max(rel))
    assert out["mean"] == pytest.approx(sum(rel) / 4)
    assert out["tercile_ratio"] == pytest.approx(rel[0] / rel[1])
    # worst is language 3 (largest degradation by construction), so the ratio is below 1
    assert max(rel) == rel[3] and out["tercile_ratio"] < 1
    for name in ("range", "worst", "mean", "tercile_ratio"):
        assert out[f"{name}_ci_low"] <= out[f"{name}_ci_high"], name
        assert np.isfinite(out[f"{name}_ci_low"]) and np.isfinite(out[f"{name}_ci_high"]), name
    assert out["mean_ci_low"] <= out["mean"] <= out["mean_ci_high"]
    assert out["mean_ci_high"] - out["mean_ci_low"] > 0


def test_disparity_statistics_stack_the_four_statistics() -> None:
    rel = np.array([0.1, 0.4, 0.2])
    bottom, top = np.array([False, True, False]), np.array([True, False, False])
    np.testing.assert_allclose(disparity_statistics(rel, bottom, top), [0.3, 0.4, 0.7 / 3, 4.0])


def test_disparity_cis_are_reproducible_and_seeded() -> None:
    fp, q = _noisy(2)
    levels = np.array([1.0, 2.0, 3.0, 4.0])
    first = disparity(fp, q, levels, RESAMPLES, 0.95, seed=7)
    again = disparity(fp, q, levels, RESAMPLES, 0.95, seed=7)
    other = disparity(fp, q, levels, RESAMPLES, 0.95, seed=8)
    assert first == again
    assert any(first[k] != other[k] for k in first if k.endswith(("_low", "_high")))
    # point estimates do not depend on the seed
    assert all(first[k] == other[k] for k in ("range", "worst", "mean", "tercile_ratio"))
    percentile = disparity(fp, q, levels, RESAMPLES, 0.95, seed=7, method="percentile")
    assert percentile["range"] == first["range"]
    assert percentile["range_ci_low"] <= percentile["range_ci_high"]


def test_identical_fp_and_q_have_no_disparity() -> None:
    fp, _ = _noisy(3)
    np.testing.assert_array_equal(rel_degradation_matrix(fp, fp.copy()), np.zeros(fp.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0/0 tercile ratio and a degenerate bootstrap
        out = disparity(fp, fp.copy(), np.array([1.0, 2.0, 3.0, 4.0]), RESAMPLES, 0.95, seed=0)
    assert out["range"] == 0.0 and out["worst"] == 0.0 and out["mean"] == 0.0


def test_language_rel_degradation_ci_brackets_it() -> None:
    fp, q = _noisy(4, n_lang=1, n_items=30)
    low, high = language_rel_degradation_ci(fp[0], q[0], RESAMPLES, 0.95, seed=0)
    rel = q[0].sum() / fp[0].sum() - 1
    assert low < rel < high
    assert language_rel_degradation_ci(fp[0], q[0], RESAMPLES, 0.95, seed=0) == (low, high)


# --- treatment vs baseline ---------------------------------------------------------------------


def test_comparison_of_a_config_with_itself_is_zero() -> None:
    fp, q = _noisy(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every resample gives exactly 0: degenerate bootstrap
        out = comparison(fp, q, q.copy(), RESAMPLES, 0.95, seed=0)
    assert out["range_reduction"] == pytest.approx(0.0, abs=1e-12)
    assert out["mean_rel_degradation_increase"] == pytest.approx(0.0, abs=1e-12)


def test_comparison_point_estimates_by_hand() -> None:
    fp, baseline = _noisy(6)
    rel_b = np.array(_rel_by_hand(fp, baseline))
    # treatment: every language's degradation pulled halfway to the baseline mean
    target = (rel_b + rel_b.mean()) / 2
    treatment = fp * (1 + target)[:, None]
    rel_t = np.array(_rel_by_hand(fp, treatment))
    np.testing.assert_allclose(rel_t, target)
    out = comparison(fp, treatment, baseline, RESAMPLES, 0.95, seed=0)
    assert out["range_reduction"] == pytest.approx(0.5)
    assert out["mean_rel_degradation_increase"] == pytest.approx(0.0, abs=1e-12)
    assert out["range_reduction_ci_low"] <= out["range_reduction"] <= out["range_reduction_ci_high"]
    worse = fp * (1 + 1.2 * rel_b)[:, None]  # 20% more degradation everywhere, range 20% wider
    out = comparison(fp, worse, baseline, RESAMPLES, 0.95, seed=0)
    assert out["range_reduction"] == pytest.approx(-0.2)
    assert out["mean_rel_degradation_increase"] == pytest.approx(0.2)


# --- B* and the EXP-031 verdict ----------------------------------------------------------------


def test_threshold_bits() -> None:
    bits = np.array([2, 3, 4, 8])
    assert threshold_bits(bits, np.array([0.5, 0.02, 0.005, 0.001]), 0.01) == 4
    assert threshold_bits(bits, np.array([0.5, 0.01, 0.005, 0.001]), 0.01) == 3  # <= tau
    assert threshold_bits(bits, np.array([0.5, 0.2, 0.05, 0.02]), 0.01) is None
    assert threshold_bits(bits[::-1], np.array([0.001, 0.005, 0.02, 0.5]), 0.01) == 4  # any order
    assert threshold_bits(np.array([8]), np.array([-0.01]), 0.01) == 8
    assert isinstance(threshold_bits(bits, np.array([0.0] * 4), 0.01), int)


def test_threshold_bits_needs_every_larger_width_to_pass() -> None:
    # non-monotone: 3 bits pass, 4 bits fail, 5 and 8 pass; the fewest passing bits (3) is not B*
    bits = np.array([3, 4, 5, 8])
    assert threshold_bits(bits, np.array([0.005, 0.02, 0.004, 0.001]), 0.01) == 5
    assert threshold_bits(bits[::-1], np.array([0.001, 0.004, 0.02, 0.005]), 0.01) == 5  # any order
    # the largest width fails: no B*, even though smaller widths pass
    assert threshold_bits(bits, np.array([0.001, 0.002, 0.003, 0.5]), 0.01) is None
    assert threshold_bits(bits, np.array([0.001, 0.002, 0.003, np.nan]), 0.01) is None  # NaN fails


def _laaciq(rr: float, rr_low: float, rr_high: float, mri: float, mri_low: float,
            mri_high: float) -> dict[str, float]:
    return {"range_reduction": rr, "range_reduction_ci_low": rr_low, "range_reduction_ci_high": rr_high,
            "mean_rel_degradation_increase": mri, "mean_rel_degradation_increase_ci_low": mri_low,
            "mean_rel_degradation_increase_ci_high": mri_high}


@pytest.mark.parametrize(("result", "expected"), [
    (_laaciq(0.40, 0.25, 0.55, 0.01, -0.02, 0.04), SUPPORTED),
    (_laaciq(0.30, 0.20, 0.40, 0.01, -0.02, 0.049), SUPPORTED),     # reduction bound inclusive
    (_laaciq(0.30, 0.10, 0.50, 0.01, -0.02, 0.04), INCONCLUSIVE),   # reduction's CI reaches below
    (_laaciq(0.40, 0.25, 0.55, 0.01, -0.02, 0.05), INCONCLUSIVE),   # mean-rel CI touches the limit
    (_laaciq(0.19, 0.05, 0.40, 0.01, -0.02, 0.04), INCONCLUSIVE),   # point below the target
    (_laaciq(0.10, -0.05, 0.19, 0.01, -0.02, 0.04), REJECTED),      # CI rules the target out
    (_laaciq(0.10, 0.05, 0.30, 0.08, 0.05, 0.12), REJECTED),        # mean-rel CI at the limit
    (_laaciq(0.30, 0.10, 0.50, 0.10, 0.06, 0.20), REJECTED),        # mean-rel CI above it
    (_laaciq(0.0, np.nan, np.nan, 0.0, np.nan, np.nan), INCONCLUSIVE),  # degenerate bootstrap
])
def test_range_reduction_verdict_truth_table(result: dict[str, float], expected: str) -> None:
    assert range_reduction_verdict(result, min_range_reduction=0.20,
                          max_mean_rel_degradation_increase=0.05) == expected


# --- sweep tables ------------------------------------------------------------------------------

LANGS = ["en", "hi_IN", "zh_Hans"]
LEVELS = {"en": 3.0, "hi_IN": 1.0, "zh_Hans": 2.0}
# Exact per-language NLL factors, so every rel is known: rtn-w4-ch-sym doubles Hindi.
FACTORS = {
    "rtn-w8-ch-sym": {"en": 1.001, "hi_IN": 1.002, "zh_Hans": 1.02},
    "rtn-w4-ch-sym": {"en": 1.005, "hi_IN": 2.0, "zh_Hans": 1.05},
    "rtn-w2-ch-sym": {"en": 1.5, "hi_IN": 3.0, "zh_Hans": 2.0},
    "rtn-w8-tensor-sym": {"en": 1.001, "hi_IN": 1.001, "zh_Hans": 1.001},
    "rtn-w2-tensor-sym": {"en": 1.2, "hi_IN": 1.3, "zh_Hans": 1.4},
    "rtn-w4-ch-asym": {"en": 1.0, "hi_IN": 1.0, "zh_Hans": 1.0},
    "aciq-laplace-w4-ch": {"en": 1.0, "hi_IN": 1.0, "zh_Hans": 1.0},
}
N_ITEMS = 8


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for lang in LANGS:
        # ids shuffled in the frame: the tables must sort them, not trust the row order
        for index in rng.permutation(N_ITEMS):
            item_id = f"mod::item_{index:02d}"
            nll = 5.0 + index + LANGS.index(lang)
            rows.append({"config": "fp", "language": lang, "item_id": item_id, "nll": nll,
                         "n_tokens": 3 + index, "n_bytes": 10 + index})
            for config, factors in FACTORS.items():
                rows.append({"config": config, "language": lang, "item_id": item_id,
                             "nll": nll * factors[lang], "n_tokens": 3 + index, "n_bytes": 10 + index})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def configs():
    return [parse_config(name) for name in FACTORS]


@pytest.fixture(scope="module")
def per_language(items, configs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exact factors make some bootstraps degenerate
        return per_language_table(items, configs, LANGS, LEVELS, RESAMPLES, 0.95, seed=0,
                                  method="percentile")


def test_nll_matrix_sorts_items_and_checks_them(items) -> None:
    fp = nll_matrix(items, "fp", LANGS)
    assert fp.shape == (3, N_ITEMS)
    np.testing.assert_allclose(fp[1], 5.0 + np.arange(N_ITEMS) + 1)
    with pytest.raises(ValueError, match="rtn-w8-ch-sym"):
        nll_matrix(items.drop(items.index[items["config"] == "rtn-w8-ch-sym"][:1]), "rtn-w8-ch-sym", LANGS)
    with pytest.raises(ValueError, match="bnb-nf4"):
        nll_matrix(items, "bnb-nf4", LANGS)


def test_per_language_table(per_language, items) -> None:
    assert len(per_language) == len(FACTORS) * len(LANGS)
    assert not per_language.duplicated(["config", "language"]).any()
    for _, row in per_language.iterrows():
        assert row["rel_degradation"] == pytest.approx(FACTORS[row["config"]][row["language"]] - 1, abs=1e-12)
        rel = row["rel_degradation"]
        assert row["rel_degradation_ci_low"] <= rel + 1e-12 and rel <= row["rel_degradation_ci_high"] + 1e-12
        assert row["resource_level"] == LEVELS[row["language"]]
    hindi = per_language.set_index(["config", "language"]).loc[("rtn-w4-ch-sym", "hi_IN")]
    assert hindi["rel_degradation"] == pytest.approx(1.0)
    fp_sum = items[(items["config"] == "fp") & (items["language"] == "hi_IN")]["nll"].sum()
    assert hindi["nll_fp"] == pytest.approx(fp_sum)
    assert hindi["nll_q"] == pytest.approx(2 * fp_sum)
    assert hindi["delta_nats_per_item"] == pytest.approx(fp_sum / N_ITEMS)
    assert (hindi["method"], hindi["bits"], hindi["granularity"]) == ("rtn", 4, "channel")


def test_disparity_table(items, configs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = disparity_table(items, configs, LANGS, LEVELS, RESAMPLES, 0.95, seed=0,
                                method="percentile").set_index("config")
    assert list(table.index) == list(FACTORS)
    w4 = table.loc["rtn-w4-ch-sym"]
    assert w4["worst_language"] == "hi_IN"
    assert w4["worst"] == pytest.approx(1.0)
    assert w4["range"] == pytest.approx(1.0 - 0.005)
    assert w4["mean"] == pytest.approx((0.005 + 1.0 + 0.05) / 3)
    assert w4["tercile_ratio"] == pytest.approx(1.0 / 0.005)  # bottom: hi_IN, top: en
    assert table.loc["rtn-w2-tensor-sym", "worst_language"] == "zh_Hans"
    assert table.loc["rtn-w8-ch-sym", "worst_language"] == "zh_Hans"
    assert table.loc["aciq-laplace-w4-ch", "range"] == pytest.approx(0.0)


def test_threshold_table(per_language) -> None:
    table = threshold_table(per_language, tau=0.01)
    got = {(r["granularity"], r["language"]): r["b_star"] for _, r in table.iterrows()}
    assert got == {
        ("channel", "en"): "4", ("channel", "hi_IN"): "8", ("channel", "zh_Hans"): "none",
        ("tensor", "en"): "8", ("tensor", "hi_IN"): "8", ("tensor", "zh_Hans"): "8",
    }
    levels = {r["language"]: r["resource_level"] for _, r in table.iterrows()}
    assert levels == LEVELS
    # the asymmetric and ACIQ configs (rel 0 at 4 bits) do not enter B*
    looser = threshold_table(per_language, tau=0.03)
    assert looser.set_index(["granularity", "language"]).loc[("channel", "zh_Hans"), "b_star"] == "8"


def test_comparison_table_is_the_paired_comparison_of_each_rule(items) -> None:
    from qfair.params import RangeReductionRule

    rule = RangeReductionRule(id="L-1", statement="s", kind="range_reduction", treatment="rtn-w4-ch-asym",
                      baseline="rtn-w2-tensor-sym", min_range_reduction=0.2,
                      max_mean_rel_degradation_increase=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exact factors make some bootstraps degenerate
        table = comparison_table(items, [rule], RESAMPLES, 0.95, seed=0, method="percentile")
        direct = comparison(nll_matrix(items, "fp", sorted(LANGS)),
                            nll_matrix(items, "rtn-w4-ch-asym", sorted(LANGS)),
                            nll_matrix(items, "rtn-w2-tensor-sym", sorted(LANGS)), RESAMPLES, 0.95,
                            seed=0, method="percentile")
    row = table.iloc[0].to_dict()
    assert (row["id"], row["treatment"], row["baseline"]) == ("L-1", "rtn-w4-ch-asym", "rtn-w2-tensor-sym")
    assert row["range_reduction"] == pytest.approx(1.0)  # the treatment (factor 1.0) has no range
    assert {k: row[k] for k in direct} == direct
    empty = comparison_table(items, [], RESAMPLES, 0.95, seed=0)
    assert len(empty) == 0 and list(empty.columns) == list(table.columns)
