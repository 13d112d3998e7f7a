"""Tests of the cross-language correlation battery, Holm correction and verdict rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from qfair.analysis.stats import (
    INCONCLUSIVE,
    REJECTED,
    SUPPORTED,
    correlation_battery,
    holm,
    paired_bootstrap,
    partial_correlation,
    permutation_min_p,
    script_covariate,
    sign_test_min_p,
    verdict,
)

FAST = {"n_resamples": 999, "n_bootstrap": 999}


def _langs(n: int) -> list[str]:
    return [f"l{i:02d}" for i in range(n)]


def _sample(seed: int, n: int, slope: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, slope * x + rng.normal(size=n)


# --- point estimates and leave-one-out ---------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 30), method=st.sampled_from(["pearson", "spearman"]))
def test_estimates_and_loo_match_scipy(seed, n, method):
    x, y = _sample(seed, n, slope=0.5)
    res = correlation_battery(x, y, _langs(n), method=method, n_resamples=99, n_bootstrap=99, seed=seed)
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    assert res.pearson_r == pytest.approx(pearson.statistic, abs=1e-12)
    assert res.pearson_p == pytest.approx(pearson.pvalue, rel=1e-9)
    assert res.spearman_rho == pytest.approx(spearman.statistic, abs=1e-12)
    assert res.spearman_p == pytest.approx(spearman.pvalue, rel=1e-9)
    assert res.value == (res.pearson_r if method == "pearson" else res.spearman_rho)
    # The vectorized leave-one-out must agree with scipy on each subsample.
    scipy_stat = stats.pearsonr if method == "pearson" else stats.spearmanr
    loo = [scipy_stat(np.delete(x, i), np.delete(y, i)).statistic for i in range(n)]
    assert res.loo_min == pytest.approx(min(loo), abs=1e-10)
    assert res.loo_max == pytest.approx(max(loo), abs=1e-10)
    assert res.loo_min_language == _langs(n)[int(np.argmin(loo))]
    assert res.loo_max_language == _langs(n)[int(np.argmax(loo))]


def test_loo_names_the_outlier_language_that_drives_the_correlation():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=9), rng.normal(size=9)
    x[4], y[4] = 30.0, 30.0  # one extreme language makes unrelated data look correlated
    langs = ["en", "fr", "de", "es", "yo", "hi", "zh", "ar", "sw"]
    res = correlation_battery(x, y, langs, method="pearson", **FAST)
    assert res.pearson_r > 0.9
    assert res.loo_min_language == "yo"
    assert abs(res.loo_min) < 0.7
    assert res.loo_max - res.loo_min > 0.3


# --- permutation test and bootstrap CI ---------------------------------------------------------

@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_permutation_p_close_to_parametric_p_and_reproducible(method):
    x, y = _sample(21, 60, slope=0.25)
    res = correlation_battery(x, y, _langs(60), method=method, n_bootstrap=99, n_resamples=9999, seed=5)
    parametric = res.pearson_p if method == "pearson" else res.spearman_p
    assert 0.005 < parametric < 0.2  # the sample is in the informative range
    assert res.permutation_p == pytest.approx(parametric, abs=0.01, rel=0.2)
    again = correlation_battery(x, y, _langs(60), method=method, n_bootstrap=99, n_resamples=9999, seed=5)
    assert again.permutation_p == res.permutation_p
    other = correlation_battery(x, y, _langs(60), method=method, n_bootstrap=99, n_resamples=9999, seed=6)
    assert other.permutation_p != res.permutation_p


def test_permutation_one_sided_halves_two_sided():
    x, y = _sample(2, 40, slope=0.4)
    two = correlation_battery(x, y, _langs(40), method="pearson", **FAST).permutation_p
    greater = correlation_battery(x, y, _langs(40), method="pearson", alternative="greater", **FAST)
    assert greater.permutation_p < two
    assert greater.pearson_p == pytest.approx(stats.pearsonr(x, y, alternative="greater").pvalue)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_ci_contains_estimate_and_is_reproducible(method):
    x, y = _sample(7, 25, slope=3.0)
    res = correlation_battery(x, y, _langs(25), method=method, seed=1, **FAST)
    assert res.ci_method == "BCa"
    assert 0.5 < res.ci_low < res.value < res.ci_high <= 1.0
    assert res.bootstrap_undefined == 0
    again = correlation_battery(x, y, _langs(25), method=method, seed=1, **FAST)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)
    wider = correlation_battery(x, y, _langs(25), method=method, seed=1, confidence=0.99, **FAST)
    assert wider.ci_low <= res.ci_low and wider.ci_high >= res.ci_high


def test_bootstrap_falls_back_when_resamples_are_undefined():
    # With 4 languages, ~1.6% of resamples repeat one language: BCa and plain percentile are NaN.
    res = correlation_battery([1, 2, 3, 4], [1, 3, 2, 5], ["a", "b", "c", "d"], method="pearson", **FAST)
    assert res.ci_method == "percentile_defined"
    assert res.bootstrap_undefined > 0
    assert -1.0 <= res.ci_low < res.ci_high <= 1.0


# --- partial correlation -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_partial_matches_first_order_formula(method):
    rng = np.random.default_rng(4)
    z = rng.normal(size=20)
    x, y = z + rng.normal(size=20), 0.5 * z + rng.normal(size=20)
    # Independent check: r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)).
    r = stats.pearsonr if method == "pearson" else stats.spearmanr
    rxy, rxz, ryz = r(x, y).statistic, r(x, z).statistic, r(y, z).statistic
    expected = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    res = correlation_battery(x, y, _langs(20), covariates={"z": z}, method=method, **FAST)
    assert res.partial_r == pytest.approx(expected, abs=1e-10)
    assert res.partial_df == 20 - 2 - 1


def test_partial_matches_hand_residualized_correlation_with_two_covariates():
    rng = np.random.default_rng(8)
    z1, z2 = rng.normal(size=15), rng.normal(size=15)
    x, y = z1 - z2 + rng.normal(size=15), z1 + rng.normal(size=15)
    design = np.column_stack([np.ones(15), z1, z2])
    res_x = x - design @ np.linalg.solve(design.T @ design, design.T @ x)
    res_y = y - design @ np.linalg.solve(design.T @ design, design.T @ y)
    r, p, df = partial_correlation(x, y, {"z1": z1, "z2": z2})
    assert r == pytest.approx(stats.pearsonr(res_x, res_y).statistic, abs=1e-10)
    assert df == 15 - 2 - 2
    # The p-value uses n - 2 - k df, so it differs from pearsonr on the residuals (n - 2 df).
    t = r * np.sqrt(df / (1 - r**2))
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-10)
    assert p != pytest.approx(stats.pearsonr(res_x, res_y).pvalue, rel=1e-3)
    _, p_greater, _ = partial_correlation(x, y, {"z1": z1, "z2": z2}, alternative="greater")
    assert p_greater == pytest.approx(stats.t.sf(t, df), rel=1e-10)


def test_controlling_for_confounder_removes_spurious_correlation():
    rng = np.random.default_rng(12)
    z = rng.normal(size=50)
    x, y = z + 0.3 * rng.normal(size=50), z + 0.3 * rng.normal(size=50)
    res = correlation_battery(x, y, _langs(50), covariates={"z": z}, method="pearson", **FAST)
    assert res.pearson_r > 0.8 and res.pearson_p < 1e-10
    assert abs(res.partial_r) < 0.3
    assert res.partial_p > 0.05


def test_partial_rejects_constant_or_collinear_covariates():
    x, y = _sample(1, 8, slope=1.0)
    with pytest.raises(ValueError, match="constant or collinear"):
        correlation_battery(x, y, _langs(8), covariates={"script": script_covariate(["Latn"] * 8)})
    z = np.arange(8.0)
    with pytest.raises(ValueError, match="constant or collinear"):
        partial_correlation(x, y, {"a": z, "b": 2 * z + 1})
    with pytest.raises(ValueError, match="n - 2 - k"):
        partial_correlation(x[:4], y[:4], {"a": z[:4], "b": z[:4] ** 2})


def test_no_covariates_and_flat_record():
    x, y = _sample(0, 10, slope=1.0)
    assert correlation_battery(x, y, _langs(10), **FAST).partial_r is None
    scripts = ["Latn", "Deva", "Latn", "Hans", "Latn", "Arab", "Latn", "Latn", "Cyrl", "Latn"]
    covs = {"script": script_covariate(scripts), "baseline_bpb": np.linspace(1, 2, 10) ** 2}
    record = correlation_battery(x, y, _langs(10), covariates=covs, **FAST).to_dict()
    assert record["covariates"] == "script,baseline_bpb"
    assert record["statistic"] == "spearman_rho"
    assert all(type(v) in (int, float, str) for v in record.values())
    json.dumps(record)


def test_script_covariate():
    np.testing.assert_array_equal(script_covariate(["Latn", "Deva", "Hans", "Latn"]), [1.0, 0.0, 0.0, 1.0])


# --- input validation --------------------------------------------------------------------------

def test_nan_and_inf_are_reported_with_array_and_language():
    langs = ["en", "fr", "yo", "hi", "zh"]
    with pytest.raises(ValueError, match=r"y is nan for language 'yo'"):
        correlation_battery([1, 2, 3, 4, 5], [1, 2, np.nan, 4, 3], langs)
    with pytest.raises(ValueError, match=r"x is inf for language 'zh'"):
        correlation_battery([1, 2, 3, 4, np.inf], [1, 2, 3, 4, 3], langs)
    with pytest.raises(ValueError, match=r"covariate 'bpb' is nan for language 'hi'"):
        correlation_battery([1, 2, 3, 4, 5], [1, 3, 2, 4, 5], langs, covariates={"bpb": [1, 2, 3, np.nan, 5]})


def test_shape_and_size_errors():
    with pytest.raises(ValueError, match="one value per language"):
        correlation_battery([1, 2, 3, 4, 5], [1, 2, 3, 4], _langs(5))
    with pytest.raises(ValueError, match="at least 4"):
        correlation_battery([1, 2, 3], [1, 3, 2], _langs(3))
    with pytest.raises(ValueError, match="x is constant"):
        correlation_battery([2, 2, 2, 2], [1, 3, 2, 4], _langs(4))
    with pytest.raises(ValueError, match="y is constant"):
        correlation_battery([1, 2, 3, 4], [5, 5, 5, 5], _langs(4))
    with pytest.raises(ValueError, match="unique"):
        correlation_battery([1, 2, 3, 4], [1, 3, 2, 4], ["en", "en", "fr", "de"])
    with pytest.raises(ValueError, match="method"):
        correlation_battery([1, 2, 3, 4], [1, 3, 2, 4], _langs(4), method="kendall")


# --- Holm --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "adjusted"), [
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
    ([0.001, 0.02, 0.03], [0.003, 0.04, 0.04]),  # 3*0.001, 2*0.02, max(0.04, 1*0.03)
    ([0.5, 0.6], [1.0, 1.0]),  # capped at 1
    ([0.02, 0.02, 0.5], [0.06, 0.06, 0.5]),  # ties
    ([0.2], [0.2]),
    ([], []),
])
def test_holm_hand_worked(raw, adjusted):
    np.testing.assert_allclose(holm(raw), adjusted, rtol=1e-12)


def test_holm_rejects_bad_input():
    with pytest.raises(ValueError):
        holm([0.1, 1.2])
    with pytest.raises(ValueError):
        holm([0.1, np.nan])


def _holm_1979_rejections(p: list[float], alpha: float) -> set[int]:
    """Holm's sequential procedure as defined: reject in ascending order while p(j) (m-j+1) <= alpha."""
    rejected, m = set(), len(p)
    for j, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] * (m - j) > alpha:
            break
        rejected.add(int(i))
    return rejected


@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_properties(p):
    adj = holm(p)
    raw = np.asarray(p)
    assert np.all(adj >= raw) and np.all(adj <= 1.0)
    assert np.all(adj <= np.minimum(1.0, len(p) * raw) + 1e-15)  # never worse than Bonferroni
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-values
    for alpha in (0.01, 0.05, 0.1):
        assert {int(i) for i in np.flatnonzero(adj <= alpha)} == _holm_1979_rejections(p, alpha)


# --- verdict -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "low", "high", "p", "direction", "expected"), [
    (0.6, 0.4, 0.8, 0.01, "greater", SUPPORTED),
    (0.6, 0.4, 0.8, 0.06, "greater", INCONCLUSIVE),  # CI fine but adjusted p too large
    (0.6, 0.2, 0.8, 0.01, "greater", INCONCLUSIVE),  # CI contains threshold 0.3
    (0.1, -0.2, 0.25, 0.01, "greater", REJECTED),  # CI wholly below threshold
    (0.1, -0.2, 0.25, 0.9, "greater", REJECTED),
    (0.0, -0.2, 0.1, 0.001, "less", SUPPORTED),
    (0.0, -0.2, 0.35, 0.001, "less", INCONCLUSIVE),
    (0.6, 0.4, 0.8, 0.001, "less", REJECTED),  # CI wholly above threshold
    (0.6, 0.3, 0.8, 0.001, "greater", INCONCLUSIVE),  # CI touches threshold: not excluded
    (np.nan, 0.4, 0.8, 0.01, "greater", INCONCLUSIVE),
    (0.6, 0.4, np.nan, 0.01, "greater", INCONCLUSIVE),
])
def test_verdict_truth_table(value, low, high, p, direction, expected):
    assert verdict(value, low, high, p, threshold=0.3, direction=direction) == expected


def test_verdict_rejects_bad_arguments():
    with pytest.raises(ValueError, match="direction"):
        verdict(0.5, 0.4, 0.6, 0.01, 0.3, "two-sided")
    with pytest.raises(ValueError, match="above"):
        verdict(0.5, 0.6, 0.4, 0.01, 0.3, "greater")


# --- smallest attainable p-values ----------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_sign_test_min_p_is_scipys_exact_value(n: int, alternative: str) -> None:
    extreme = 0 if alternative == "less" else n  # every unit on the tested side
    expected = stats.binomtest(extreme, n, 0.5, alternative=alternative).pvalue
    assert sign_test_min_p(n, alternative) == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")  # BCa, n=4
@pytest.mark.parametrize(("n", "resamples"), [(4, 9999), (5, 9999), (6, 999), (7, 999), (9, 99)])
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_permutation_min_p_is_the_batterys_smallest_p(n: int, resamples: int, alternative: str) -> None:
    x = np.arange(n, dtype=float)
    y = x**2 if alternative != "less" else -(x**2)  # perfectly monotone: the most extreme pairing
    result = correlation_battery(x, y, [f"l{i}" for i in range(n)], n_resamples=resamples,
                                 n_bootstrap=100, seed=1, alternative=alternative)
    expected = permutation_min_p(n, resamples, alternative)
    assert result.permutation_p == pytest.approx(expected, rel=1e-9)
    exact = math.factorial(n) <= resamples
    assert expected == pytest.approx((1 if alternative != "two-sided" else 2)
                                     * (1 / math.factorial(n) if exact else 1 / (resamples + 1)))


def test_min_p_of_the_embedded_profiles_small_tests() -> None:
    assert sign_test_min_p(4) == 1 / 16  # EXP-022: four layers
    assert permutation_min_p(4, 9999) == pytest.approx(1 / 24)  # EXP-027, EXP-030: n = 4
    with pytest.raises(ValueError):
        sign_test_min_p(0)
    with pytest.raises(ValueError):
        permutation_min_p(4, 99, "bigger")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # BCa of a constant
def test_paired_bootstrap_falls_back_per_statistic_on_the_same_resamples() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)

    def two(x, y, axis=-1):  # a mean difference, and a statistic that is constant (BCa undefined)
        return np.stack([(x - y).mean(axis=axis), np.zeros(np.shape(x)[:-1]) + 2.0])

    low, high, fell_back, distribution = paired_bootstrap((a, b), two, 999, 0.9, np.random.default_rng(1))
    assert fell_back.tolist() == [False, True] and distribution.shape == (2, 999)
    assert (low[1], high[1]) == (2.0, 2.0)
    direct = stats.bootstrap((a, b), lambda x, y, axis=-1: (x - y).mean(axis=axis), paired=True,
                             vectorized=True, n_resamples=999, confidence_level=0.9, method="BCa",
                             rng=np.random.default_rng(1)).confidence_interval
    assert (low[0], high[0]) == pytest.approx((direct.low, direct.high))
