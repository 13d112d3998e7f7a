"""Applying compression configs to a tiny BLOOM: targets, snapshots, calibration moments, the sweep.

The BLOOM here has hidden size 64 (not the conftest's 32) so that every Linear input width is a
multiple of bitsandbytes' 4-bit block size (64) and real nf4/int8 kernels run on the CPU.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qfair.io import write_csv
from qfair.models.linears import target_linears
from qfair.models.load import build_bloom
from qfair.quant import sweep_runner
from qfair.quant.calibration import input_statistics
from qfair.quant.configs import parse_config
from qfair.quant.methods import Calibration, WeightSnapshot
from qfair.quant.sweep_runner import (
    PartialResults,
    SweepSettings,
    calibrate,
    clear_partial,
    run_sweep,
    sweep_fingerprint,
)
from qfair.scoring.causal import score_items

EXCLUDE = ["lm_head"]
N_LAYER = 2
KINDS = ("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
LANGS = ["en", "hi_IN", "zh_Hans"]
N_ITEMS = 5
SWEEP_CONFIGS = ["rtn-w8-ch-sym", "rtn-w2-tensor-sym", "laaciq-uniform-w4-ch", "oracle-w4-ch",
                 "bnb-int8", "bnb-nf4", "prune-wanda-50", "gptq-w4-ch-oracle", "lagptq-w3-g32-minimax-act",
                 "awq-w4-g32-oracle", "hqq-w3-g32", "w8a8-tensor", "smoothquant-a0.5-w4a4-token",
                 "hadamard-w4a8-token"]
SETTINGS = SweepSettings(exclude_modules=EXCLUDE, laaciq_prior="laplace", bnb_int8_threshold=6.0,
                         batch_tokens=256, max_tokens=1024, reference_language="en")


@pytest.fixture(scope="module")
def bloom64(tiny_tokenizer):
    tok = tiny_tokenizer
    model = build_bloom(len(tok), hidden_size=64, n_layer=N_LAYER, n_head=2, dropout=0.0,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id, seed=11).eval()
    with torch.no_grad():  # spread the weights so that outputs depend clearly on them
        generator = torch.Generator().manual_seed(3)
        for param in model.parameters():
            if param.dim() >= 2:
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


@pytest.fixture(scope="module")
def saved_bloom64(bloom64, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("bloom64")
    bloom64.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pristine(bloom64) -> dict[str, torch.Tensor]:
    """The model's state before any test of this module touched it."""
    return _state(bloom64)


@pytest.fixture
def snapshot(bloom64, pristine):
    """A snapshot of the module's model, restored after the test whatever happens."""
    snap = WeightSnapshot(target_linears(bloom64, EXCLUDE))
    yield snap
    snap.restore()


def _state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _parallel(split: dict[str, dict[str, str]], languages: list[str], count: int) -> dict:
    """The first ``count`` item ids common to ``languages``, the same in each."""
    common = sorted(set.intersection(*(set(split[lang]) for lang in languages)))[:count]
    assert len(common) == count
    return {lang: {i: split[lang][i] for i in common} for lang in languages}


# --- targets and snapshots ---------------------------------------------------------------------


def test_target_linears_are_the_block_linears(bloom64) -> None:
    targets = target_linears(bloom64, EXCLUDE)
    expected = {f"transformer.h.{i}.{kind}" for i in range(N_LAYER) for kind in KINDS}
    assert set(targets) == expected
    assert all(isinstance(m, torch.nn.Linear) for m in targets.values())
    assert targets["transformer.h.1.mlp.dense_4h_to_h"] is bloom64.transformer.h[1].mlp.dense_4h_to_h
    # the head is a Linear too: it is only the exclusion that keeps it out
    everything = target_linears(bloom64, [])
    assert set(everything) == expected | {"lm_head"}


def test_snapshot_is_a_copy_and_restores_bit_identical(bloom64, snapshot) -> None:
    before = _state(bloom64)
    parse_config("rtn-w3-ch-sym").apply(snapshot)
    changed = [n for n in snapshot.linears if not torch.equal(snapshot.linears[n].weight,
                                                                  before[f"{n}.weight"])]
    assert sorted(changed) == sorted(snapshot.linears)
    # the snapshot itself was not touched by the in-place rewrite
    for name in snapshot.linears:
        assert torch.equal(snapshot.weights[name], before[f"{name}.weight"])
    snapshot.restore()
    after = _state(bloom64)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_apply_starts_from_the_snapshot_not_the_current_weights(bloom64, snapshot) -> None:
    config = parse_config("rtn-w4-ch-sym")
    config.apply(snapshot)
    once = _state(bloom64)
    parse_config("rtn-w2-tensor-sym").apply(snapshot)
    config.apply(snapshot)
    again = _state(bloom64)
    for key in once:
        assert torch.equal(once[key], again[key]), key


def _calibration(model, tokenizer, corpus) -> Calibration:
    texts = _parallel(corpus.splits["dev"], LANGS, 8)
    return calibrate(model, tokenizer, texts, SETTINGS, covariances=True)


@pytest.mark.parametrize("name", ["rtn-w4-ch-sym", "rtn-w3-tensor-sym", "rtn-w4-g32-asym",
                                  "aciq-laplace-w4-ch", "mse-w3-ch", "laaciq-minimax-w3-ch",
                                  "prune-magnitude-tensor-50", "prune-magnitude-global-50",
                                  "prune-wanda-50", "gptq-w3-ch-uniform", "gptq-w4-g32-reference-act",
                                  "lagptq-w3-ch-minimax", "awq-w4-g32-uniform", "awq-w3-ch-reference",
                                  "hqq-w4-g32", "w4a8-token", "smoothquant-a0.5-w4a8-tensor",
                                  "hadamard-w4a4-token"])
def test_configs_change_weights_and_keep_shapes(name, bloom64, snapshot, tiny_tokenizer,
                                                tiny_corpus) -> None:
    config = parse_config(name)
    calibration = None
    if config.family in {"laaciq", "prune", "gptq", "lagptq", "awq", "actquant", "smoothquant", "hadamard"}:
        calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    config.apply(snapshot, calibration)
    if config.granularity_label == "global":  # one threshold: the share holds over all tensors together
        zeros = sum(int((lin.weight == 0).sum()) for lin in snapshot.linears.values())
        total = sum(w.numel() for w in snapshot.weights.values())
        assert zeros == round(config.sparsity * total)
        pruned_max = max(float(snapshot.weights[name][lin.weight == 0].abs().max())
                         for name, lin in snapshot.linears.items() if bool((lin.weight == 0).any()))
        kept_min = min(float(lin.weight[lin.weight != 0].abs().min()) for lin in snapshot.linears.values())
        assert kept_min >= pruned_max  # every kept weight, in any tensor, beats every pruned one
    for layer, lin in snapshot.linears.items():
        original = snapshot.weights[layer]
        new = lin.weight.detach()
        assert new.shape == original.shape and new.dtype == original.dtype
        assert torch.isfinite(new).all()
        assert not torch.equal(new, original), layer
        if config.family == "prune":
            zeros = int((new == 0).sum())
            if config.granularity_label != "global":  # per tensor or per row: the share in every tensor
                assert zeros == round(config.sparsity * new.numel()), layer
            kept = new != 0
            assert torch.equal(new[kept], original[kept])
        elif config.family not in {"smoothquant", "hadamard"}:  # these transform W exactly first
            # quantization moves weights a little, not arbitrarily
            relative = float((new - original).norm() / original.norm())
            assert 0 < relative < 0.6, (layer, relative)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_rtn_channel_rows_have_at_most_2_to_the_bits_values(bits, snapshot) -> None:
    parse_config(f"rtn-w{bits}-ch-sym").apply(snapshot)
    for layer, lin in snapshot.linears.items():
        weight = lin.weight.detach()
        counts = [len(torch.unique(row)) for row in weight]
        assert max(counts) <= 2**bits, layer
        # a row of 64+ Gaussian-ish weights uses more than half its grid
        assert min(counts) > 2 ** (bits - 1), layer
        # symmetric grid: values are integer multiples of one step per row
        step = weight.abs().amax(dim=1, keepdim=True) / (2 ** (bits - 1))
        grid = weight / step
        assert torch.allclose(grid, grid.round(), atol=1e-4), layer


# --- calibration moments -----------------------------------------------------------------------


@torch.no_grad()
def _first_qkv_input(model, tokenizer, text: str) -> torch.Tensor:
    """The input of block 0's query_key_value for one item, computed from the modules by hand."""
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    hidden = model.transformer.word_embeddings_layernorm(model.transformer.word_embeddings(ids))
    return model.transformer.h[0].input_layernorm(hidden)[0].double()


def test_input_second_moments_match_a_manual_computation(bloom64, tiny_tokenizer, tiny_corpus) -> None:
    texts = list(tiny_corpus.splits["dev"]["yo"].values())[:6]
    linears = target_linears(bloom64, EXCLUDE)
    stats = input_statistics(bloom64, linears, tiny_tokenizer, texts, 10**6, 1024)
    moments, count = stats.moments, stats.count
    inputs = torch.cat([_first_qkv_input(bloom64, tiny_tokenizer, t) for t in texts])
    assert count == inputs.shape[0] and stats.covariances is None
    expected = inputs.square().mean(dim=0)
    got = moments["transformer.h.0.self_attention.query_key_value"]
    first = "transformer.h.0.self_attention.query_key_value"
    torch.testing.assert_close(stats.mean_abs[first], inputs.abs().mean(dim=0), rtol=1e-5, atol=0)
    torch.testing.assert_close(stats.absmax[first], inputs.abs().amax(dim=0), rtol=1e-5, atol=0)
    assert got.dtype == torch.float64 and got.shape == (64,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert set(moments) == set(linears)
    assert moments["transformer.h.1.mlp.dense_4h_to_h"].shape == (256,)
    again = input_statistics(bloom64, linears, tiny_tokenizer, texts, 10**6, 1024, covariances=True)
    covariances = again.covariances
    for name in linears:  # asking for covariances leaves the other statistics bit-identical
        assert torch.equal(again.moments[name], moments[name])
        assert torch.equal(again.absmax[name], stats.absmax[name])
    covariance = covariances["transformer.h.0.self_attention.query_key_value"]
    torch.testing.assert_close(covariance, inputs.T @ inputs / count, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(torch.diagonal(covariance), got, rtol=1e-9, atol=0)


def test_input_second_moments_ignore_padding(bloom64, tiny_tokenizer, tiny_corpus) -> None:
    texts = list(tiny_corpus.splits["dev"]["zh_Hans"].values())[:8]
    texts.append(" ".join(texts))  # one long item, so every other item is padded a lot
    linears = target_linears(bloom64, EXCLUDE)
    batched = input_statistics(bloom64, linears, tiny_tokenizer, texts, 10**6, 1024)
    single = input_statistics(bloom64, linears, tiny_tokenizer, texts, 1, 1024)
    assert batched.count == single.count
    for name in linears:
        torch.testing.assert_close(batched.moments[name], single.moments[name], rtol=1e-6, atol=0, msg=name)
        torch.testing.assert_close(batched.absmax[name], single.absmax[name], rtol=1e-4, atol=1e-6, msg=name)


def test_calibration_pools_languages(bloom64, tiny_tokenizer, tiny_corpus) -> None:
    calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    assert calibration.languages == sorted(LANGS)
    name = "transformer.h.0.mlp.dense_h_to_4h"
    assert calibration.moments[name].shape == (len(LANGS), 64)
    # Wanda's norm is the root of the summed squares over every calibration token
    pooled = sum(calibration.moments[name][i] * calibration.tokens[i] for i in range(len(LANGS)))
    torch.testing.assert_close(calibration.input_norms()[name], pooled.sqrt())
    only_hi = calibration.subset(["hi_IN"]).moments[name]
    torch.testing.assert_close(only_hi, calibration.moments[name][[LANGS.index("hi_IN")]])


# --- the sweep ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(bloom64, saved_bloom64, tiny_tokenizer, tiny_corpus, pristine):
    texts = _parallel(tiny_corpus.splits["test"], LANGS, N_ITEMS)
    calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    before = _state(bloom64)
    configs = [parse_config(name) for name in SWEEP_CONFIGS]
    share = {"en": 0.6, "hi_IN": 0.3, "zh_Hans": 0.1}
    items = run_sweep(bloom64, saved_bloom64, tiny_tokenizer, configs, texts, calibration, share, SETTINGS)
    return {"items": items, "texts": texts, "calibration": calibration, "before": before,
            "after": _state(bloom64)}


def _nll_per_language(items, config: str) -> dict[str, float]:
    return items[items["config"] == config].groupby("language")["nll"].sum().to_dict()


def test_sweep_rows(sweep) -> None:
    items = sweep["items"]
    assert list(items.columns) == ["config", "language", "item_id", "nll", "n_tokens", "n_bytes"]
    assert len(items) == (1 + len(SWEEP_CONFIGS)) * len(LANGS) * N_ITEMS
    assert not items.duplicated(["config", "language", "item_id"]).any()
    assert set(items["config"]) == {"fp", *SWEEP_CONFIGS}
    expected_ids = {(lang, i) for lang, per in sweep["texts"].items() for i in per}
    for config, group in items.groupby("config"):
        assert set(zip(group["language"], group["item_id"], strict=True)) == expected_ids, config
    assert np.isfinite(items["nll"]).all() and (items["nll"] > 0).all()
    # token and byte counts do not depend on the config
    counts = items.pivot_table(index=["language", "item_id"], columns="config", values="n_tokens")
    assert (counts.nunique(axis=1) == 1).all()


def test_sweep_restores_the_model(sweep, pristine) -> None:
    before, after = sweep["before"], sweep["after"]
    assert before.keys() == after.keys() == pristine.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
        assert torch.equal(pristine[key], after[key]), key


def test_sweep_fp_rows_are_the_model_scores(sweep, bloom64, tiny_tokenizer) -> None:
    items = sweep["items"]
    fp = items[items["config"] == "fp"]
    for lang, per in sweep["texts"].items():
        rows = fp[fp["language"] == lang].set_index("item_id").loc[list(per)]
        scores = score_items(bloom64, tiny_tokenizer, list(per.values()), batch_tokens=1)
        np.testing.assert_allclose(rows["nll"].to_numpy(), scores.nll, rtol=1e-5)


def _item_change(items, config: str) -> pd.Series:
    """Per item, ``|nll_q / nll_fp - 1|`` (indexed by language and item id)."""
    table = items.pivot_table(index=["language", "item_id"], columns="config", values="nll")
    return (table[config] / table["fp"] - 1).abs()


def test_sweep_degradation_orders_with_bits(sweep) -> None:
    items = sweep["items"]
    fp = _nll_per_language(items, "fp")
    w8 = _nll_per_language(items, "rtn-w8-ch-sym")
    for lang in LANGS:
        assert abs(w8[lang] / fp[lang] - 1) < 1e-2, lang
    # Item by item (language sums of a random model can cancel): 2-bit per-tensor RTN moves
    # scores far more than 8-bit per-channel RTN, which moves them a little but not zero.
    change8 = _item_change(items, "rtn-w8-ch-sym")
    change2 = _item_change(items, "rtn-w2-tensor-sym")
    assert 0 < change8.max() < 1e-2
    assert change2.mean() > 10 * change8.mean()
    assert (change2 > change8).mean() > 0.8


def test_sweep_bnb_scores_are_finite_and_quantized(sweep) -> None:
    items = sweep["items"]
    fp = _nll_per_language(items, "fp")
    for config in ("bnb-int8", "bnb-nf4"):
        nll = _nll_per_language(items, config)
        assert all(np.isfinite(v) for v in nll.values())
        # real quantization: close to full precision but not identical
        assert any(nll[lang] != fp[lang] for lang in LANGS), config
        assert all(abs(nll[lang] / fp[lang] - 1) < 0.5 for lang in LANGS), config


def test_sweep_fake_quant_rows_match_manual_application(sweep, bloom64, tiny_tokenizer) -> None:
    """Wanda uses the pooled calibration norms; the oracle uses each language's own moments."""
    items, texts, calibration = sweep["items"], sweep["texts"], sweep["calibration"]
    snap = WeightSnapshot(target_linears(bloom64, EXCLUDE))
    try:
        parse_config("prune-wanda-50").apply(snap, calibration)
        wanda = items[items["config"] == "prune-wanda-50"]
        for lang, per in texts.items():
            rows = wanda[wanda["language"] == lang].set_index("item_id").loc[list(per)]
            scores = score_items(bloom64, tiny_tokenizer, list(per.values()))
            np.testing.assert_allclose(rows["nll"].to_numpy(), scores.nll, rtol=1e-5)
        snap.restore()
        oracle = items[items["config"] == "oracle-w4-ch"]
        per_language = {}
        for lang, per in texts.items():
            parse_config("oracle-w4-ch").apply(snap, calibration.subset([lang]))
            rows = oracle[oracle["language"] == lang].set_index("item_id").loc[list(per)]
            scores = score_items(bloom64, tiny_tokenizer, list(per.values()))
            np.testing.assert_allclose(rows["nll"].to_numpy(), scores.nll, rtol=1e-5)
            per_language[lang] = _state(bloom64)
            snap.restore()
        # the oracle really is a different model per language
        first, second = per_language["en"], per_language["zh_Hans"]
        assert any(not torch.equal(first[k], second[k]) for k in first)
    finally:
        snap.restore()


# --- resuming an interrupted sweep (issue 10) ----------------------------------------------------

SHARE = {"en": 0.6, "hi_IN": 0.3, "zh_Hans": 0.1}
INTERRUPT_AT = 3  # SWEEP_CONFIGS[3] (the oracle) is interrupted, after fp and three configs
REAL_SCORE = sweep_runner._score


def _scoring_spy(monkeypatch, interrupt: str | None = None) -> list[str]:
    """Record the configs scored; raise KeyboardInterrupt (a killed run) at ``interrupt``."""
    scored, real = [], REAL_SCORE

    def spy(model, tokenizer, texts, languages, settings, config):
        if config == interrupt:
            raise KeyboardInterrupt
        scored.append(config)
        return real(model, tokenizer, texts, languages, settings, config)

    monkeypatch.setattr(sweep_runner, "_score", spy)
    return scored


def test_interrupted_sweep_resumes_to_the_same_table(sweep, bloom64, saved_bloom64, tiny_tokenizer,
                                                    pristine, tmp_path, monkeypatch) -> None:
    texts, calibration = sweep["texts"], sweep["calibration"]
    configs = [parse_config(name) for name in SWEEP_CONFIGS]
    partial = tmp_path / "partial"
    args = (bloom64, saved_bloom64, tiny_tokenizer, configs, texts, calibration, SHARE, SETTINGS)
    _scoring_spy(monkeypatch, interrupt=SWEEP_CONFIGS[INTERRUPT_AT])
    with pytest.raises(KeyboardInterrupt):
        run_sweep(*args, partial=partial)
    # what was finished is on disk, one file per config; the model is restored
    done = sorted(p.name.split(".")[0] for p in partial.glob("*.json"))
    assert done == sorted(["fp", *SWEEP_CONFIGS[:INTERRUPT_AT]])
    assert not list(partial.glob(".*"))  # no temporary leftovers
    assert all(torch.equal(pristine[k], v) for k, v in _state(bloom64).items())

    scored = _scoring_spy(monkeypatch)
    items = run_sweep(*args, partial=partial)
    assert set(scored) == set(SWEEP_CONFIGS[INTERRUPT_AT:])  # only what was missing
    pd.testing.assert_frame_equal(items, sweep["items"], check_exact=True)
    # and the stage's output file is byte-identical
    write_csv(tmp_path / "resumed.csv", items)
    write_csv(tmp_path / "uninterrupted.csv", sweep["items"])
    assert (tmp_path / "resumed.csv").read_bytes() == (tmp_path / "uninterrupted.csv").read_bytes()

    scored.clear()  # a third run reads everything back
    assert run_sweep(*args, partial=partial).equals(sweep["items"])
    assert scored == []
    clear_partial(partial)
    assert not partial.exists()


def test_stale_partial_results_are_never_reused(sweep, bloom64, saved_bloom64, tiny_tokenizer,
                                                tmp_path, monkeypatch) -> None:
    """A partial of other params (here other resource shares) is rescored and replaced."""
    texts, calibration = sweep["texts"], sweep["calibration"]
    configs = [parse_config("rtn-w8-ch-sym")]
    partial = tmp_path / "partial"
    run_sweep(bloom64, saved_bloom64, tiny_tokenizer, configs, texts, calibration,
              {"en": 0.5, "hi_IN": 0.25, "zh_Hans": 0.25}, SETTINGS, partial=partial)
    before = sorted(p.name for p in partial.glob("*.json"))
    scored = _scoring_spy(monkeypatch)
    run_sweep(bloom64, saved_bloom64, tiny_tokenizer, configs, texts, calibration, SHARE, SETTINGS,
              partial=partial)
    assert scored == ["fp", "rtn-w8-ch-sym"]
    after = sorted(p.name for p in partial.glob("*.json"))
    assert len(after) == 2 and not set(after) & set(before)


def test_sweep_fingerprint_covers_what_determines_the_rows(sweep, saved_bloom64, tmp_path) -> None:
    texts, calibration = sweep["texts"], sweep["calibration"]

    def key(model=saved_bloom64, dtype="float32", device="cpu", texts=texts, calibration=calibration,
            share=SHARE, settings=SETTINGS) -> str:
        return sweep_fingerprint(model, dtype, device, texts, calibration, share, settings)

    base = key()
    assert key() == base  # deterministic
    other_model = tmp_path / "model"
    shutil.copytree(saved_bloom64, other_model)
    assert key(model=other_model) == base  # the same files elsewhere
    weights = other_model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    first_lang = sorted(texts)[0]
    first_id = sorted(texts[first_lang])[0]
    other_texts = {lang: dict(items) for lang, items in texts.items()}
    other_texts[first_lang][first_id] += "!"
    moments = {name: m.clone() for name, m in calibration.moments.items()}
    name = sorted(moments)[0]
    moments[name][0, 0] += 1e-9
    variants = [
        key(model=other_model), key(dtype="bfloat16"), key(device="cuda"), key(texts=other_texts),
        key(calibration=Calibration(calibration.languages, moments, calibration.tokens)),
        key(share={**SHARE, "en": 0.61}),
        key(settings=dataclasses.replace(SETTINGS, max_tokens=512)),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    # and each config gets its own key
    store = PartialResults(tmp_path / "partial", base)
    assert store.key("rtn-w8-ch-sym") != store.key("rtn-w8-ch-asym")


# --------------------------------------------------------------------- the stage's work, in the library


def test_seeded_subset_takes_the_same_items_in_every_language() -> None:
    from qfair.quant.sweep_runner import seeded_subset

    texts = {lang: {f"i{n:02d}": f"{lang} {n}" for n in range(30)} for lang in LANGS}
    subset = seeded_subset(texts, 7, seed=5)
    ids = [sorted(items) for items in subset.values()]
    assert len(ids[0]) == 7 and all(i == ids[0] for i in ids)
    assert subset == seeded_subset(texts, 7, seed=5)  # a function of the seed
    assert seeded_subset(texts, "all", seed=5) is texts
    assert len(next(iter(seeded_subset(texts, 100, seed=5).values()))) == 30  # at most every item


def test_check_sweepable_refuses_masked_lms_and_returns_shares() -> None:
    from qfair.analysis.resource import ResourceLevels
    from qfair.quant.sweep_runner import check_sweepable

    levels = ResourceLevels(source="test", languages=["en", "yo"], share={"en": 0.9, "yo": 0.1},
                            level={"en": np.log(0.9), "yo": np.log(0.1)})
    configs = [parse_config("laaciq-resource-w4-ch")]
    assert check_sweepable("causal_lm", "bloom", configs, levels) == {"en": 0.9, "yo": 0.1}
    with pytest.raises(ValueError, match="masked LM"):
        check_sweepable("masked_lm", "mbert", configs, levels)
    partial = ResourceLevels(source="test", languages=["en", "yo"], share={"en": 0.9},
                             level={"en": np.log(0.9)})
    with pytest.raises(ValueError, match="laaciq-resource"):
        check_sweepable("causal_lm", "bloom", configs, partial)
    assert check_sweepable("causal_lm", "bloom", [parse_config("rtn-w4-ch-sym")], partial) == {"en": 0.9}


def test_layer_input_widths_from_the_config_alone(tmp_path) -> None:
    from qfair.quant.sweep_runner import layer_input_widths

    model = build_bloom(vocab_size=50, hidden_size=64, n_layer=1, n_head=2, dropout=0.0,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0, seed=0)
    model.config.save_pretrained(str(tmp_path))  # no weights: only config.json
    assert layer_input_widths(tmp_path, EXCLUDE) == {64, 256}


# --- GPTQ on the model (the algorithm itself: tests/test_gptq.py) ------------------------------


def test_gptq_beats_rtn_on_each_layers_objective(bloom64, snapshot, tiny_tokenizer, tiny_corpus) -> None:
    from qfair.quant.gptq import layer_error
    from qfair.quant.methods.gptq import calibration_weights, weighted_hessian
    from qfair.quant.rtn import quantize_rtn

    calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    config = parse_config("gptq-w3-ch-uniform")
    config.apply(snapshot, calibration)
    weights = calibration_weights("uniform", calibration, sweep_runner.MethodSettings())
    torch.testing.assert_close(weights, calibration.tokens)  # pooled items: weighted by token count
    for name, lin in snapshot.linears.items():
        original = snapshot.weights[name]
        hessian = weighted_hessian(calibration.covariances[name], weights)
        rtn = quantize_rtn(original, 3, "channel")
        assert layer_error(original, lin.weight.detach(), hessian) < layer_error(original, rtn, hessian), name


def test_calibration_sets_weigh_the_languages(bloom64, tiny_tokenizer, tiny_corpus) -> None:
    from qfair.quant.methods import MethodSettings
    from qfair.quant.methods.gptq import calibration_weights

    calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    settings = MethodSettings(reference_language="hi_IN", resource_share={"en": 0.6, "hi_IN": 0.3,
                                                                           "zh_Hans": 0.1})
    assert calibration_weights("reference", calibration, settings).tolist() == [0.0, 1.0, 0.0]
    assert calibration_weights("mix", calibration, settings).tolist() == [0.6, 0.3, 0.1]
    with pytest.raises(ValueError, match="'xx' has no calibration statistics"):
        calibration_weights("reference", calibration, MethodSettings(reference_language="xx"))
    with pytest.raises(ValueError, match="needs per-language input covariances"):
        parse_config("gptq-w4-ch-uniform").apply(WeightSnapshot(target_linears(bloom64, EXCLUDE)),
                                                 calibrate(bloom64, tiny_tokenizer,
                                                           _parallel(tiny_corpus.splits["dev"], LANGS, 2),
                                                           SETTINGS))


def test_lagptq_minimax_lowers_the_worst_languages_error(bloom64, snapshot, tiny_tokenizer,
                                                         tiny_corpus) -> None:
    from qfair.quant.methods.gptq import relative_errors

    calibration = _calibration(bloom64, tiny_tokenizer, tiny_corpus)
    worst = {}
    for weighting in ("uniform", "minimax"):
        parse_config(f"lagptq-w3-ch-{weighting}").apply(snapshot, calibration)
        worst[weighting] = {name: float(relative_errors(snapshot.weights[name], lin.weight.detach(),
                                                        calibration.covariances[name]).max())
                            for name, lin in snapshot.linears.items()}
        snapshot.restore()
    assert all(worst["minimax"][n] <= worst["uniform"][n] for n in worst["uniform"])
    assert any(worst["minimax"][n] < worst["uniform"][n] for n in worst["uniform"])


def test_sweep_fingerprint_hashes_every_method_module() -> None:
    """A changed method must not reuse a partial result: its module is part of the fingerprint."""
    import qfair.quant.methods

    methods = Path(qfair.quant.methods.__file__).parent
    hashed = set(sweep_runner._code_files())
    assert {methods / "base.py", methods / "gptq.py", methods / "rounding.py"} <= hashed
    assert all(module in hashed for module in methods.glob("*.py"))

