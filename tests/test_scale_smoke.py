"""scripts/scale_smoke.py: its params are valid and change sizes only, never a method."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from qfair.params import parse_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("scale_smoke", REPO / "scripts" / "scale_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scale() -> dict:
    return yaml.safe_load((REPO / "profiles" / "scale.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_smoke_params_validate_and_keep_every_method(smoke, scale, device) -> None:
    params = parse_params(smoke.smoke_params(scale, device))
    assert params.compress.configs == scale["compress"]["configs"]
    assert params.interpretability.config == scale["interpretability"]["config"]
    assert params.interpretability.activation_config == scale["interpretability"]["activation_config"]
    assert params.train.device == params.eval.device == device
    assert params.model.n_layer == 2 and params.compress.items_per_language < 100


def test_merge_overrides_nested_keys_only(smoke) -> None:
    base = {"eval": {"cost": {"enabled": True, "repeats": 5}, "seed": 1}, "profile": "scale"}
    merged = smoke.merge(base, {"eval": {"cost": {"repeats": 1}}})
    assert merged == {"eval": {"cost": {"enabled": True, "repeats": 1}, "seed": 1}, "profile": "scale"}
    assert base["eval"]["cost"]["repeats"] == 5  # the input is not modified
