"""Activation profiles: block output modules across architectures, per-language profiles, padding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from qfair.analysis.activations import block_output_modules, profile_language, profile_languages
from qfair.models.load import load_model

N_LAYER, N_HEAD = 2, 2  # the conftest's tiny BLOOM
LANGS = ["fr_FR", "yo"]


@pytest.fixture(scope="module")
def eager_bloom(tiny_model, tiny_tokenizer, tmp_path_factory):
    """The conftest's tiny BLOOM, saved and reloaded with eager attention as the stage does."""
    path = tmp_path_factory.mktemp("eager_bloom")
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    model = load_model(path, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    return model


@pytest.fixture(scope="module")
def texts(tiny_corpus) -> dict[str, dict[str, str]]:
    """Six test items per language plus one long item, so that batches are padded a lot."""
    out = {}
    for lang in LANGS:
        items = dict(sorted(tiny_corpus.splits["test"][lang].items())[:6])
        items["long"] = " ".join(items.values())
        out[lang] = items
    return out


@pytest.fixture(scope="module")
def profiles(eager_bloom, tiny_tokenizer, texts):
    return {budget: profile_languages(eager_bloom, tiny_tokenizer, texts, budget, 1024)
            for budget in (10**6, 1)}


def _ids(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])


# --- block output modules ----------------------------------------------------------------------


def test_block_output_modules_bloom(tiny_model) -> None:
    modules = block_output_modules(tiny_model)
    blocks = tiny_model.transformer.h
    assert modules["attn"] == [blocks[i].self_attention.dense for i in range(N_LAYER)]
    assert modules["mlp"] == [blocks[i].mlp.dense_4h_to_h for i in range(N_LAYER)]


def test_block_output_modules_gpt2() -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=3, n_head=2, n_positions=32))
    modules = block_output_modules(model)
    assert modules["attn"] == [model.transformer.h[i].attn.c_proj for i in range(3)]
    assert modules["mlp"] == [model.transformer.h[i].mlp.c_proj for i in range(3)]
    assert len({id(m) for m in modules["attn"] + modules["mlp"]}) == 6


def test_block_output_modules_llama() -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=3, num_attention_heads=2,
                                         num_key_value_heads=1, max_position_embeddings=32))
    modules = block_output_modules(model)
    assert modules["attn"] == [model.model.layers[i].self_attn.o_proj for i in range(3)]
    assert modules["mlp"] == [model.model.layers[i].mlp.down_proj for i in range(3)]


def test_block_output_modules_needs_both_kinds() -> None:
    with pytest.raises(ValueError, match="cannot pair"):
        block_output_modules(torch.nn.Sequential(torch.nn.Linear(4, 4)))


# --- profiles ----------------------------------------------------------------------------------


def test_profile_tables(profiles) -> None:
    layers, heads = profiles[10**6]
    assert list(layers.columns) == ["language", "layer", "attn_out_norm", "mlp_out_norm", "residual_norm",
                                    "max_abs_residual", "max_abs_dim", "sink_mass"]
    assert len(layers) == len(LANGS) * N_LAYER
    assert not layers.duplicated(["language", "layer"]).any()
    assert sorted(set(layers["language"])) == LANGS
    assert sorted(set(layers["layer"])) == list(range(N_LAYER))
    assert layers["sink_mass"].between(0, 1).all()
    # with causal attention a position-1 query puts real mass on key 0: never exactly 0
    assert (layers["sink_mass"] > 0).all()
    for column in ("attn_out_norm", "mlp_out_norm", "residual_norm", "max_abs_residual"):
        values = layers[column].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all(), column
    assert layers["max_abs_dim"].between(0, 31).all()
    # per-head table: layers x heads rows per language, averaging to the layer's sink mass
    assert len(heads) == len(LANGS) * N_LAYER * N_HEAD
    assert heads["sink_mass"].between(0, 1).all()
    for (lang, layer), group in heads.groupby(["language", "layer"]):
        assert sorted(group["head"]) == list(range(N_HEAD))
        row = layers[(layers["language"] == lang) & (layers["layer"] == layer)].iloc[0]
        assert group["sink_mass"].mean() == pytest.approx(row["sink_mass"])


def test_languages_differ(profiles) -> None:
    layers = profiles[10**6][0].set_index(["language", "layer"])
    assert not np.allclose(layers.loc["fr_FR", "attn_out_norm"], layers.loc["yo", "attn_out_norm"])


def test_profile_ignores_padding(profiles) -> None:
    (batched, batched_heads), (single, single_heads) = profiles[10**6], profiles[1]
    assert batched[["language", "layer"]].equals(single[["language", "layer"]])
    for column in ("attn_out_norm", "mlp_out_norm", "residual_norm", "sink_mass", "max_abs_residual"):
        np.testing.assert_allclose(batched[column], single[column], rtol=1e-5, err_msg=column)
    np.testing.assert_array_equal(batched["max_abs_dim"], single["max_abs_dim"])
    np.testing.assert_allclose(batched_heads["sink_mass"], single_heads["sink_mass"], rtol=1e-5)


def test_padding_is_actually_exercised(eager_bloom, tiny_tokenizer, texts) -> None:
    """Guard for the test above: the large budget puts items of different lengths in one batch."""
    from qfair.scoring.causal import padded_batches

    batches = list(padded_batches(tiny_tokenizer, list(texts["yo"].values()), 10**6, 1024))
    assert len(batches) == 1 and not bool(batches[0][2].all())


@torch.no_grad()
def _manual_profile(model, tokenizer, items: list[str]) -> pd.DataFrame:
    """Layer profile from one unpadded forward pass per item, with hooks on the blocks themselves."""
    blocks = model.transformer.h
    captured: dict[str, list[torch.Tensor]] = {}

    def keep(key: str):
        def record(module, args, output):
            captured.setdefault(key, []).append((output[0] if isinstance(output, tuple) else output)[0])
        return record

    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(keep(f"block{i}")))
        handles.append(block.self_attention.dense.register_forward_hook(keep(f"attn{i}")))
        handles.append(block.mlp.dense_4h_to_h.register_forward_hook(keep(f"mlp{i}")))
    sinks = []
    try:
        for text in items:
            out = model(input_ids=_ids(tokenizer, text), output_attentions=True)
            sinks.append(torch.stack([a[0, :, 1:, 0] for a in out.attentions]))  # [L, H, T-1]
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for i in range(N_LAYER):
        attn, mlp, block = (torch.cat(captured[f"{k}{i}"]).double() for k in ("attn", "mlp", "block"))
        rows.append({"layer": i, "attn_out_norm": float(attn.norm(dim=-1).mean()),
                     "mlp_out_norm": float(mlp.norm(dim=-1).mean()),
                     "residual_norm": float(block.norm(dim=-1).mean()),
                     "max_abs_residual": float(block.abs().max()),
                     "sink_mass": float(torch.cat([s[i].reshape(N_HEAD, -1) for s in sinks], 1).mean())})
    return pd.DataFrame(rows)


def test_profile_matches_a_manual_computation(eager_bloom, tiny_tokenizer, texts, profiles) -> None:
    items = list(texts["yo"].values())
    manual = _manual_profile(eager_bloom, tiny_tokenizer, items)
    layers = profiles[10**6][0]
    got = layers[layers["language"] == "yo"].reset_index(drop=True)
    for column in ("attn_out_norm", "mlp_out_norm", "sink_mass"):
        np.testing.assert_allclose(got[column], manual[column], rtol=1e-5, err_msg=column)
    # the residual stream after every block but the last is the model's hidden state
    first = got.iloc[:-1]
    np.testing.assert_allclose(first["residual_norm"], manual["residual_norm"].iloc[:-1], rtol=1e-5)
    np.testing.assert_allclose(first["max_abs_residual"], manual["max_abs_residual"].iloc[:-1], rtol=1e-5)


def test_last_layer_residual_is_before_the_final_norm(eager_bloom, tiny_tokenizer, texts, profiles) -> None:
    items = list(texts["yo"].values())
    manual = _manual_profile(eager_bloom, tiny_tokenizer, items)
    layers = profiles[10**6][0]
    got = layers[layers["language"] == "yo"].reset_index(drop=True)
    np.testing.assert_allclose(got["residual_norm"], manual["residual_norm"], rtol=1e-5)
    np.testing.assert_allclose(got["max_abs_residual"], manual["max_abs_residual"], rtol=1e-5)


def test_profile_language_single_item_sink(eager_bloom, tiny_tokenizer) -> None:
    text = "ṣí fáìlì náà"
    modules = block_output_modules(eager_bloom)
    frame, sink = profile_language(eager_bloom, tiny_tokenizer, [text], modules, 10**6, 1024)
    with torch.no_grad():
        out = eager_bloom(input_ids=_ids(tiny_tokenizer, text), output_attentions=True)
    expected = np.stack([a[0, :, 1:, 0].double().mean(dim=-1).numpy() for a in out.attentions])
    assert sink.shape == (N_LAYER, N_HEAD)
    np.testing.assert_allclose(sink, expected, rtol=1e-6)
    np.testing.assert_allclose(frame["sink_mass"], expected.mean(axis=1), rtol=1e-6)


# --- input outliers of the compressed Linear layers (EXP-035) ----------------------------------


def _heavy_tailed(seed: int, shape: tuple[int, int]) -> torch.Tensor:
    """Student-t (3 dof) data with a shifted mean and a few outlier channels."""
    generator = np.random.default_rng(seed)
    data = generator.standard_t(3, size=shape) + 0.7
    data[:, :2] *= 25.0
    return torch.from_numpy(data)


def test_streaming_kurtosis_matches_scipy() -> None:
    from scipy import stats

    from qfair.analysis.activations import StreamingInputStats

    data = _heavy_tailed(0, (997, 24))
    streaming = StreamingInputStats(24, "cpu")
    for chunk in torch.split(data, [1, 300, 17, 0, 679]):  # uneven batches, an empty one, a single token
        streaming.update(chunk.float() if chunk.shape[0] == 17 else chunk)
    expected = stats.kurtosis(data.numpy().ravel())  # Fisher, biased: scipy's defaults
    assert expected > 3  # heavy-tailed indeed
    got = streaming.result()
    np.testing.assert_allclose(got["kurtosis"], expected, rtol=1e-6)
    absolute = np.abs(data.numpy())
    channel = absolute.max(axis=0)
    np.testing.assert_allclose(got["channel_max_over_median"], channel.max() / np.median(channel), rtol=1e-6)
    # the median of |x| comes from the log histogram: within its stated resolution
    np.testing.assert_allclose(got["max_over_median"], absolute.max() / np.median(absolute), rtol=3e-3)


def test_histogram_median_resolution() -> None:
    from qfair.analysis.activations import StreamingInputStats, histogram_median

    for seed in range(3):
        values = np.exp(np.random.default_rng(seed).normal(0, 4, size=2001))  # spans many octaves
        stats = StreamingInputStats(1, "cpu")
        stats.update(torch.from_numpy(values)[:, None])
        got = histogram_median(stats.histogram.numpy())
        assert abs(got / np.median(values) - 1) < 2 ** (0.5 / 256) - 1 + 1e-12
    half_zero = StreamingInputStats(1, "cpu")
    half_zero.update(torch.tensor([[0.0], [0.0], [0.0], [1.0], [2.0]]))
    assert histogram_median(half_zero.histogram.numpy()) == 0.0
    assert np.isnan(half_zero.result()["max_over_median"])  # a ReLU-like layer: an empty cell


def test_block_linears_are_the_compressed_ones(tiny_model) -> None:
    from qfair.analysis.activations import block_linears
    from qfair.models.linears import target_linears

    found = block_linears(tiny_model, ["lm_head"])
    targets = target_linears(tiny_model, ["lm_head"])
    assert {name: lin for name, (_, lin) in found.items()} == targets  # BLOOM: all inside the blocks
    assert len(found) == 4 * N_LAYER
    assert {layer for layer, _ in found.values()} == set(range(N_LAYER))
    assert not any("dense_4h_to_h" in name for name in block_linears(tiny_model, ["dense_4h_to_h"]))


@pytest.fixture(scope="module")
def outliers(eager_bloom, tiny_tokenizer, texts):
    from qfair.analysis.activations import outlier_stats_languages

    return {budget: outlier_stats_languages(eager_bloom, tiny_tokenizer, texts, ["lm_head"], budget, 1024)
            for budget in (10**6, 1)}


def test_outlier_table(outliers) -> None:
    from qfair.analysis.activations import OUTLIER_COLUMNS, outlier_summary

    frame = outliers[10**6]
    assert list(frame.columns) == OUTLIER_COLUMNS
    assert len(frame) == len(LANGS) * 4 * N_LAYER
    assert not frame.duplicated(["language", "module"]).any()
    assert np.isfinite(frame[["kurtosis", "max_over_median", "channel_max_over_median"]].to_numpy()).all()
    assert (frame["max_over_median"] > 1).all() and (frame["channel_max_over_median"] >= 1).all()
    summary = outlier_summary(frame)
    assert list(summary["language"]) == LANGS
    wanted = {"act_kurtosis_max", "act_max_over_median_max", "act_channel_max_over_median_mean"}
    assert wanted <= set(summary.columns)
    yo = frame[frame["language"] == "yo"]
    row = summary.set_index("language").loc["yo"]
    assert row["act_kurtosis_max"] == yo["kurtosis"].max()
    assert row["act_max_over_median_mean"] == pytest.approx(yo["max_over_median"].mean())


def test_outliers_ignore_padding(outliers, tiny_tokenizer, texts) -> None:
    """One padded batch per language and one item per batch (no padding) give the same statistics."""
    batched, single = outliers[10**6], outliers[1]
    assert batched[["language", "module", "tokens"]].equals(single[["language", "module", "tokens"]])
    for column in ("kurtosis", "max_over_median", "channel_max_over_median"):
        np.testing.assert_allclose(batched[column], single[column], rtol=1e-5, err_msg=column)
    expected = sum(len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) + 1  # + BOS
                   for t in texts["yo"].values())
    assert set(batched.loc[batched["language"] == "yo", "tokens"]) == {expected}


@torch.no_grad()
def test_outliers_match_a_manual_computation(eager_bloom, tiny_tokenizer, texts, outliers) -> None:
    """Block 1's MLP input statistics, from unpadded forward passes and scipy."""
    from scipy import stats

    module = eager_bloom.transformer.h[1].mlp.dense_h_to_4h
    captured = []
    handle = module.register_forward_pre_hook(lambda m, args: captured.append(args[0][0].double()))
    try:
        for text in texts["fr_FR"].values():
            eager_bloom(input_ids=_ids(tiny_tokenizer, text))
    finally:
        handle.remove()
    inputs = torch.cat(captured).numpy()
    frame = outliers[10**6]
    name = "transformer.h.1.mlp.dense_h_to_4h"
    row = frame[(frame["language"] == "fr_FR") & (frame["module"] == name)].iloc[0]
    assert row["layer"] == 1 and row["tokens"] == inputs.shape[0]
    np.testing.assert_allclose(row["kurtosis"], stats.kurtosis(inputs.ravel()), rtol=1e-5)
    channel = np.abs(inputs).max(axis=0)
    np.testing.assert_allclose(row["channel_max_over_median"], channel.max() / np.median(channel), rtol=1e-5)
