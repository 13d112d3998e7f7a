"""Model construction and loading: config-built tiny models of five architectures round-trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
)

from qfair.errors import QfairError
from qfair.models.load import DamagedModelError, build_bloom, count_parameters, load_model

VOCAB = 96
TOKENS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)

ARCHITECTURES = {
    "bloom": lambda: BloomForCausalLM(BloomConfig(
        vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2, **TOKENS)),
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64, **TOKENS)),
    "opt": lambda: OPTForCausalLM(OPTConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        ffn_dim=64, max_position_embeddings=64, word_embed_proj_dim=32, **TOKENS)),
    "gpt_neox": lambda: GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, **TOKENS)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64, **TOKENS)),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, torch.Tensor]]:
    """Each architecture saved once with save_pretrained; its float32 logits on a fixed input."""
    inputs = torch.randint(3, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    out = {}
    for name, factory in ARCHITECTURES.items():
        torch.manual_seed(1)
        model = factory().eval()
        with torch.no_grad():
            # spread the weights so the logits are far from uniform and differ between models
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
            logits = model(input_ids=inputs).logits
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(str(folder))
        out[name] = (folder, logits)
    out["inputs"] = inputs
    return out


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_saved_as_safetensors(saved, name: str) -> None:
    folder, _ = saved[name]
    files = {path.name for path in folder.iterdir()}
    assert "config.json" in files
    assert any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_float32_round_trip_gives_same_logits(saved, name: str) -> None:
    folder, expected = saved[name]
    model = load_model(folder, dtype="float32")
    assert not model.training
    assert model.config.model_type == name
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        logits = model(input_ids=saved["inputs"]).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_bfloat16_load(saved, name: str) -> None:
    folder, expected = saved[name]
    model = load_model(str(folder), dtype="bfloat16")
    assert not model.training
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    with torch.no_grad():
        logits = model(input_ids=saved["inputs"]).logits.float()
    scale = expected.abs().max().item()
    assert (logits - expected).abs().max().item() < 0.05 * scale + 0.02
    assert not torch.equal(logits, expected)  # really computed in bfloat16


def test_models_differ_between_architectures(saved) -> None:
    logits = [saved[name][1] for name in sorted(ARCHITECTURES)]
    for i in range(len(logits)):
        for j in range(i + 1, len(logits)):
            assert not torch.allclose(logits[i], logits[j])


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path)


def test_pickled_weights_are_refused(saved, tmp_path: Path) -> None:
    """Only safetensors weights are loaded; a pytorch_model.bin alone is not used."""
    folder, _ = saved["gpt2"]
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    model = load_model(folder)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_model(tmp_path)


@pytest.mark.parametrize("dtype", ["float64", "fp16", "int8", "BFloat16"])
def test_unknown_dtype(saved, dtype: str) -> None:
    folder, _ = saved["bloom"]
    with pytest.raises(ValueError, match="dtype") as info:
        load_model(folder, dtype=dtype)
    assert repr(dtype) in str(info.value)


def test_build_bloom_is_seeded_and_tied() -> None:
    kwargs = dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2, dropout=0.0,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    a, b, c = build_bloom(**kwargs, seed=3), build_bloom(**kwargs, seed=3), build_bloom(**kwargs,
                                                                                      seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.lm_head.weight.data_ptr() == a.transformer.word_embeddings.weight.data_ptr()
    # hand count, H=32, V=96: embeddings V*H + its norm 2H; per layer two norms 4H,
    # qkv 3H*H+3H, dense H*H+H, mlp 4H*H+4H and 4H*H+H; final norm 2H; the head is tied.
    h = 32
    layer = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h)
    assert count_parameters(a) == VOCAB * h + 2 * h + 2 * layer + 2 * h == 28608
    assert a.config.pad_token_id == 0 and a.config.bos_token_id == 1


def test_build_bloom_save_load_round_trip(tmp_path: Path) -> None:
    model = build_bloom(VOCAB, 32, 2, 2, 0.0, 1, 2, 0, seed=5).eval()
    model.save_pretrained(str(tmp_path))
    loaded = load_model(tmp_path)
    inputs = torch.tensor([[1, 5, 9, 22, 40, 2]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=inputs).logits, model(input_ids=inputs).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.word_embeddings.weight.data_ptr()


@pytest.mark.parametrize("cut", [4, 0.5])
def test_truncated_weights_name_the_file_and_the_fix(saved, tmp_path: Path, cut: float) -> None:
    """A truncated final/model.safetensors (header cut, or data cut) is a QfairError naming the
    file and `dvc repro -f train_model`, not a SafetensorError naming nothing."""
    folder = tmp_path / "final"
    shutil.copytree(saved["bloom"][0], folder)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(int(cut if cut >= 1 else size * cut))
    with pytest.raises(DamagedModelError) as info:
        load_model(folder)
    assert isinstance(info.value, QfairError)
    assert str(weights) in str(info.value) and "dvc repro -f train_model" in str(info.value)


def test_one_device_check_behind_check_device_and_preflight() -> None:
    from qfair.models.load import check_device, device_problem

    assert device_problem("cpu") is None and device_problem("cpu", cuda_available=False) is None
    assert "CUDA is not available" in device_problem("cuda", cuda_available=False)
    assert device_problem("cuda", cuda_available=True) is None
    check_device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda:0': CUDA is not available"):
            check_device("cuda:0")
