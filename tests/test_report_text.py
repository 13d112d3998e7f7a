"""Generated prose and ledger rendering: signs, NOT TESTABLE hypotheses and their reasons."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from qfair.report.experiments import appendix_tex
from qfair.report.numbers import _hypotheses
from qfair.report.prose import load_templates, profile_text, range_change
from qfair.report.tables import ledger_table

REASON = ("at n = 4 layers the smallest attainable p is 0.0625, not below alpha / m = 0.05 / 9 = 0.00556; "
          "left out of the Holm family")
LEDGER = {"hypotheses": [
    {"id": "EXP-001", "statement": "s", "kind": "correlation", "verdict": "INCONCLUSIVE", "value": -0.37,
     "ci_low": -0.6, "ci_high": -0.05, "p": 0.0175, "p_holm": 0.105, "n": 33, "min_p": 1e-4,
     "holm_family": True, "statistic": "spearman_rho"},
    {"id": "EXP-022", "statement": "attention heavier", "kind": "sign_test", "verdict": "NOT TESTABLE",
     "n": 4, "min_p": 0.0625, "holm_family": False, "reason": REASON, "statistic": "share_x_greater",
     "value": 0.75},
    {"id": "EXP-023", "statement": "dropout", "kind": "not_run", "verdict": "NOT RUN", "reason": "one run"},
]}


@pytest.mark.parametrize(("reduction", "expected", "absent"), [
    (0.032, r"narrows the range by only 3.2\%, less than the pre-registered 20\%", "widens"),
    (-0.032, r"widens the range by 3.2\% instead of narrowing it by the pre-registered 20\%", "-3.2"),
    (0.0, r"leaves the range unchanged instead of narrowing it by the pre-registered 20\%", "narrows the"),
])
def test_range_change_reads_right_for_either_sign(reduction: float, expected: str, absent: str) -> None:
    text = range_change(reduction, 0.2)
    assert text == expected and absent not in text


def test_not_testable_numbers_carry_the_reason_and_leave_the_family() -> None:
    numbers = _hypotheses(SimpleNamespace(ledger=LEDGER))
    assert numbers["hyp/EXP-022/verdict"] == "NOT TESTABLE"
    assert "0.0625" in numbers["hyp/EXP-022/reason"] and numbers["hyp/EXP-022/min-p"] == "0.0625"
    assert "hyp/EXP-022/p-holm" not in numbers and "hyp/EXP-022/ci" not in numbers
    assert numbers["hyp/EXP-022/value"] == "0.750"  # descriptive, untested
    assert numbers["count/not-testable"] == "1" and numbers["count/holm-family"] == "1"
    assert numbers["count/not-run"] == "1"


def test_ledger_table_and_appendix_state_why_a_hypothesis_is_not_testable() -> None:
    table = ledger_table(LEDGER)
    assert r"\textsc{not testable}" in table and "0.750; $n$ = 4: min.\\ $p$ = 0.0625" in table
    appendix = appendix_tex(LEDGER, set(), set(), "embedded")
    line = next(line for line in appendix.splitlines() if line.startswith(r"\item EXP-022"))
    assert r"\textsc{not testable}" in line and "0.0625" in line and "Holm family" in line
    assert r"\qfnum{hyp/EXP-022/value}, untested" in line


def test_snapshot_lists_not_testable_hypotheses_with_their_reason() -> None:
    import pandas as pd

    from qfair.report.snapshot import snapshot_markdown

    bpb = {"bits_per_byte": 1.5, "bpb_ci_low": 1.4, "bpb_ci_high": 1.6, "unigram_bits_per_byte": 4.0}
    per_language = pd.DataFrame([{"split": split, "language": "en", **bpb} for split in ("test", "dev")])
    split = {"min_bits_per_byte": 1.5, "max_bits_per_byte": 1.5, "languages": 1,
             "languages_below_unigram": 1}
    sweep = pd.DataFrame([{"config": "rtn-w4-ch-sym", "language": "en", "rel_degradation": 0.01}])
    disparity = pd.DataFrame([{"config": "rtn-w4-ch-sym", "mean": 0.01, "range": 0.0, "range_ci_low": 0.0,
                               "range_ci_high": 0.0, "worst_language": "en"}])
    census = {"class": "Gaussian", "max_kurtosis": 0.36, "max_kurtosis_tensor": "h.0.dense.weight",
              "embed_max_kurtosis": 1.18}
    text = snapshot_markdown(
        train={"steps": 1, "final_train_loss": 1.0, "final_dev_loss": 1.0},
        eval_metrics={"test": split, "dev": split}, per_language=per_language,
        manifest={"en": {"script": "Latn", "train_share": 1.0}}, disparity=disparity,
        per_language_sweep=sweep, parameters=10, ledger={**LEDGER, "outlier_layers": [0]},
        census=census, confidence=0.95)
    row = next(line for line in text.splitlines() if line.startswith("| EXP-022 |"))
    assert "share_x_greater 0.750, untested" in row and "0.0625" in row and "**NOT TESTABLE**" in row
    assert "among the quantized weight matrices; embeddings 1.18" in text
    assert "| en | Latn |" in text and "0.01000 |" in text


def test_templates_type_no_numbers_and_cover_every_variant() -> None:
    from qfair.report.texcheck import literal_numbers

    templates = load_templates()
    for key in ("model-summary", "model-description", "limitations"):
        assert set(templates[key]) == {"train", "hub"}, key
    assert set(templates["corpus-description"]) == {"train", "bible", "hub"}  # by corpus source
    assert set(templates["kurtosis-over-training"]) == {"none", "not-testable", "tested"}
    typed = {f"{key}/{variant}": literal_numbers(text)
             for key, variants in templates.items() for variant, text in variants.items()}
    assert not {name: numbers for name, numbers in typed.items() if numbers}, typed


@pytest.mark.parametrize(("kurtosis", "trend"), [([0.2, 0.4, 0.3], "grows"), ([0.5, 0.1, 0.3], "falls")])
def test_kurtosis_sentence_follows_the_data_and_the_verdict(kurtosis: list[float], trend: str) -> None:
    import pandas as pd

    checkpoints = pd.DataFrame({"step": [100.0, 200.0, 300.0], "max_kurtosis": kurtosis})
    from qfair.params import load_params

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")  # a trained model
    for verdict, expected in (("NOT TESTABLE", r"\qfnum{hyp/EXP-027/reason}"),
                              ("INCONCLUSIVE", r"\qfnum{hyp/EXP-027/p-holm}")):
        results = SimpleNamespace(train_metrics={}, checkpoints=checkpoints,
                                  ledger={"hypotheses": [{"id": "EXP-027", "verdict": verdict}]})
        text = profile_text(results, params, load_templates())["text/kurtosis-over-training"]
        assert f"matrices {trend} over" in text and expected in text and "<" not in text


def test_deployed_figure_draws_an_interval_that_misses_its_point():
    """A bootstrap CI need not contain its point estimate (the paper profile's tiny run has one);
    the figure draws it instead of failing on a negative error-bar length."""
    import pandas as pd

    from qfair.report.deployed import disparity_by_family

    disparity = pd.DataFrame({
        "config": ["rtn-w4-ch-sym", "hqq-w4-g64", "w4a4-token"], "method": ["rtn", "hqq", "actquant"],
        "bits": [4, 4, 4], "range": [0.01, 0.02, 0.05], "range_ci_low": [0.008, 0.021, 0.04],
        "range_ci_high": [0.012, 0.03, 0.06]})
    figure = disparity_by_family(disparity, 0.95, "embedded")
    assert len(figure.axes) == 2


def test_a_constant_metric_reads_as_constant_in_the_ledger_table() -> None:
    # mechanisms' ledger gives a constant metric NOT TESTABLE with no min_p: no test exists at any n
    row = {"id": "B-002", "statement": "probe drop", "kind": "correlation", "verdict": "NOT TESTABLE",
           "statistic": "spearman", "n": 5, "reason": "probe_accuracy_drop is the same for every language"}
    assert "$n$ = 5: constant" in ledger_table({"hypotheses": [row]})
