"""Hub checkpoints: the registry, the model section of params, preflight checks and materialization.

The hub is unreachable here, so loading is tested against a fake Hugging Face cache
(``models--<org>--<name>/snapshots/<sha>``) holding a tiny config-built BLOOM, read with
HF_HUB_OFFLINE=1 by hub id and revision, exactly as a real run reads the real cache.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import yaml
from safetensors.torch import load_file

from qfair.models.hub import HubError, materialize_model, preflight
from qfair.params import ParamsError, parse_params
from qfair.registry import SHA, ModelEntry, models

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "profiles" / "paper.yaml"
FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def paper() -> dict:
    return yaml.safe_load(PAPER.read_text(encoding="utf-8"))


def _model(paper: dict, **model) -> dict:
    data = copy.deepcopy(paper)
    data["model"] = {"source": "hub", **model}
    return data


def _error(data: dict) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return str(info.value)


# --- the registry ---------------------------------------------------------------------------------


def test_registry_lists_the_issue_models() -> None:
    registry = models()
    expected = {"bloom-560m", "bloom-1b1", "bloom-1b7", "xglm-564m", "mgpt", "qwen2.5-0.5b", "llama-3.2-1b",
                "pythia-160m", "pythia-410m", "opt-125m", "gpt2", "mbert", "xlm-r-base"}
    assert expected <= set(registry)
    assert {key for key, entry in registry.items() if entry.kind == "masked_lm"} == {"mbert", "xlm-r-base"}
    assert {key for key, entry in registry.items() if entry.gated} == {"llama-3.2-1b"}
    assert not registry["opt-125m"].multilingual and not registry["gpt2"].multilingual
    assert all(not entry.trust_remote_code for entry in registry.values())


def test_verified_revisions_are_commit_shas() -> None:
    for key, entry in models().items():
        assert SHA.match(entry.revision) or not entry.revision_verified, key
        assert entry.revision_note, key


def test_pythia_lists_training_step_revisions() -> None:
    for key in ("pythia-160m", "pythia-410m"):
        steps = [int(label.removeprefix("step")) for label in models()[key].checkpoints]
        assert steps == sorted(steps) and steps[-1] == 143000 and len(steps) >= 4


def test_verified_flag_needs_a_sha() -> None:
    with pytest.raises(ValueError, match="not a 40-hex"):
        ModelEntry(hub_id="org/name", revision="main", revision_verified=True, revision_note="", family="f",
                   parameters=1, kind="causal_lm", gated=False, multilingual=False, trust_remote_code=False)


# --- the model section of params ------------------------------------------------------------------


def test_hub_model_defaults_to_the_pinned_revision(paper: dict) -> None:
    params = parse_params(_model(paper, name="xglm-564m"))
    assert params.model.resolved_revision == models()["xglm-564m"].revision


def test_unknown_model_name_is_named(paper: dict) -> None:
    message = _error(_model(paper, name="bloom-7b9"))
    assert "model.name" in message and "bloom-7b9" in message


def test_unpinned_revision_needs_an_override(paper: dict) -> None:
    message = _error(_model(paper, name="bloom-560m", revision="main"))
    assert "model" in message and "'main'" in message and "revision_override" in message
    params = parse_params(_model(paper, name="bloom-560m", revision="main", revision_override=True))
    assert params.model.resolved_revision == "main"


def test_listed_checkpoint_revision_is_allowed(paper: dict) -> None:
    params = parse_params(_model(paper, name="pythia-160m", revision="step1000"))
    assert params.model.resolved_revision == "step1000"


@pytest.mark.parametrize(("key", "value"),
                         [("trust_remote_code", True), ("dtype", "int8"), ("hub_id", "x/y")])
def test_bad_hub_model_keys_are_named(paper: dict, key: str, value: object) -> None:
    message = _error(_model(paper, name="bloom-560m", **{key: value}))
    assert f"model.{key}" in message, message


def test_trained_model_is_rejected_on_a_corpus_without_training_split(paper: dict) -> None:
    data = copy.deepcopy(paper)
    data["model"] = {"architecture": "bloom", "hidden_size": 64, "n_layer": 2, "n_head": 2, "dropout": 0.0}
    assert "model.source" in _error(data)


# --- preflight: checks that need the machine ------------------------------------------------------


def test_gated_model_without_token_stops_before_download(paper: dict) -> None:
    params = parse_params(_model(paper, name="llama-3.2-1b"))
    with pytest.raises(HubError) as info:
        preflight(params, device=False, flores=False, env={})
    assert "model.name" in str(info.value) and "HF_TOKEN" in str(info.value)
    preflight(params, device=False, flores=False, env={"HUGGING_FACE_HUB_TOKEN": "hf_x"})
    preflight(params, device=False, flores=False, env={"HF_HUB_OFFLINE": "1"})  # read from the cache
    preflight(parse_params(_model(paper, name="bloom-560m")), device=False, flores=False, env={})


def test_cuda_setting_without_cuda_is_named(paper: dict) -> None:
    params = parse_params(paper)
    assert params.eval.device == "cuda"
    with pytest.raises(HubError, match=r"eval\.device"):
        preflight(params, model=False, flores=False, cuda_available=False)
    preflight(params, model=False, flores=False, cuda_available=True)


# --- materialization from a fake hub cache ---------------------------------------------------------


def _fake_cache(root: Path, hub_id: str, sha: str, model, tokenizer) -> Path:
    repo = root / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / sha
    model.save_pretrained(str(snapshot))
    tokenizer.save_pretrained(str(snapshot))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    return root


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _entry(hub_id: str) -> ModelEntry:
    return ModelEntry(hub_id=hub_id, revision=FAKE_SHA, revision_verified=True, revision_note="test fixture",
                      family="bloom", parameters=1, kind="causal_lm", gated=False, multilingual=True,
                      trust_remote_code=False)


def test_materialize_saves_the_checkpoint_unchanged(tmp_path: Path, tiny_model, tiny_tokenizer,
                                                    offline_hub: None) -> None:
    cache = _fake_cache(tmp_path / "hub", "qfair-test/tiny-bloom", FAKE_SHA, tiny_model, tiny_tokenizer)
    out = tmp_path / "final"
    info = materialize_model(_entry("qfair-test/tiny-bloom"), out, FAKE_SHA, cache_dir=cache)
    assert info["revision"] == FAKE_SHA
    assert info["parameters"] == sum(p.numel() for p in tiny_model.parameters())
    saved = load_file(str(out / "model.safetensors"))
    for name, tensor in tiny_model.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], tensor), name
    assert (out / "tokenizer.json").is_file()
    assert json.loads((out / "config.json").read_text())["n_layer"] == tiny_model.config.n_layer


def test_missing_revision_or_unknown_id_is_named(tmp_path: Path, tiny_model, tiny_tokenizer,
                                                 offline_hub: None) -> None:
    cache = _fake_cache(tmp_path / "hub", "qfair-test/tiny-bloom", FAKE_SHA, tiny_model, tiny_tokenizer)
    other = "f" * 40
    with pytest.raises(HubError) as info:
        materialize_model(_entry("qfair-test/tiny-bloom"), tmp_path / "a", other, cache_dir=cache)
    assert "qfair-test/tiny-bloom" in str(info.value) and other in str(info.value)
    with pytest.raises(HubError) as info:
        materialize_model(_entry("qfair-test/no-such-model"), tmp_path / "b", FAKE_SHA, cache_dir=cache)
    assert "qfair-test/no-such-model" in str(info.value)
    assert not (tmp_path / "a" / "model.safetensors").exists()


def test_stages_materialize_a_registry_model(tmp_path: Path, paper: dict, tiny_model, tiny_tokenizer) -> None:
    """train_tokenizer + train_model with model.source: hub, reading the registry's real hub id, its
    pinned sha and its training-step branches (refs/stepN) from a fake cache: the outputs the later
    stages read appear under models/paper/ (final + one checkpoint folder per step)."""
    entry = models()["pythia-160m"]
    hub = tmp_path / "hub"
    _fake_cache(hub, entry.hub_id, entry.revision, tiny_model, tiny_tokenizer)
    repo = hub / f"models--{entry.hub_id.replace('/', '--')}"
    for index, label in enumerate(entry.checkpoints):
        sha = f"{index + 1:040x}"
        tiny_model.save_pretrained(str(repo / "snapshots" / sha))
        tiny_tokenizer.save_pretrained(str(repo / "snapshots" / sha))
        (repo / "refs" / label).write_text(sha)
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(_model(paper, name="pythia-160m", dtype="float32")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("HF_TOKEN", None)
    for stage in ("train_tokenizer", "train_model"):
        result = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py")], cwd=work, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "models/tokenizer/tokenizer.json").is_file()
    assert (work / "models/paper/final/model.safetensors").is_file()
    steps = sorted(path.name for path in (work / "models/paper/checkpoints").iterdir())
    assert steps == sorted(f"step_{int(label.removeprefix('step')):06d}" for label in entry.checkpoints)
    assert all((work / "models/paper/checkpoints" / step / "model.safetensors").is_file() for step in steps)
    summary = json.loads((work / "metrics/train.json").read_text())
    assert summary["hub_id"] == entry.hub_id and summary["revision"] == entry.revision
    assert summary["parameters"] == sum(p.numel() for p in tiny_model.parameters())
    assert (work / "metrics/train/train_loss.csv").read_text().startswith("step,loss")
