"""Compression config names: parsing, range checks, group sizes, and their validation in params."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from qfair.params import ParamsError, parse_params
from qfair.quant.configs import check_group_sizes, parse_config
from qfair.quant.methods import (
    Aciq,
    BitsAndBytes,
    CompressionMethod,
    LanguageAwareAciq,
    LanguageOracle,
    MagnitudePruning,
    MseClip,
    RoundToNearest,
    Wanda,
)

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


def _params_error(data: dict) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return str(info.value)


def _rule(data: dict, rule_id: str) -> dict:
    return next(rule for rule in data["hypotheses"] if rule["id"] == rule_id)


# --- parsing -----------------------------------------------------------------------------------


def test_every_config_of_params_parses(raw) -> None:
    names = raw["compress"]["configs"]
    assert len(names) > 40
    parsed = [parse_config(name) for name in names]
    assert [c.name for c in parsed] == names
    families = {c.family for c in parsed}
    assert families == {"rtn", "aciq", "mse", "laaciq", "oracle", "bnb", "prune", "gptq", "lagptq", "awq",
                        "hqq", "actquant", "smoothquant", "hadamard"}
    for config in parsed:
        if config.family != "prune":
            assert config.bits is not None and 2 <= config.bits <= 8, config.name
        assert isinstance(config, CompressionMethod)


@pytest.mark.parametrize(("name", "expected"), [
    ("rtn-w4-g128-asym", RoundToNearest("rtn-w4-g128-asym", 4, "group", 128, False)),
    ("rtn-w8-tensor-sym", RoundToNearest("rtn-w8-tensor-sym", 8, "tensor", None, True)),
    ("rtn-w2-ch-sym", RoundToNearest("rtn-w2-ch-sym", 2, "channel", None, True)),
    ("aciq-mix-w3-ch", Aciq("aciq-mix-w3-ch", "mix", 3, "channel")),
    ("mse-w4-g64", MseClip("mse-w4-g64", 4, "group", 64)),
    ("laaciq-minimax-w3-ch", LanguageAwareAciq("laaciq-minimax-w3-ch", "minimax", 3)),
    ("oracle-w4-ch", LanguageOracle("oracle-w4-ch", 4)),
    ("bnb-nf4-dq", BitsAndBytes("bnb-nf4-dq", "nf4", True)),
    ("bnb-fp4", BitsAndBytes("bnb-fp4", "fp4", False)),
    ("bnb-int8", BitsAndBytes("bnb-int8", "int8")),
    ("prune-wanda-50", Wanda("prune-wanda-50", 0.5)),
    ("prune-magnitude-tensor-0", MagnitudePruning("prune-magnitude-tensor-0", "tensor", 0.0)),
    ("prune-magnitude-global-30", MagnitudePruning("prune-magnitude-global-30", "global", 0.3)),
])
def test_specific_parses(name: str, expected: CompressionMethod) -> None:
    assert parse_config(name) == expected


@pytest.mark.parametrize(("name", "family", "bits", "granularity"), [
    ("rtn-w4-g128-asym", "rtn", 4, "group128"), ("rtn-w3-tensor-sym", "rtn", 3, "tensor"),
    ("aciq-laplace-w4-ch", "aciq", 4, "channel"), ("mse-w3-ch", "mse", 3, "channel"),
    ("laaciq-uniform-w4-ch", "laaciq", 4, "channel"), ("oracle-w3-ch", "oracle", 3, "channel"),
    ("bnb-int8", "bnb", 8, ""), ("bnb-nf4", "bnb", 4, ""),
    ("prune-magnitude-global-50", "prune", None, "global"), ("prune-wanda-50", "prune", None, ""),
])
def test_report_fields(name: str, family: str, bits: int | None, granularity: str) -> None:
    """What the sweep's tables show in the method, bits and granularity columns."""
    config = parse_config(name)
    assert (config.family, config.bits, config.granularity_label) == (family, bits, granularity)


def test_only_laaciq_resource_needs_every_share() -> None:
    needs = [n for n in ("laaciq-resource-w4-ch", "laaciq-uniform-w4-ch", "oracle-w4-ch", "rtn-w4-ch-sym")
             if parse_config(n).needs_resource_shares]
    assert needs == ["laaciq-resource-w4-ch"]


def test_bitsandbytes_cannot_rewrite_weights_in_place() -> None:
    with pytest.raises(ValueError, match="real quantization"):
        parse_config("bnb-nf4").apply(None)


@pytest.mark.parametrize("name", [
    "rtn-w4-ch",              # missing sym/asym
    "rtn-w4-channel-sym",     # "ch", not "channel"
    "gptq-w4-ch",             # unknown family
    "laaciq-uniform-w4-tensor",  # LA-ACIQ is per channel only
    "aciq-laplace-w4-g128",   # ACIQ has no groups
    "bnb-int4",
    "prune-random-50",
    "RTN-w4-ch-sym",
    " rtn-w4-ch-sym",
    "rtn-w4-ch-sym-extra",
    "",
])
def test_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="unknown compression config"):
        parse_config(name)


@pytest.mark.parametrize("name", ["rtn-w1-ch-sym", "rtn-w9-tensor-sym", "aciq-laplace-w1-ch",
                                  "mse-w9-ch", "laaciq-uniform-w1-ch", "oracle-w9-ch"])
def test_bits_out_of_range(name: str) -> None:
    with pytest.raises(ValueError, match="bits") as info:
        parse_config(name)
    assert name in str(info.value)
    assert "unknown compression config" not in str(info.value)


def test_sparsity_out_of_range() -> None:
    with pytest.raises(ValueError, match="sparsity") as info:
        parse_config("prune-magnitude-tensor-100")
    assert "prune-magnitude-tensor-100" in str(info.value)
    assert parse_config("prune-magnitude-global-99").sparsity == pytest.approx(0.99)


def test_magnitude_pruning_must_name_its_scope() -> None:
    with pytest.raises(ValueError, match="scope") as info:
        parse_config("prune-magnitude-50")
    assert "prune-magnitude-tensor-50" in str(info.value) and "prune-magnitude-global-50" in str(info.value)


def test_int8_double_quant_is_an_error() -> None:
    with pytest.raises(ValueError, match="double quant") as info:
        parse_config("bnb-int8-dq")
    assert "bnb-int8-dq" in str(info.value)


def test_zero_group_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="group size"):
        parse_config("rtn-w4-g0-sym")


# --- group sizes -------------------------------------------------------------------------------


def test_check_group_sizes_passes_when_groups_divide() -> None:
    configs = [parse_config(n) for n in ("rtn-w4-g128-sym", "mse-w4-g64", "rtn-w4-ch-sym", "bnb-nf4")]
    check_group_sizes(configs, {256, 1024})


def test_check_group_sizes_names_the_config_and_width() -> None:
    configs = [parse_config(n) for n in ("rtn-w4-ch-sym", "rtn-w4-g128-sym", "mse-w3-g96")]
    with pytest.raises(ValueError) as info:
        check_group_sizes(configs, {256, 1024, 96})
    message = str(info.value)
    assert "rtn-w4-g128-sym" in message and "96" in message
    # the first offending config is reported; the one that fits is not blamed
    assert "rtn-w4-ch-sym" not in message
    with pytest.raises(ValueError, match="mse-w3-g96"):
        check_group_sizes([parse_config("mse-w3-g96")], {96, 128})


# --- params validation -------------------------------------------------------------------------


def test_repo_params_parse(raw) -> None:
    params = parse_params(copy.deepcopy(raw))
    assert params.compress.configs == raw["compress"]["configs"]


def test_params_reject_bad_config_name(raw) -> None:
    data = copy.deepcopy(raw)
    data["compress"]["configs"] = [*data["compress"]["configs"], "rtn-w9-ch-sym"]
    message = _params_error(data)
    assert "compress.configs" in message
    assert "rtn-w9-ch-sym" in message and "bits" in message


def test_params_reject_duplicate_config(raw) -> None:
    data = copy.deepcopy(raw)
    data["compress"]["configs"] = [*data["compress"]["configs"], "bnb-nf4"]
    message = _params_error(data)
    assert "compress.configs" in message and "unique" in message


def test_params_reject_unknown_metric(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-008")["x"] = "foo"
    message = _params_error(data)
    assert "EXP-008" in message and "'foo'" in message


def test_params_reject_unknown_covariate(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-033")["covariates"] = ["script_latin", "bogus_metric"]
    message = _params_error(data)
    assert "EXP-033" in message and "bogus_metric" in message


def test_params_reject_metric_of_the_wrong_unit(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-030")["x"] = "resource_level"  # a language metric in a layer rule
    message = _params_error(data)
    assert "EXP-030" in message and "resource_level" in message


def test_params_reject_rel_degradation_of_a_config_not_swept(raw) -> None:
    data = copy.deepcopy(raw)
    data["compress"]["configs"] = [c for c in data["compress"]["configs"] if c != "bnb-nf4"]
    message = _params_error(data)
    assert "REAL-001" in message and "rel_degradation:bnb-nf4" in message and "compress.configs" in message


def test_params_reject_rel_degradation_of_an_unparseable_config(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-001")["y"] = "rel_degradation:rtn-w4-ch-symm"
    message = _params_error(data)
    assert "EXP-001" in message and "rtn-w4-ch-symm" in message


def test_params_reject_laaciq_rule_with_unswept_treatment(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-031")["treatment"] = "laaciq-uniform-w2-ch"
    message = _params_error(data)
    assert "treatment" in message and "laaciq-uniform-w2-ch" in message


def test_params_reject_duplicate_hypothesis_ids(raw) -> None:
    data = copy.deepcopy(raw)
    _rule(data, "EXP-008")["id"] = "EXP-007"
    message = _params_error(data)
    assert "ids must be unique" in message


def test_every_registered_method_says_its_report_fields() -> None:
    """The base class cannot declare bits and group_size (dataclass field order), so each method
    must: as a field or a class constant."""
    import dataclasses

    from qfair.quant.methods.base import REGISTRY

    for method in REGISTRY:
        fields = {f.name for f in dataclasses.fields(method)}
        for attribute in ("bits", "group_size"):
            assert attribute in fields or hasattr(method, attribute), (method.__name__, attribute)
        assert isinstance(method.family, str) and isinstance(method.pattern, str), method.__name__
