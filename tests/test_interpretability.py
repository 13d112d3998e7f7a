"""Track B: component hooks against manual forward passes, head specificity, the overlap test,
ablation/attribution/mediation on a tiny BLOOM."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from qfair.analysis.heads import head_specificity, outlier_heads, overlap_test
from qfair.analysis.patching import (
    ablation,
    attribution,
    block_quantization,
    cache_values,
    head_features,
    item_nll,
    item_set,
    language_nll,
    mean_values,
    mediation,
)
from qfair.models.hooks import Component, ComponentHooks
from qfair.models.linears import target_linears
from qfair.quant.configs import parse_config
from qfair.quant.methods.base import WeightSnapshot

DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_model):
    return copy.deepcopy(tiny_model)  # tests here quantize in place and restore


@pytest.fixture(scope="module")
def items(tiny_corpus, tiny_tokenizer):
    return item_set(tiny_tokenizer, tiny_corpus.splits["test"], 8, seed=0, batch_tokens=512, max_tokens=256)


def test_components_are_named_and_checked(model):
    hooks = ComponentHooks(model, n_head=2)
    assert [c.name for c in hooks.blocks()] == ["L0.attn", "L0.mlp", "L1.attn", "L1.mlp"]
    assert [c.name for c in hooks.heads()] == ["L0.head0", "L0.head1", "L1.head0", "L1.head1"]
    with pytest.raises(ValueError, match="3 heads"):
        ComponentHooks(model, n_head=3)
    with (pytest.raises(ValueError, match="2 heads per layer"),
          hooks.replace({Component(0, "head", 5): lambda value: value})):
        pass


def test_a_model_whose_projections_bypass_the_modules_is_refused(make_bloom):
    bypassing = make_bloom(seed=2)
    bypassing.config.pretraining_tp, bypassing.config.slow_but_exact = 2, True
    with pytest.raises(ValueError, match="pretraining_tp=2 with slow_but_exact"):
        ComponentHooks(bypassing, n_head=2)


def test_record_matches_a_manual_forward_pass(model, items):
    """The recorded attention output is the projection's output; a head's value is its slice of the
    projection's input, and the heads' slices through the projection add up to the block output."""
    hooks = ComponentHooks(model, n_head=2)
    input_ids, mask = items.padded(0, DEVICE)
    attn = model.transformer.h[1].self_attention.dense
    seen = {}
    handle = attn.register_forward_hook(lambda m, args, out: seen.update(x=args[0].detach(), y=out.detach()))
    with torch.no_grad(), hooks.record([Component(1, "attn"), *hooks.heads()]) as values:
        model(input_ids=input_ids, attention_mask=mask)
    handle.remove()
    torch.testing.assert_close(values[Component(1, "attn")], seen["y"], rtol=0, atol=0)
    head_dim = hooks.head_dim
    for head in range(2):
        torch.testing.assert_close(values[Component(1, "head", head)],
                                   seen["x"][..., head * head_dim:(head + 1) * head_dim], rtol=0, atol=0)
    summed = sum(values[Component(1, "head", h)] @ attn.weight[:, h * head_dim:(h + 1) * head_dim].T
                 for h in range(2)) + attn.bias
    torch.testing.assert_close(summed, seen["y"], rtol=1e-5, atol=1e-5)


def test_patching_full_precision_values_into_the_same_model_changes_nothing(model, items):
    hooks = ComponentHooks(model, n_head=2)
    components = hooks.blocks() + hooks.heads()
    reference = item_nll(model, items, DEVICE)
    cache = cache_values(model, hooks, items, components, DEVICE)
    patched = item_nll(model, items, DEVICE, lambda i: hooks.replace(
        {c: (lambda value, saved=cache[i][c]: saved) for c in components}))
    np.testing.assert_allclose(patched, reference, rtol=1e-6, atol=1e-6)
    # the hooks do act: the same values shifted by one token change the NLL
    shifted = item_nll(model, items, DEVICE, lambda i: hooks.replace(
        {c: (lambda value, saved=cache[i][c]: saved.roll(1, dims=1)) for c in hooks.blocks()}))
    assert np.abs(shifted - reference).max() > 1e-3


@pytest.mark.parametrize("config", ["rtn-w2-ch-sym", "w16a2-token"])
def test_restoring_every_block_recovers_all_of_the_quantization_loss(model, items, config):
    """For weight quantization and for input (activation) quantization by forward pre-hooks."""
    hooks = ComponentHooks(model, n_head=2)
    blocks = hooks.blocks()
    full_precision = item_nll(model, items, DEVICE)
    cache = cache_values(model, hooks, items, blocks, DEVICE)
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    try:
        parse_config(config).apply(snapshot)
        quantized = item_nll(model, items, DEVICE)
        restored = item_nll(model, items, DEVICE, lambda i: hooks.replace(
            {c: (lambda value, saved=cache[i][c]: saved) for c in blocks}))
        shares = mediation(model, hooks, items, blocks, cache, quantized, full_precision, DEVICE)
    finally:
        snapshot.restore()
    assert np.abs(quantized - full_precision).max() > 1e-3  # 2 bits do change the model
    np.testing.assert_allclose(restored, full_precision, rtol=1e-6, atol=1e-5)
    assert set(shares["component"]) == {c.name for c in blocks}
    # a share is defined exactly for the languages whose NLL the quantization raised
    raised = language_nll(items, quantized) > language_nll(items, full_precision)
    defined = shares.groupby("language")["recovered_share"].apply(lambda v: v.notna().all())
    assert (defined == raised.reindex(defined.index)).all()
    torch.testing.assert_close(target_linears(model, ["lm_head"])["transformer.h.0.mlp.dense_4h_to_h"].weight,
                               snapshot.weights["transformer.h.0.mlp.dense_4h_to_h"], rtol=0, atol=0)


def test_ablation_attribution_and_block_quantization(model, items):
    hooks = ComponentHooks(model, n_head=2)
    components = hooks.blocks() + hooks.heads()
    reference = item_nll(model, items, DEVICE)
    means = mean_values(model, hooks, items, components, DEVICE)
    ablated = ablation(model, hooks, items, components, means, reference, DEVICE)
    languages = sorted(set(items.languages))
    assert len(ablated) == len(components) * len(languages)
    assert (ablated.groupby("component")["nll_change"].apply(lambda s: s.abs().max()) > 0).all()
    estimated = attribution(model, hooks, items, components, means, reference, DEVICE)
    joined = ablated.merge(estimated, on=["component", "language"])
    # the first-order estimate tracks the measured effect of ablating a component
    assert stats.spearmanr(joined["nll_change"], joined["nll_change_estimate"]).statistic > 0.5
    assert all(p.grad is None for p in model.parameters())
    per_block = block_quantization(model, items, target_linears(model, ["lm_head"]),
                                   parse_config("rtn-w2-ch-sym"), hooks.blocks(), reference, DEVICE)
    assert (per_block["rel_degradation"].abs() > 0).all()
    np.testing.assert_allclose(item_nll(model, items, DEVICE), reference, rtol=0, atol=0)  # restored


def test_head_features_are_attention_statistics(model, items):
    features = head_features(model, items, DEVICE)
    assert len(features) == len(items.languages) * 2 * 2
    # relative to uniform causal attention: entropy in [0, 1], sink mass >= 0
    assert (features["entropy"].between(0, 1 + 1e-6)).all() and (features["sink_mass"] >= 0).all()
    # one item, scored alone, by hand: attention of layer 1, head 0 over its query positions 1..
    item = items.batches[0][0]
    input_ids, mask = items.padded(0, DEVICE)
    row = items.batches[0].index(item)
    length = int(mask[row].sum())
    with torch.no_grad():
        probs = model(input_ids=input_ids[row:row + 1, :length], output_attentions=True).attentions[1][0, 0]
    # each query's feature over its value for uniform attention on its q + 1 keys
    entropy = [-sum(float(p) * np.log(float(p)) for p in probs[q, : q + 1] if p > 0) / np.log(q + 1)
               for q in range(1, length)]
    distance = [sum(float(probs[q, k]) * (q - k) for k in range(q + 1)) / (q / 2) for q in range(1, length)]
    sink = [float(probs[q, 0]) * (q + 1) for q in range(1, length)]
    got = features[(features["item"] == item) & (features["layer"] == 1) & (features["head"] == 0)].iloc[0]
    assert got["entropy"] == pytest.approx(np.mean(entropy), rel=1e-4)
    assert got["distance"] == pytest.approx(np.mean(distance), rel=1e-4)
    assert got["sink_mass"] == pytest.approx(np.mean(sink), rel=1e-4)


def _planted(seed: int = 0) -> pd.DataFrame:
    """Four heads; head (0, 1) separates three languages by its entropy, the others do not."""
    rng = np.random.default_rng(seed)
    rows = []
    for language_index, language in enumerate(["a", "b", "c"]):
        for item in range(40):
            for layer, head in [(0, 0), (0, 1), (1, 0), (1, 1)]:
                shift = 3.0 * language_index if (layer, head) == (0, 1) else 0.0
                rows.append({"item": item, "language": language, "layer": layer, "head": head,
                             "entropy": rng.normal(shift, 1.0), "distance": rng.normal(0, 1.0),
                             "sink_mass": rng.normal(0, 1.0)})
    return pd.DataFrame(rows)


def test_specificity_finds_a_planted_specific_head_and_no_other():
    table = head_specificity(_planted(), specific_min=1.0, universal_max=0.1, alpha=0.05,
                             resamples=999, seed=0).set_index(["layer", "head"])
    assert table.loc[(0, 1), "class"] == "specific"
    assert table.loc[(0, 1), "entropy_specificity"] > 5
    assert (table.drop(index=(0, 1))["class"] != "specific").all()


def test_outlier_heads_and_overlap_test():
    census = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1],
                           "excess_kurtosis": [5.0, 0.1, 3.0, 0.2]})
    assert outlier_heads(census, 0.5).tolist() == [True, False, True, False]
    assert outlier_heads(census, 0.01).tolist() == [True, False, False, False]  # at least one
    specific = np.array([1, 0, 1, 0] * 10, bool)
    result = overlap_test(specific, specific.copy(), 0.95)
    assert result["overlap"] == 20 and result["expected_overlap"] == 10
    assert result["p"] == pytest.approx(stats.fisher_exact([[20, 0], [0, 20]], alternative="greater")[1])
    unrelated = overlap_test(specific, np.array([1, 1, 0, 0] * 10, bool), 0.95)
    assert unrelated["p"] > 0.3 and unrelated["ci_low"] < 1 < unrelated["ci_high"]


def test_overlap_with_an_empty_cell_stays_finite():
    specific = np.array([1] * 8 + [0] * 32, bool)
    result = overlap_test(specific, specific.copy(), 0.95)
    assert result["odds_ratio_method"] == "haldane-anscombe"
    assert np.isfinite([result["odds_ratio"], result["ci_low"], result["ci_high"]]).all()
    assert result["ci_low"] > 1  # 8 of 8 specific heads are outlier heads, 0 of 32 others


def test_the_whole_track_b_run_on_a_tiny_model(model, items):
    """run_interpretability end to end: every table, the probes and the activation mediation."""
    from pathlib import Path

    import yaml

    from qfair.analysis.interpretability import interpretability_metrics, run_interpretability
    from qfair.params import parse_params

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text(encoding="utf-8"))
    raw["interpretability"].update(null_resamples=99, items_per_language=8, activation_config="w16a2-token")
    ip = parse_params(raw).interpretability
    run = run_interpretability(model, items, 2, ip, ["lm_head"], 0.05, DEVICE)
    languages = sorted(set(items.languages))
    assert sorted(run.languages["language"]) == languages
    assert set(run.languages.columns) >= {"ablation_sensitivity", "rho", "probe_accuracy_drop"}
    assert set(run.probes["condition"]) == {"full_precision", "quantized", "transfer"}
    assert run.probes["layer"].nunique() == model.config.n_layer + 1
    assert set(run.activation_block_quantization["component"]) == {"L0.attn", "L0.mlp", "L1.attn", "L1.mlp"}
    assert len(run.activation_mediation) == len(run.mediation)
    metrics = interpretability_metrics(run)
    assert {"probes", "activation_config", "top_mediating_block"} <= set(metrics)
