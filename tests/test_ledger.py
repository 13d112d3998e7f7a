"""The hypothesis ledger: metric names, verdicts from rules, Holm correction, missing inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qfair.analysis.ledger import METRICS, check_family, check_metric, evaluate_ledger
from qfair.params import CorrelationRule, NotRunRule, OverlapRule, RangeReductionRule, SignTestRule

CONFIGS = ["rtn-w4-ch-sym", "bnb-nf4"]
LANGUAGES = ["am", "ar", "bn", "de", "en", "es", "fr", "hi", "sw", "yo", "zh", "ur"]
ALPHA = 0.05
# BCa's acceleration is 0/0 for some jackknife samples of a near-perfect rank correlation (scipy).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")


# --- metric names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "name"), [
    ("language", "resource_level"), ("language", "token_premium"),
    ("language", "rel_degradation:rtn-w4-ch-sym"),
    ("language", "rel_degradation:bnb-nf4"), ("layer", "sink_mass"), ("layer", "attn_kurtosis"),
    ("checkpoint", "step"), ("checkpoint", "max_kurtosis"),
])
def test_check_metric_accepts_known_metrics(unit: str, name: str) -> None:
    assert check_metric(unit, name, CONFIGS) is None


@pytest.mark.parametrize(("unit", "name"), [
    ("language", "foo"), ("language", "rel_degradation:rtn-w3-ch-sym"), ("language", "rel_degradation:"),
    ("layer", "resource_level"), ("layer", "rel_degradation:rtn-w4-ch-sym"), ("checkpoint", "sink_mass"),
    ("language", "Resource_level"),
])
def test_check_metric_rejects_others_naming_them(unit: str, name: str) -> None:
    problem = check_metric(unit, name, CONFIGS)
    assert problem is not None and repr(name) in problem


def test_check_metric_explains_rel_degradation_of_unswept_config() -> None:
    assert "compress.configs" in check_metric("language", "rel_degradation:mse-w4-ch", CONFIGS)
    message = check_metric("layer", "foo", CONFIGS)
    assert all(name in message for name in METRICS["layer"])  # the known metrics are listed


# --- synthetic tables and rules ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = np.linspace(-3.0, 2.0, len(LANGUAGES))
    language = pd.DataFrame({
        "resource_level": x,
        "rel_degradation:rtn-w4-ch-sym": -x + rng.normal(0, 0.05, len(LANGUAGES)),
        "rel_degradation:bnb-nf4": rng.normal(0, 1, len(LANGUAGES)),
        "script_latin": [1.0, 0.0] * 6,
        "baseline_bpb": rng.uniform(1, 3, len(LANGUAGES)),
    }, index=pd.Index(LANGUAGES, name="language"))
    layer = pd.DataFrame({
        "layer_index": [0.0, 1.0, 2.0, 3.0],
        "attn_kurtosis": [5.0, 7.0, 4.0, 9.0],
        "mlp_kurtosis": [1.0, 2.0, 3.0, 8.0],
        "max_kurtosis": [5.0, 7.0, 4.0, 9.0],
        "sink_mass": [0.2, 0.5, 0.1, 0.9],
    }, index=pd.Index([0, 1, 2, 3], name="layer"))
    checkpoint = pd.DataFrame({"step": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
                               "max_kurtosis": [1.0, 1.5, 2.5, 2.6, 4.0, 4.5]},
                              index=pd.Index([f"step_{s}" for s in range(100, 700, 100)], name="checkpoint"))
    return {"language": language, "layer": layer, "checkpoint": checkpoint}


def correlation(rule_id: str, x: str, y: str, direction: str, unit: str = "language",
                threshold: float = 0.0, covariates: list[str] | None = None) -> CorrelationRule:
    return CorrelationRule(id=rule_id, statement=f"{x} vs {y}", kind="correlation", unit=unit, x=x, y=y,
                           statistic="spearman", threshold=threshold, direction=direction,
                           covariates=covariates or [])


SIGN = SignTestRule(id="S-1", statement="attention heavier", kind="sign_test", unit="layer",
                    x="attn_kurtosis", y="mlp_kurtosis", direction="greater")
NOT_RUN = NotRunRule(id="N-1", statement="needs a second model size", kind="not_run",
                     reason="one model size in this profile")
LAACIQ = RangeReductionRule(id="L-1", statement="LA-ACIQ narrows the range", kind="range_reduction",
                    treatment="laaciq-uniform-w4-ch", baseline="aciq-laplace-w4-ch",
                    min_range_reduction=0.2, max_mean_rel_degradation_increase=0.05)
COMPARISONS = pd.DataFrame([  # the compare_configs stage's table (results/sweep/comparisons.csv)
    {"id": "L-1", "treatment": "laaciq-uniform-w4-ch", "baseline": "aciq-laplace-w4-ch",
     "range_reduction": 0.31, "range_reduction_ci_low": 0.25, "range_reduction_ci_high": 0.45,
     "mean_rel_degradation_increase": 0.01, "mean_rel_degradation_increase_ci_low": -0.01,
     "mean_rel_degradation_increase_ci_high": 0.03},
    {"id": "other", "treatment": "rtn-w4-ch-sym", "baseline": "rtn-w4-ch-asym",
     "range_reduction": 0.0, "range_reduction_ci_low": -0.1, "range_reduction_ci_high": 0.1,
     "mean_rel_degradation_increase": 0.0, "mean_rel_degradation_increase_ci_low": -0.1,
     "mean_rel_degradation_increase_ci_high": 0.1}])


def run(rules, tables, comparisons=COMPARISONS, alpha: float = ALPHA, family=None) -> list[dict]:
    return evaluate_ledger(rules, tables, comparisons, alpha, permutation_resamples=999,
                           bootstrap_resamples=999, confidence=0.95, seed=3, holm_family=family)


RULES = [
    correlation("C-less", "resource_level", "rel_degradation:rtn-w4-ch-sym", "less",
                covariates=["script_latin", "baseline_bpb"]),
    NOT_RUN,
    correlation("C-greater", "resource_level", "rel_degradation:rtn-w4-ch-sym", "greater"),
    LAACIQ,
    correlation("C-null", "resource_level", "rel_degradation:bnb-nf4", "greater"),
    SIGN,
    correlation("C-layer", "sink_mass", "max_kurtosis", "greater", unit="layer"),
    correlation("C-ckpt", "step", "max_kurtosis", "greater", unit="checkpoint"),
]


@pytest.fixture(scope="module")
def ledger(tables) -> dict[str, dict]:
    records = run(RULES, tables)
    assert [r["id"] for r in records] == [rule.id for rule in RULES]  # params order kept
    return {r["id"]: r for r in records}


# --- verdicts ----------------------------------------------------------------------------------


def test_strong_negative_correlation_supports_less(ledger) -> None:
    record = ledger["C-less"]
    assert record["value"] < -0.9 and record["ci_high"] < 0
    assert record["p"] < 0.01 and record["p_holm"] < ALPHA
    assert record["alternative"] == "less"
    assert record["partial_r"] is not None and record["partial_r"] < 0
    assert record["covariates"] == "script_latin,baseline_bpb"
    assert record["verdict"] == "SUPPORTED"


def test_the_same_data_reject_greater(ledger) -> None:
    record = ledger["C-greater"]
    assert record["value"] == pytest.approx(ledger["C-less"]["value"])
    assert record["alternative"] == "greater" and record["p"] > 0.9
    assert record["verdict"] == "REJECTED"


def test_uncorrelated_data_are_not_supported(ledger) -> None:
    assert ledger["C-null"]["verdict"] != "SUPPORTED"


def test_sign_test_record() -> None:
    layer = pd.DataFrame({"attn_kurtosis": [5.0, 7.0, 4.0, 9.0, 3.0, 6.0],
                          "mlp_kurtosis": [1.0, 2.0, 3.0, 8.0, 2.0, 5.0]})
    record = run([SIGN], {"layer": layer})[0]
    assert record["n"] == 6 and record["value"] == 1.0  # attention is heavier in all 6 layers
    assert record["p"] == pytest.approx(0.5**6) == record["min_p"]  # one-sided binomial test
    assert record["ci_low"] <= record["value"] <= record["ci_high"]
    assert record["verdict"] == "SUPPORTED"


def test_untestable_hypotheses_are_reported_and_left_out(ledger) -> None:
    # 4 layers: a sign test cannot go below 1/16, a permutation test below 1/24; with the six
    # tests of RULES in the family, alpha / m = 0.05 / 6
    for rule_id, min_p in (("S-1", 1 / 16), ("C-layer", 1 / 24)):
        record = ledger[rule_id]
        assert record["verdict"] == "NOT TESTABLE" and record["min_p"] == pytest.approx(min_p)
        assert "p" not in record and "p_holm" not in record and record["holm_family"] is False
        assert record["n"] == 4 and f"{min_p:.3g}" in record["reason"] and "0.05 / 6" in record["reason"]
        assert "ci_low" not in record and "value" in record  # a descriptive estimate, untested
    assert ledger["S-1"]["value"] == 1.0 and ledger["C-layer"]["statistic"] == "spearman_rho"
    assert ledger["C-layer"]["value"] == pytest.approx(1.0)  # sink_mass and max_kurtosis: same ranks
    assert ledger["C-ckpt"]["min_p"] == pytest.approx(1 / 720)  # six checkpoints: exact, 6! pairings


def test_untestable_hypotheses_do_not_inflate_the_holm_p(tables) -> None:
    alone = run([RULES[0]], tables)[0]
    with_untestable = run([RULES[0], SIGN, RULES[6]], tables)[0]
    assert with_untestable["p_holm"] == pytest.approx(alone["p_holm"]) == pytest.approx(alone["p"])


def test_a_test_is_untestable_when_its_smallest_p_reaches_alpha(tables) -> None:
    # alone (m = 1), 4 layers: 1/24 < 0.05 can be tested; 1/16 >= 0.05 cannot
    assert run([RULES[6]], tables, family=[])[0]["verdict"] != "NOT TESTABLE"
    assert run([SIGN], tables, family=[])[0]["verdict"] == "NOT TESTABLE"
    # in a family of two, alpha / 2 = 0.025 < 1/24
    assert run([RULES[0], RULES[6]], tables)[1]["verdict"] == "NOT TESTABLE"


def test_only_the_pre_registered_family_is_corrected_together(tables) -> None:
    records = run([RULES[0], RULES[2], RULES[4]], tables, family=["C-less", "C-null"])
    by_id = {r["id"]: r for r in records}
    assert by_id["C-less"]["holm_family"] and not by_id["C-greater"]["holm_family"]
    assert by_id["C-greater"]["p_holm"] == pytest.approx(by_id["C-greater"]["p"])  # alone
    lowest = min(by_id["C-less"]["p"], by_id["C-null"]["p"])
    assert min(by_id["C-less"]["p_holm"], by_id["C-null"]["p_holm"]) == pytest.approx(2 * lowest)


def test_check_family_names_bad_ids() -> None:
    assert check_family(["C-less", "S-1"], RULES) is None
    assert "'C-nope'" in check_family(["C-less", "C-nope"], RULES)
    assert "'L-1'" in check_family(["L-1"], RULES) and "'N-1'" in check_family(["N-1"], RULES)
    assert "'S-1'" in check_family(["S-1", "S-1"], RULES)


def test_checkpoint_correlation(ledger) -> None:
    record = ledger["C-ckpt"]
    assert record["value"] == pytest.approx(1.0) and record["n"] == 6
    assert record["unit"] == "checkpoint"


def test_holm_adjusts_every_tested_record(ledger) -> None:
    tested = [r for r in ledger.values() if "p" in r]
    assert {r["id"] for r in tested} == {"C-less", "C-greater", "C-null", "C-ckpt"}
    for record in tested:
        assert record["p_holm"] >= record["p"]
        assert record["p_holm"] <= 1.0
    # Holm step-down, computed here independently: sorted ascending, (m - i) * p, running max
    ordered = sorted(tested, key=lambda r: r["p"])
    m, running = len(ordered), 0.0
    for i, record in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * record["p"]))
        assert record["p_holm"] == pytest.approx(running)
    assert ordered[0]["p_holm"] == pytest.approx(m * ordered[0]["p"])


def test_verdict_needs_the_holm_p_below_alpha(tables) -> None:
    # a permutation p >= 1/1000 (999 resamples) can never beat this alpha: not even run
    record = run([RULES[0]], tables, alpha=1e-4)[0]
    assert record["verdict"] == "NOT TESTABLE" and record["min_p"] == pytest.approx(1e-3)
    assert "ci_high" not in record and "alpha = 0.0001" in record["reason"]
    # the CI lies below 0 and the raw p is below alpha, but not the Holm p of the family
    records = run([RULES[0], RULES[2], RULES[4]], tables, alpha=0.05, family=["C-less", "C-null"])
    assert records[0]["ci_high"] < 0 and records[0]["verdict"] == "SUPPORTED"
    assert records[0]["p_holm"] == pytest.approx(2 * records[0]["p"])


def test_holm_family_size_changes_the_adjustment(tables) -> None:
    alone = run([RULES[0]], tables)[0]
    assert alone["p_holm"] == pytest.approx(alone["p"])
    together = run([RULES[0], RULES[2]], tables)[0]
    assert together["p_holm"] == pytest.approx(2 * together["p"])


def test_not_run_records_carry_the_reason(ledger) -> None:
    record = ledger["N-1"]
    assert record["verdict"] == "NOT RUN"
    assert record["reason"] == "one model size in this profile"
    assert "p" not in record and "p_holm" not in record


def test_laaciq_rule_decides_the_compared_statistics(ledger, tables) -> None:
    record = ledger["L-1"]
    assert record["verdict"] == "SUPPORTED"  # CI [0.25, 0.45] above 0.2, increase CI below 0.05
    assert record["value"] == 0.31 and record["ci_low"] == 0.25 and record["ci_high"] == 0.45
    assert record["mean_rel_degradation_increase"] == 0.01
    assert "p_holm" not in record  # not part of the Holm family
    below = COMPARISONS.assign(range_reduction_ci_low=0.05, range_reduction_ci_high=0.15)  # CI below 0.2
    assert run([LAACIQ], tables, comparisons=below)[0]["verdict"] == "REJECTED"
    degenerate = COMPARISONS.assign(range_reduction_ci_low=float("nan"))  # an empty CSV cell
    assert run([LAACIQ], tables, comparisons=degenerate)[0]["verdict"] == "INCONCLUSIVE"


def test_laaciq_rule_without_its_comparison_raises(tables) -> None:
    with pytest.raises(KeyError, match=r"L-1.*compare_configs"):
        run([LAACIQ], tables, comparisons=COMPARISONS.iloc[1:])


def test_laaciq_rule_against_a_stale_comparison_raises(tables) -> None:
    stale = COMPARISONS.assign(baseline="aciq-gaussian-w4-ch")
    with pytest.raises(ValueError, match=r"L-1.*aciq-gaussian-w4-ch.*aciq-laplace-w4-ch"):
        run([LAACIQ], tables, comparisons=stale)


@pytest.mark.parametrize(("rule", "missing"), [
    (correlation("C-miss", "token_premium", "rel_degradation:rtn-w4-ch-sym", "greater"), "token_premium"),
    (correlation("C-miss", "resource_level", "rel_degradation:bnb-fp4", "greater"),
     "rel_degradation:bnb-fp4"),
    (correlation("C-miss", "resource_level", "rel_degradation:bnb-nf4", "greater",
                 covariates=["tokens_per_byte"]),
     "tokens_per_byte"),
    (SignTestRule(id="C-miss", statement="s", kind="sign_test", unit="layer", x="attn_kurtosis",
                  y="mlp_out_norm", direction="greater"), "mlp_out_norm"),
])
def test_missing_column_raises_naming_the_metric(rule, missing: str, tables) -> None:
    with pytest.raises(KeyError) as info:
        run([rule], tables)
    assert repr(missing) in str(info.value) and "C-miss" in str(info.value)


# --- overlap (EXP-034) -------------------------------------------------------------------------

OVERLAP = OverlapRule(id="O-1", statement="specific heads are outlier heads", kind="overlap", unit="head",
                      x="language_specific", y="outlier_head", direction="greater")


def _heads(specific: list[int], outlier: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"language_specific": np.array(specific, float),
                         "outlier_head": np.array(outlier, float)},
                        index=[f"L0.head{i}" for i in range(len(specific))])


def test_overlap_supported_when_the_sets_coincide(tables) -> None:
    heads = _heads([1] * 8 + [0] * 32, [1] * 8 + [0] * 32)
    [record] = run([OVERLAP], {**tables, "head": heads})
    assert record["verdict"] == "SUPPORTED" and record["overlap"] == 8 and record["n"] == 40
    assert record["p"] < 1e-6 and record["ci_low"] > 1


def test_overlap_of_disjoint_sets_is_rejected(tables) -> None:
    heads = _heads([1] * 10 + [0] * 30, [0] * 10 + [1] * 10 + [0] * 20)
    [record] = run([OVERLAP], {**tables, "head": heads})
    assert record["overlap"] == 0 and record["verdict"] in ("REJECTED", "INCONCLUSIVE")
    assert record["p"] == 1.0


def test_overlap_without_specific_heads_is_not_testable(tables) -> None:
    [record] = run([OVERLAP], {**tables, "head": _heads([0] * 10, [1] * 2 + [0] * 8)})
    assert record["verdict"] == "NOT TESTABLE" and "language_specific" in record["reason"]
    assert record["min_p"] == 1.0 and record["overlap"] == 0  # without specific heads nothing overlaps


def test_overlap_too_small_to_reach_alpha_is_not_testable(tables) -> None:
    [record] = run([OVERLAP], {**tables, "head": _heads([1, 0, 0, 0], [1, 0, 0, 0])})
    assert record["verdict"] == "NOT TESTABLE" and record["min_p"] == pytest.approx(0.25)
    # the counts stay in the record (descriptive), only the p-value is withheld
    assert record["overlap"] == 1 and record["expected_overlap"] == pytest.approx(0.25)
    assert "p" not in record
