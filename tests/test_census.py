"""Weight census: parameter labels across architectures, tensor statistics, streaming, summaries."""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BertConfig,
    BloomConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    OPTConfig,
    Qwen2Config,
    XGLMConfig,
    XLMRobertaConfig,
)

from qfair.analysis.census import (
    COMPONENTS,
    MATRIX_COMPONENTS,
    census_model,
    census_safetensors,
    head_kurtosis,
    label_parameter,
    model_class,
    parameter_kind,
    quantized_rows,
    summarize_census,
    tensor_stats,
)

TOKENS = {"vocab_size": 64, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
LAYERS = {"num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32, "hidden_size": 16,
          "max_position_embeddings": 32}
# OPT with word_embed_proj_dim != hidden_size, so that project_in/project_out (OPT-350m) exist.
CONFIGS = {
    "bloom": lambda: BloomConfig(hidden_size=16, n_layer=3, n_head=2, **TOKENS),
    "gpt2": lambda: GPT2Config(n_embd=16, n_layer=3, n_head=2, n_positions=32, **TOKENS),
    "opt": lambda: OPTConfig(ffn_dim=32, word_embed_proj_dim=8, **TOKENS,
                             **{k: v for k, v in LAYERS.items() if k != "intermediate_size"}),
    "gpt_neox": lambda: GPTNeoXConfig(**TOKENS, **LAYERS),
    "xglm": lambda: XGLMConfig(d_model=16, num_layers=3, attention_heads=2, ffn_dim=32,
                               max_position_embeddings=32, **TOKENS),
    "llama": lambda: LlamaConfig(num_key_value_heads=1, **TOKENS, **LAYERS),
    "qwen2": lambda: Qwen2Config(num_key_value_heads=1, **TOKENS, **LAYERS),
    "bert": lambda: BertConfig(**TOKENS, **LAYERS),
    "xlm_roberta": lambda: XLMRobertaConfig(**TOKENS, **LAYERS),
}
ENCODERS = {"bert", "xlm_roberta"}
SEPARATE_QKV = {"attn_q", "attn_k", "attn_v", "attn_o"}
FUSED_QKV = {"attn_qkv", "attn_o"}
LAYER_COMPONENTS = {
    "bloom": FUSED_QKV | {"mlp_up", "mlp_down", "norm"},
    "gpt2": FUSED_QKV | {"mlp_up", "mlp_down", "norm"},
    "gpt_neox": FUSED_QKV | {"mlp_up", "mlp_down", "norm"},
    "opt": SEPARATE_QKV | {"mlp_up", "mlp_down", "norm"},
    "xglm": SEPARATE_QKV | {"mlp_up", "mlp_down", "norm"},
    "llama": SEPARATE_QKV | {"mlp_gate", "mlp_up", "mlp_down", "norm"},
    "qwen2": SEPARATE_QKV | {"mlp_gate", "mlp_up", "mlp_down", "norm"},
    "bert": SEPARATE_QKV | {"mlp_up", "mlp_down", "norm"},
    "xlm_roberta": SEPARATE_QKV | {"mlp_up", "mlp_down", "norm"},
}
# Justified "other": BERT/XLM-R pooler (sentence-level head, no layer, not an LM head) and OPT's
# project_in/project_out (adapters between word_embed_proj_dim and hidden_size).
ALLOWED_OTHER = re.compile(r"^(pooler\.dense|model\.decoder\.project_(in|out))\.(weight|bias)$")


@functools.cache
def tiny_model(arch: str) -> torch.nn.Module:
    """A seeded tiny model of ``arch``, shared between tests: never modify it."""
    torch.manual_seed(0)
    auto = AutoModel if arch in ENCODERS else AutoModelForCausalLM
    return auto.from_config(CONFIGS[arch]()).eval()


def expected_layer(name: str) -> int | None:
    """Layer index read off the name independently of the library's regex."""
    parts = name.split(".")
    for container in ("h", "layers", "layer"):
        if container in parts and parts.index(container) + 1 < len(parts):
            return int(parts[parts.index(container) + 1])
    return None


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_every_parameter_of_each_architecture_is_labelled(arch: str) -> None:
    names = list(tiny_model(arch).state_dict())  # includes tied lm_head.weight
    labels = {name: label_parameter(name) for name in names}
    for name, (layer, component) in labels.items():
        assert component in COMPONENTS
        assert component != "other" or ALLOWED_OTHER.match(name), name
        assert layer == expected_layer(name), name
        assert parameter_kind(name) == name.rpartition(".")[2], name
    for index in range(3):
        found = {comp for layer, comp in labels.values() if layer == index}
        assert found == LAYER_COMPONENTS[arch], (arch, index)
    top_level = {comp for layer, comp in labels.values() if layer is None}
    assert {"embed", "norm"} <= top_level
    assert ("lm_head" in top_level) == (arch not in ENCODERS)


@pytest.mark.parametrize(("name", "expected"), [
    ("transformer.h.0.self_attention.dense.weight", (0, "attn_o")),
    ("h.7.self_attention.dense.bias", (7, "attn_o")),  # hub BLOOM checkpoints lack the prefix
    ("transformer.h.1.self_attention.query_key_value.weight", (1, "attn_qkv")),
    ("transformer.h.1.mlp.dense_h_to_4h.weight", (1, "mlp_up")),
    ("transformer.h.1.mlp.dense_4h_to_h.weight", (1, "mlp_down")),
    ("transformer.word_embeddings.weight", (None, "embed")),
    ("transformer.word_embeddings_layernorm.weight", (None, "norm")),
    ("h.2.attn.c_attn.weight", (2, "attn_qkv")),
    ("h.2.attn.c_proj.weight", (2, "attn_o")),
    ("h.2.mlp.c_fc.bias", (2, "mlp_up")),
    ("h.2.mlp.c_proj.weight", (2, "mlp_down")),
    ("wpe.weight", (None, "embed")),
    ("h.2.attn.bias", (2, "other")),  # GPT-2 causal-mask buffer, not a bias
    ("model.decoder.layers.5.self_attn.out_proj.weight", (5, "attn_o")),
    ("model.decoder.layers.5.fc1.weight", (5, "mlp_up")),
    ("model.decoder.layers.5.fc2.weight", (5, "mlp_down")),
    ("model.decoder.embed_positions.weight", (None, "embed")),
    ("gpt_neox.layers.4.attention.dense.weight", (4, "attn_o")),
    ("gpt_neox.embed_in.weight", (None, "embed")),
    ("embed_out.weight", (None, "lm_head")),
    ("gpt_neox.embed_out.weight", (None, "lm_head")),
    ("model.layers.12.mlp.gate_proj.weight", (12, "mlp_gate")),
    ("model.layers.12.mlp.up_proj.weight", (12, "mlp_up")),
    ("model.layers.12.mlp.down_proj.weight", (12, "mlp_down")),
    ("model.layers.12.self_attn.o_proj.weight", (12, "attn_o")),
    ("model.layers.12.self_attn.k_proj.bias", (12, "attn_k")),
    ("model.layers.0.self_attn.rotary_emb.inv_freq", (0, "other")),
    ("encoder.layer.3.attention.output.dense.weight", (3, "attn_o")),
    ("bert.encoder.layer.3.output.dense.weight", (3, "mlp_down")),
    ("roberta.encoder.layer.10.intermediate.dense.bias", (10, "mlp_up")),
    ("roberta.encoder.layer.10.attention.self.value.weight", (10, "attn_v")),
    ("roberta.encoder.layer.10.attention.output.LayerNorm.weight", (10, "norm")),
    ("bert.embeddings.token_type_embeddings.weight", (None, "embed")),
    ("bert.embeddings.LayerNorm.bias", (None, "norm")),
    ("cls.predictions.decoder.weight", (None, "lm_head")),
    ("lm_head.dense.weight", (None, "lm_head")),
    ("something.entirely.new", (None, "other")),
])
def test_specific_names(name: str, expected: tuple[int | None, str]) -> None:
    assert label_parameter(name) == expected


def test_parameter_kind() -> None:
    assert parameter_kind("h.0.attn.c_attn.bias") == "bias"
    assert parameter_kind("h.0.attn.bias") == "buffer"
    assert parameter_kind("gpt_neox.layers.0.attention.masked_bias") == "buffer"
    assert parameter_kind("model.layers.0.self_attn.q_proj.weight") == "weight"


def _kurtosis(t: torch.Tensor) -> float:
    return tensor_stats(t)["excess_kurtosis"]


def test_kurtosis_of_reference_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 1_000_000
    assert abs(_kurtosis(torch.randn(n, generator=gen))) < 0.03  # standard error ~0.005
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((n,))
    assert abs(_kurtosis(laplace) - 3.0) < 0.3  # standard error ~0.05
    assert abs(_kurtosis(torch.rand(n, generator=gen) * 4 - 1) + 1.2) < 0.01


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(2, 12)),
              elements=st.floats(-1e3, 1e3, allow_subnormal=False)))
def test_stats_match_scipy_and_numpy(values: np.ndarray) -> None:
    assume(values.std() > 1e-6 * max(1.0, np.abs(values).max()))
    result = tensor_stats(torch.from_numpy(values.copy()))
    expected = stats.kurtosis(values, axis=None, fisher=True, bias=True)
    assert result["excess_kurtosis"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert result["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-9)
    assert result["std"] == pytest.approx(values.std(), rel=1e-9)
    assert result["max_abs_over_std"] == pytest.approx(np.abs(values).max() / values.std(), rel=1e-9)
    centred = np.abs(values - values.mean())
    assert result["frac_beyond_6std"] == np.mean(centred > 6 * values.std())
    assert abs(result["top_k"][0][0]) == np.abs(values).max()


def test_low_precision_is_cast_to_float64() -> None:
    t = torch.randn(64, 64, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    expected = stats.kurtosis(t.double().numpy(), axis=None, fisher=True, bias=True)
    assert tensor_stats(t)["excess_kurtosis"] == pytest.approx(expected, rel=1e-10)


def test_planted_outliers_raise_kurtosis_and_are_the_top_coordinates() -> None:
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(2))
    before = tensor_stats(w)
    w[17, 42], w[3, 4] = 50.0, -30.0
    after = tensor_stats(w, k=3)
    assert abs(before["excess_kurtosis"]) < 0.2 and after["excess_kurtosis"] > 50
    assert [index for _, index in after["top_k"]][:2] == [(17, 42), (3, 4)]
    assert [value for value, _ in after["top_k"]][:2] == [50.0, -30.0]
    assert after["frac_beyond_6std"] == pytest.approx(2 / w.numel())
    assert after["max_abs_over_std"] > 45
    assert len(after["top_k"]) == 3


def test_tensor_stats_edge_cases() -> None:
    constant = tensor_stats(torch.ones(4, 4))
    assert constant["std"] == 0 and np.isnan(constant["excess_kurtosis"])
    assert tensor_stats(torch.arange(3.0), k=10)["top_k"] == [(2.0, (2,)), (1.0, (1,)), (0.0, (0,))]
    source = torch.randn(8, 8, dtype=torch.float64)
    copy = source.clone()
    tensor_stats(source)
    assert torch.equal(source, copy)  # float64 input is not centred in place


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_tensor_is_named(bad: float) -> None:
    t = torch.zeros(4, 4)
    t[1, 2] = bad
    with pytest.raises(ValueError, match=r"layers\.3\.mlp\.down_proj\.weight"):
        tensor_stats(t, name="model.layers.3.mlp.down_proj.weight")


@pytest.mark.parametrize("arch", ["bloom", "gpt2", "llama"])
@pytest.mark.parametrize("include_1d", [False, True])
def test_safetensors_census_equals_model_census(arch: str, include_1d: bool, tmp_path) -> None:
    model = tiny_model(arch)
    model.save_pretrained(tmp_path, max_shard_size="20KB")  # sharded: several files
    files = sorted(tmp_path.glob("*.safetensors"))
    assert len(files) > 1
    from_files = census_safetensors(files, top_k=3, include_1d=include_1d)
    in_memory = census_model(model, top_k=3, include_1d=include_1d)
    assert (from_files["shape"].map(len) >= 2).all() != include_1d
    pd.testing.assert_frame_equal(from_files.sort_values("name").reset_index(drop=True),
                                  in_memory.sort_values("name").reset_index(drop=True))


def test_census_model_rows_and_nan_parameter() -> None:
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_config(CONFIGS["llama"]())
    df = census_model(model)
    assert df["layer"].dtype == "Int64" and set(df["kind"]) == {"weight"}
    assert len(df) == 3 * 7 + 2  # 7 matrices per layer, embedding, untied head
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        census_model(model)


@pytest.mark.parametrize(("value", "label"), [
    (50.0001, "HEAVY"), (50.0, "Moderate"), (10.0001, "Moderate"), (10.0, "Mild"),
    (3.0001, "Mild"), (3.0, "Gaussian"), (-1.2, "Gaussian"), (1e9, "HEAVY"),
])
def test_model_class_thresholds(value: float, label: str) -> None:
    assert model_class(value) == label


def test_model_class_rejects_nan() -> None:
    with pytest.raises(ValueError):
        model_class(float("nan"))


def test_summarize_census_finds_the_planted_tensor() -> None:
    torch.manual_seed(4)
    model = AutoModelForCausalLM.from_config(CONFIGS["llama"]())
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[5, 7] = 100.0
    df = census_model(model)
    summary = summarize_census(df)
    assert summary["max_kurtosis_tensor"] == "model.layers.1.mlp.down_proj.weight"
    assert (summary["max_kurtosis_layer"], summary["heaviest_layer"]) == (1, 1)
    assert summary["max_kurtosis_component"] == "mlp_down" and summary["class"] == "HEAVY"
    assert summary["max_kurtosis"] == df["excess_kurtosis"].max()
    assert set(summary["per_layer_max"]) == {0, 1, 2}
    assert set(summary["per_component"]) == {"attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate",
                                             "mlp_up", "mlp_down", "embed", "lm_head"}
    attn = df[df["component"].str.startswith("attn_")]["excess_kurtosis"].mean()
    mlp = df[df["component"].str.startswith("mlp_")]["excess_kurtosis"].mean()
    assert summary["attn_mean_kurtosis"] == pytest.approx(attn)
    assert summary["mlp_mean_kurtosis"] == pytest.approx(mlp) and mlp > attn
    assert summary["per_component"]["mlp_down"]["n"] == 3
    assert summary["embed_max_kurtosis_tensor"] == "model.embed_tokens.weight"


def test_class_ignores_tensors_that_are_never_quantized() -> None:
    """A heavy-tailed embedding (or output head) does not make the model HEAVY: it is never quantized."""
    torch.manual_seed(4)
    model = AutoModelForCausalLM.from_config(CONFIGS["llama"]())
    with torch.no_grad():
        model.model.embed_tokens.weight[3, 2] = 100.0
        model.lm_head.weight[1, 1] = 100.0
    df = census_model(model)
    assert df["excess_kurtosis"].max() > 50  # over all tensors the model would be HEAVY
    summary = summarize_census(df, exclude=["lm_head"])
    assert summary["class"] != "HEAVY" and summary["max_kurtosis_component"] in MATRIX_COMPONENTS
    quantized = df[quantized_rows(df, ["lm_head"])]
    assert summary["max_kurtosis"] == quantized["excess_kurtosis"].max()
    assert summary["embed_max_kurtosis_tensor"] == "model.embed_tokens.weight"
    assert summary["embed_max_kurtosis"] > 50


def test_quantized_rows_follow_exclude_modules() -> None:
    model = AutoModelForCausalLM.from_config(CONFIGS["llama"]())
    df = census_model(model)
    names = set(df.loc[quantized_rows(df), "name"])
    assert {"model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight"} <= names
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in names)
    fewer = set(df.loc[quantized_rows(df, ["layers.0."]), "name"])
    assert fewer == {n for n in names if "layers.0." not in n}
    planted = df.assign(excess_kurtosis=np.where(df["name"].str.contains("layers.0.self_attn.q_proj"), 99.0,
                                                 df["excess_kurtosis"]))
    assert summarize_census(planted)["class"] == "HEAVY"
    assert summarize_census(planted, exclude=["layers.0."])["class"] != "HEAVY"


def test_head_kurtosis_picks_the_heavy_head() -> None:
    gen = torch.Generator().manual_seed(5)
    n_heads, head_dim, hidden = 4, 16, 48
    weight = torch.randn(hidden, n_heads * head_dim, generator=gen)  # o_proj: [out, in]
    # Head 2 (input columns 32..47) gets Student-t(3)-like tails: Gaussian / sqrt(chi2 / 3).
    block = weight[:, 2 * head_dim:3 * head_dim]
    chi2 = torch.randn(*block.shape, 3, generator=gen).pow(2).sum(-1) / 3
    weight[:, 2 * head_dim:3 * head_dim] = block / chi2.sqrt()
    per_head = head_kurtosis(weight, n_heads)
    assert per_head.shape == (n_heads,) and int(np.argmax(per_head)) == 2
    assert per_head[2] == pytest.approx(_kurtosis(weight[:, 32:48]))
    # GPT-2 Conv1D layout [in, out]: the same heads via transposed=True or the other axis.
    np.testing.assert_allclose(head_kurtosis(weight.T.contiguous(), n_heads, transposed=True), per_head)
    np.testing.assert_allclose(head_kurtosis(weight.T.contiguous(), n_heads, head_axis="out"), per_head)
    with pytest.raises(ValueError, match="heads"):
        head_kurtosis(weight, 5)
