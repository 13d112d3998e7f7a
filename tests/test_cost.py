"""C-004: the cost pass per language (qfair.scoring.cost), its params, and that it changes no score."""

from __future__ import annotations

import copy
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from qfair.params import ParamsError, parse_params
from qfair.scoring import causal
from qfair.scoring.cost import COST_COLUMNS, ENERGY_COLUMNS, EnergyMeter, cost_metrics, measure_cost
from qfair.scoring.summary import score_splits

LANGS = ["fr_FR", "yo"]
PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def test_texts(tiny_corpus) -> dict[str, dict[str, str]]:
    return {lang: dict(sorted(tiny_corpus.splits["test"][lang].items())[:8]) for lang in LANGS}


@pytest.fixture(scope="module")
def cost(tiny_model, tiny_tokenizer, test_texts) -> pd.DataFrame:
    scorer = partial(causal.score_items, tiny_model, tiny_tokenizer, batch_tokens=512, max_tokens=1024)
    return measure_cost(scorer, test_texts, "cpu", repeats=2, grid_g_co2e_per_kwh=400.0)


def test_cost_table_on_cpu(cost, tiny_tokenizer, test_texts) -> None:
    assert list(cost.columns) == COST_COLUMNS
    assert list(cost["language"]) == LANGS
    for column in ("items", "bytes", "tokens", "seconds", "seconds_per_kb", "cpu_seconds_per_kb"):
        assert (cost[column] > 0).all(), column
    assert (cost["cpu_seconds"] >= 0).all()
    for lang, row in cost.set_index("language").iterrows():
        texts = list(test_texts[lang].values())
        assert row["items"] == len(texts)
        assert row["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
        encoded = tiny_tokenizer(texts, add_special_tokens=False)["input_ids"]
        assert row["tokens"] == sum(len(ids) for ids in encoded)  # scored tokens: BOS is not one
        assert row["seconds_per_kb"] == pytest.approx(row["seconds"] / (row["bytes"] / 1000))
    assert set(cost["device"]) == {"cpu"}


def test_energy_is_nan_on_cpu(cost) -> None:
    assert cost[ENERGY_COLUMNS].isna().all().all()
    assert set(cost["energy_source"]) == {"unavailable: no energy counter on cpu"}
    metrics = cost_metrics(cost, 400.0, 2)
    assert metrics["total_joules"] is None and metrics["total_g_co2e"] is None
    assert metrics["max_over_min_seconds_per_kb"] >= 1
    assert cost_metrics(pd.DataFrame(columns=COST_COLUMNS), 400.0, 1) == {"enabled": False}


class _FakeMeter:
    """A counter that rises 1500 mJ per reading: each language's window costs 1.5 J."""

    source = "nvml"

    def __init__(self) -> None:
        self.value = 0.0

    def millijoules(self) -> float:
        self.value += 1500.0
        return self.value


def test_energy_and_co2e_arithmetic(tiny_model, tiny_tokenizer, test_texts) -> None:
    scorer = partial(causal.score_items, tiny_model, tiny_tokenizer, batch_tokens=512, max_tokens=1024)
    table = measure_cost(scorer, test_texts, "cpu", 3, 500.0, meter=_FakeMeter()).set_index("language")
    np.testing.assert_allclose(table["joules"], 0.5)  # one window of 3 passes: per pass
    kb = table["bytes"] / 1000
    np.testing.assert_allclose(table["joules_per_kb"], 0.5 / kb)
    np.testing.assert_allclose(table["g_co2e_per_kb"], 0.5 / kb / 3.6e6 * 500.0)
    assert set(table["energy_source"]) == {"nvml"}


class _StuckMeter(_FakeMeter):
    """A counter that never advances (each window shorter than NVML's update period)."""

    def millijoules(self) -> float:
        return self.value


def test_energy_below_the_counters_resolution_is_unresolved_not_zero(tiny_model, tiny_tokenizer,
                                                                     test_texts) -> None:
    scorer = partial(causal.score_items, tiny_model, tiny_tokenizer, batch_tokens=512, max_tokens=1024)
    table = measure_cost(scorer, test_texts, "cpu", 1, 500.0, meter=_StuckMeter())
    assert table["joules"].isna().all() and table["joules_per_kb"].isna().all()
    metrics = cost_metrics(table, 500.0, 1)
    assert metrics["total_joules"] is None and metrics["max_over_min_joules_per_kb"] is None


def test_meter_without_cuda_reports_unavailable() -> None:
    meter = EnergyMeter("cpu")
    assert meter.millijoules() is None and meter.source.startswith("unavailable")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_meter_on_cuda_reads_energy_or_says_why() -> None:
    meter = EnergyMeter("cuda")
    if meter.source == "nvml":
        first = meter.millijoules()
        assert first is not None and math.isfinite(first) and meter.millijoules() >= first
    else:
        assert meter.source.startswith("unavailable") and meter.millijoules() is None


def test_cost_pass_changes_no_score(tiny_model, tiny_tokenizer, tiny_corpus) -> None:
    """The evaluation's per-language NLLs are bit-identical with and without the cost pass."""
    splits = {"test": {lang: tiny_corpus.splits["test"][lang] for lang in LANGS}}
    before = score_splits(tiny_model, tiny_tokenizer, splits, False, 512, 1024)
    scorer = partial(causal.score_items, tiny_model, tiny_tokenizer, batch_tokens=512, max_tokens=1024)
    measure_cost(scorer, splits["test"], "cpu", 1, 400.0)
    after = score_splits(tiny_model, tiny_tokenizer, splits, False, 512, 1024)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    per_language = before.groupby("language")["nll"].sum()
    assert per_language.equals(after.groupby("language")["nll"].sum())


# --- params -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


def _with_cost(raw: dict, **cost) -> dict:
    data = copy.deepcopy(raw)
    data["eval"]["cost"] = cost
    return data


def test_cost_params_in_the_repo(raw) -> None:
    params = parse_params(raw)
    assert params.eval.cost.enabled and params.eval.cost.repeats >= 1
    assert params.eval.cost.grid_g_co2e_per_kwh == 400.0


def test_cost_params_default_off(raw) -> None:
    data = copy.deepcopy(raw)
    del data["eval"]["cost"]
    assert not parse_params(data).eval.cost.enabled


@pytest.mark.parametrize(("cost", "key"), [
    ({"enabled": True, "repeats": 0, "grid_g_co2e_per_kwh": 400}, "eval.cost.repeats"),
    ({"enabled": True, "repeats": 1, "grid_g_co2e_per_kwh": -1.0}, "eval.cost.grid_g_co2e_per_kwh"),
    ({"enabled": "yes", "repeats": 1, "grid_g_co2e_per_kwh": 400}, "eval.cost.enabled"),
    ({"enabled": True, "repeats": 1.0, "grid_g_co2e_per_kwh": 400}, "eval.cost.repeats"),
    ({"enabled": True, "repeats": 1}, "eval.cost.grid_g_co2e_per_kwh"),
    ({"enabled": True, "repeats": 1, "grid_g_co2e_per_kwh": 400, "grid": 1}, "eval.cost.grid"),
])
def test_bad_cost_params_are_named(raw, cost: dict, key: str) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(_with_cost(raw, **cost))
    assert key in str(info.value)



# --- the evaluate stage: cost on or off, its outputs are byte-identical ---------------------------


def _run_evaluate(raw: dict, enabled: bool, model, tokenizer, corpus, monkeypatch) -> dict[str, bytes]:
    """Run stages/evaluate.py in the current directory (a temporary one) on the tiny model."""
    import importlib
    import shutil

    from qfair import paths

    data = copy.deepcopy(raw)
    data["eval"].update(splits=["test"], bootstrap_resamples=100,
                        cost={"enabled": enabled, "repeats": 1, "grid_g_co2e_per_kwh": 400.0})
    Path("params.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    shutil.copytree(corpus.folder, paths.CORPUS)
    final = paths.final_model(data["profile"])
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    stage = importlib.import_module("stages.evaluate")
    # the stage pins torch's global settings (threads, deterministic kernels, no oneDNN): not in tests
    monkeypatch.setattr(stage, "deterministic_cpu", lambda threads: None)
    stage.main()
    outputs = [paths.EVAL / "items.csv", paths.EVAL / "per_language.csv",
               paths.EVAL / "plots/test_bits_per_byte.csv", paths.EVAL_METRICS]
    found = {str(p): p.read_bytes() for p in outputs}
    found["cost"] = pd.read_csv(paths.COST)
    return found


def test_evaluate_outputs_do_not_depend_on_the_cost_pass(tmp_path, monkeypatch, raw, tiny_model,
                                                         tiny_tokenizer, tiny_corpus) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the stages package
    runs = {}
    for enabled in (False, True):
        root = tmp_path / f"cost_{enabled}"
        root.mkdir()
        monkeypatch.chdir(root)
        runs[enabled] = _run_evaluate(raw, enabled, tiny_model, tiny_tokenizer, tiny_corpus, monkeypatch)
    off, on = runs[False].pop("cost"), runs[True].pop("cost")
    assert runs[False] == runs[True]  # items, per-language table, plot data, metrics: byte for byte
    assert off.empty and list(off.columns) == COST_COLUMNS
    assert list(on.columns) == COST_COLUMNS and len(on) == len(tiny_corpus.corpus.splits["test"])
    assert (on["seconds_per_kb"] > 0).all() and on["joules"].isna().all()
