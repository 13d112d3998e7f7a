"""Track A mechanism tables: layer kurtosis, outlier layers, the per-language table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qfair.analysis.mechanisms import (
    checkpoint_table,
    component_table,
    language_table,
    layer_kurtosis,
    layer_table,
    outlier_layers,
)


def _census() -> pd.DataFrame:
    rows = [
        # layer 0: attention heavier
        ("transformer.h.0.self_attention.query_key_value.weight", 0, "attn_qkv", "weight", 2.0),
        ("transformer.h.0.self_attention.dense.weight", 0, "attn_o", "weight", 5.0),
        ("transformer.h.0.mlp.dense_h_to_4h.weight", 0, "mlp_up", "weight", 1.0),
        ("transformer.h.0.mlp.dense_4h_to_h.weight", 0, "mlp_down", "weight", 3.0),
        # things that must not count: a bias, a norm, an embedding (no layer), the head
        ("transformer.h.0.self_attention.dense.bias", 0, "attn_o", "bias", 100.0),
        ("transformer.h.0.input_layernorm.weight", 0, "norm", "weight", 80.0),
        ("transformer.word_embeddings.weight", None, "embed", "weight", 99.0),
        ("lm_head.weight", None, "lm_head", "weight", 98.0),
        # layer 1: the MLP is the outlier
        ("transformer.h.1.self_attention.query_key_value.weight", 1, "attn_qkv", "weight", 1.5),
        ("transformer.h.1.self_attention.dense.weight", 1, "attn_o", "weight", 0.5),
        ("transformer.h.1.mlp.dense_h_to_4h.weight", 1, "mlp_up", "weight", 10.0),
        ("transformer.h.1.mlp.dense_4h_to_h.weight", 1, "mlp_down", "weight", 4.0),
        ("transformer.h.1.post_attention_layernorm.weight", 1, "norm", "weight", 60.0),
        # layer 2
        ("transformer.h.2.self_attention.query_key_value.weight", 2, "attn_qkv", "weight", 7.0),
        ("transformer.h.2.mlp.dense_4h_to_h.weight", 2, "mlp_down", "weight", 6.0),
    ]
    frame = pd.DataFrame(rows, columns=["name", "layer", "component", "kind", "excess_kurtosis"])
    frame.insert(0, "model", "final")
    return frame


@pytest.mark.parametrize("layer_dtype", ["float64", "Int64"])
def test_layer_kurtosis(layer_dtype: str) -> None:
    census = _census()
    census["layer"] = census["layer"].astype(layer_dtype)
    table = layer_kurtosis(census)
    assert list(table.index) == [0, 1, 2]
    np.testing.assert_allclose(table["attn_kurtosis"], [5.0, 1.5, 7.0])
    np.testing.assert_allclose(table["mlp_kurtosis"], [3.0, 10.0, 6.0])
    np.testing.assert_allclose(table["max_kurtosis"], [5.0, 10.0, 7.0])
    np.testing.assert_allclose(table["layer_index"], [0.0, 1.0, 2.0])


def test_layer_kurtosis_layer_without_mlp_matrices() -> None:
    census = _census()
    census = census[~((census["layer"] == 2) & census["component"].str.startswith("mlp"))]
    table = layer_kurtosis(census)
    assert np.isnan(table.loc[2, "mlp_kurtosis"])
    assert table.loc[2, "max_kurtosis"] == 7.0


def test_outlier_layers_top_k() -> None:
    table = layer_kurtosis(_census())
    assert outlier_layers(table, 1) == [1]
    assert outlier_layers(table, 2) == [1, 2]
    assert outlier_layers(table, 3) == [1, 2, 0]
    assert outlier_layers(table, 10) == [1, 2, 0]


def test_outlier_layers_ties_go_to_the_lower_index() -> None:
    table = pd.DataFrame({"max_kurtosis": [3.0, 9.0, 9.0, 1.0], "layer_index": [0.0, 1.0, 2.0, 3.0]},
                         index=[0, 1, 2, 3])
    shuffled = table.iloc[[3, 2, 0, 1]]
    assert outlier_layers(shuffled, 1) == [1]
    assert outlier_layers(shuffled, 2) == [1, 2]


# --- the language table ------------------------------------------------------------------------

# block output (attention + MLP norm) per layer: en 2 then 6, hi_IN 6 then 2
PROFILE = pd.DataFrame({
    "language": ["en", "en", "hi_IN", "hi_IN"],
    "layer": [0, 1, 0, 1],
    "attn_out_norm": [1.0, 3.0, 2.0, 1.0],
    "mlp_out_norm": [1.0, 3.0, 4.0, 1.0],
    "residual_norm": [5.0, 6.0, 7.0, 8.0],
    "sink_mass": [0.1, 0.3, 0.2, 0.5],
})
LAYERS = pd.DataFrame({"attn_kurtosis": [2.0, 1.0], "mlp_kurtosis": [1.0, 10.0],
                       "max_kurtosis": [2.0, 10.0], "layer_index": [0.0, 1.0]}, index=[0, 1])
EVAL_TEST = pd.DataFrame({
    "split": ["test"] * 3, "language": ["en", "hi_IN", "zh_Hans"],
    "bits_per_byte": [1.5, 0.9, 2.0], "tokens_per_byte": [0.25, 0.1, 0.3], "tokens": [100, 160, 80],
})
MANIFEST = {"en": {"resource_level": 2.0, "script": "Latn"},
            "hi_IN": {"resource_level": -1.0, "script": "Deva"},
            "zh_Hans": {"resource_level": 0.5, "script": "Hans"}}
SWEEP = pd.DataFrame({
    "config": ["rtn-w4-ch-sym", "rtn-w4-ch-sym", "bnb-nf4", "bnb-nf4"],
    "language": ["en", "hi_IN", "en", "hi_IN"],
    "rel_degradation": [0.01, 0.08, 0.02, 0.05],
})


@pytest.fixture(scope="module")
def languages() -> pd.DataFrame:
    return language_table(PROFILE, LAYERS, outlier_layers(LAYERS, 1), EVAL_TEST, MANIFEST, SWEEP, "en")


def test_language_table_rows(languages) -> None:
    assert sorted(languages.index) == ["en", "hi_IN"]  # languages of the profile only


def test_outlier_layer_share(languages) -> None:
    # outlier layer 1 carries 6 of en's 8 and 2 of hi_IN's 8 units of block output
    assert languages.loc["en", "outlier_layer_share"] == pytest.approx(0.75)
    assert languages.loc["hi_IN", "outlier_layer_share"] == pytest.approx(0.25)


def test_effective_kurtosis(languages) -> None:
    assert languages.loc["en", "effective_kurtosis"] == pytest.approx(0.25 * 2.0 + 0.75 * 10.0)
    assert languages.loc["hi_IN", "effective_kurtosis"] == pytest.approx(0.75 * 2.0 + 0.25 * 10.0)


def test_token_premium_and_copied_metrics(languages) -> None:
    assert languages.loc["en", "token_premium"] == pytest.approx(1.0)
    assert languages.loc["hi_IN", "token_premium"] == pytest.approx(1.6)
    assert languages.loc["hi_IN", "baseline_bpb"] == 0.9
    assert languages.loc["hi_IN", "tokens_per_byte"] == 0.1
    assert languages.loc["hi_IN", "resource_level"] == -1.0
    assert languages.loc["en", "script_latin"] == 1.0 and languages.loc["hi_IN", "script_latin"] == 0.0
    assert languages.loc["hi_IN", "rel_degradation:rtn-w4-ch-sym"] == 0.08
    assert languages.loc["en", "rel_degradation:bnb-nf4"] == 0.02


def test_token_premium_is_relative_to_the_reference(languages) -> None:
    other = language_table(PROFILE, LAYERS, [1], EVAL_TEST, MANIFEST, SWEEP, "hi_IN")
    assert other.loc["hi_IN", "token_premium"] == pytest.approx(1.0)
    assert other.loc["en", "token_premium"] == pytest.approx(100 / 160)


def test_outlier_share_follows_the_chosen_layers() -> None:
    table = language_table(PROFILE, LAYERS, [0], EVAL_TEST, MANIFEST, SWEEP, "en")
    assert table.loc["en", "outlier_layer_share"] == pytest.approx(0.25)
    both = language_table(PROFILE, LAYERS, [0, 1], EVAL_TEST, MANIFEST, SWEEP, "en")
    np.testing.assert_allclose(both["outlier_layer_share"], [1.0, 1.0])


# --- the other unit tables ---------------------------------------------------------------------


def test_layer_table_joins_language_means() -> None:
    table = layer_table(LAYERS, PROFILE)
    assert list(table.index) == [0, 1]
    np.testing.assert_allclose(table["sink_mass"], [0.15, 0.4])
    np.testing.assert_allclose(table["attn_out_norm"], [1.5, 2.0])
    np.testing.assert_allclose(table["mlp_out_norm"], [2.5, 2.0])
    np.testing.assert_allclose(table["max_kurtosis"], [2.0, 10.0])


def test_checkpoint_table_sorted_by_step() -> None:
    summaries = {"final": {"max_kurtosis": 9.0},
                 "step_200": {"step": 200, "max_kurtosis": 4.0},
                 "step_100": {"step": 100, "max_kurtosis": 3.0}}
    table = checkpoint_table(summaries)
    assert list(table.index) == ["step_100", "step_200"]
    np.testing.assert_allclose(table["step"], [100.0, 200.0])
    np.testing.assert_allclose(table["max_kurtosis"], [3.0, 4.0])


def test_component_table_weights_only() -> None:
    table = component_table(_census()).set_index("component")
    assert table.loc["attn_o", "max"] == 5.0 and table.loc["attn_o", "count"] == 2
    assert table.loc["attn_o", "mean"] == pytest.approx(2.75)


def test_ledger_metrics_keeps_verdict_estimate_and_holm_p_only():
    from qfair.analysis.mechanisms_run import ledger_metrics

    ledger = [{"id": "A", "verdict": "SUPPORTED", "value": 0.5, "p_holm": 0.01, "ci_low": 0.1},
              {"id": "B", "verdict": "NOT TESTABLE", "min_p": 0.0625, "reason": "n = 4"}]
    assert ledger_metrics(ledger) == {"A": {"verdict": "SUPPORTED", "value": 0.5, "p_holm": 0.01},
                                      "B": {"verdict": "NOT TESTABLE"}}
