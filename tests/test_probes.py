"""B-002 language-ID probes: pooling against a manual forward pass, probes on separable and
unseparable toy states, determinism, the per-language drop and the params that switch them on."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from qfair.analysis.ledger import evaluate_ledger
from qfair.analysis.patching import item_set, pooled_hidden_states
from qfair.analysis.probes import language_id_probes, probe_accuracy_drop, probe_summary
from qfair.params import ParamsError, parse_params

DEVICE = torch.device("cpu")
PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def items(tiny_corpus, tiny_tokenizer):
    return item_set(tiny_tokenizer, tiny_corpus.splits["test"], 8, seed=0, batch_tokens=512, max_tokens=256)


def test_pooled_states_are_the_mean_over_an_items_own_tokens(tiny_model, items):
    """Padding and batching leave each item's pooled state equal to its forward pass alone."""
    pooled = pooled_hidden_states(tiny_model, items, DEVICE)
    n_layer = tiny_model.config.n_layer
    assert pooled.shape == (n_layer + 1, len(items.tokens), tiny_model.config.hidden_size)
    assert pooled.dtype == np.float64
    for item in (0, len(items.tokens) // 2, len(items.tokens) - 1):
        start, length = items.tokens.offsets[item], items.tokens.lengths[item]
        ids = torch.from_numpy(items.tokens.flat[start:start + length])[None]
        with torch.no_grad():
            alone = tiny_model(input_ids=ids, output_hidden_states=True).hidden_states
        manual = torch.stack(alone).double().mean(dim=2)[:, 0].numpy()
        np.testing.assert_allclose(pooled[:, item], manual, rtol=1e-5, atol=1e-6)


def _toy(separation: float, seed: int = 0, n_keys: int = 12, languages: int = 4, dim: int = 6):
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"l{i}" for i in range(languages)], n_keys)
    keys = np.tile(np.arange(n_keys), languages)
    centres = rng.normal(size=(languages, dim)) * separation
    states = centres[np.repeat(np.arange(languages), n_keys)] + rng.normal(size=(len(labels), dim))
    return states[None], labels, keys  # one layer


def test_probes_read_separable_languages_and_not_noise():
    states, labels, keys = _toy(separation=20.0)
    noise = np.random.default_rng(1).normal(size=states.shape)
    probes = language_id_probes(states, noise, labels, keys, folds=4, regularization=1.0, seed=0)
    accuracy = probes.groupby("condition")["accuracy"].mean()
    assert accuracy["full_precision"] == 1.0
    assert accuracy["transfer"] < 0.6 and accuracy["quantized"] < 0.6  # chance is 0.25
    same = language_id_probes(states, states, labels, keys, folds=4, regularization=1.0, seed=0)
    wide = same.pivot_table(index=["layer", "language"], columns="condition", values="accuracy")
    assert (wide["full_precision"] == wide["quantized"]).all()
    assert (wide["quantized"] == wide["transfer"]).all()


def test_probes_are_deterministic_and_check_their_inputs():
    states, labels, keys = _toy(separation=1.0, seed=2)
    shifted = states + 0.5
    first = language_id_probes(states, shifted, labels, keys, folds=3, regularization=0.5, seed=7)
    second = language_id_probes(states, shifted, labels, keys, folds=3, regularization=0.5, seed=7)
    pd.testing.assert_frame_equal(first, second)
    assert set(first.columns) == {"layer", "language", "condition", "accuracy"}
    with pytest.raises(ValueError, match="probe_folds"):
        language_id_probes(states, shifted, labels, keys, folds=13, regularization=1.0, seed=0)
    with pytest.raises(ValueError, match="differ in shape"):
        language_id_probes(states, shifted[:, :-1], labels, keys, folds=3, regularization=1.0, seed=0)


def test_accuracy_drop_leaves_out_the_embeddings_and_summary_picks_the_peak():
    rows = []
    for layer, (fp, q) in enumerate([(1.0, 0.0), (0.75, 0.5), (1.0, 0.5)]):
        for condition, value in (("full_precision", fp), ("quantized", q), ("transfer", q)):
            rows.append({"layer": layer, "language": "a", "condition": condition, "accuracy": value})
    probes = pd.DataFrame(rows)
    assert probe_accuracy_drop(probes)["a"] == pytest.approx((0.25 + 0.5) / 2)
    summary = probe_summary(probes)
    assert summary["best_layer"] == 0
    assert summary["full_precision_accuracy_mean"] == pytest.approx(0.875)
    assert summary["quantized_accuracy_best_layer"] == 0.0


def test_probe_params_go_together_and_gate_the_hypothesis(raw):
    broken = copy.deepcopy(raw)
    del broken["interpretability"]["probe_regularization"]
    with pytest.raises(ParamsError, match="probe_folds and probe_regularization"):
        parse_params(broken)
    off = copy.deepcopy(raw)
    for key in ("probe_folds", "probe_regularization"):
        del off["interpretability"][key]
    with pytest.raises(ParamsError, match=r"hypotheses\.\d+\.y.*B-002 probes"):
        parse_params(off)
    off["hypotheses"] = [h for h in off["hypotheses"] if h["id"] != "B-002"]
    off["analysis"]["holm_family"] = [i for i in off["analysis"]["holm_family"] if i != "B-002"]
    assert not parse_params(off).interpretability.probes


def test_a_constant_metric_makes_a_correlation_not_testable(raw):
    params = parse_params(raw)
    rule = next(r for r in params.hypotheses if r.id == "B-002")
    table = pd.DataFrame({"resource_level": np.linspace(-3, 0, 8), "probe_accuracy_drop": 0.0,
                          "script_latin": [0, 1] * 4, "baseline_bpb": np.linspace(1, 2, 8)},
                         index=[f"l{i}" for i in range(8)])
    [record] = evaluate_ledger([rule], {"language": table}, pd.DataFrame(columns=["id"]), alpha=0.05,
                               permutation_resamples=99, bootstrap_resamples=99, confidence=0.95, seed=0)
    assert record["verdict"] == "NOT TESTABLE" and "probe_accuracy_drop is the same (0)" in record["reason"]
