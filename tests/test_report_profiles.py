"""The report reads two profiles: the root pipeline's results and the scale profile's (``scale/``).

The inputs are the committed root results; the two a git checkout lacks (the corpus manifest and the
weight census table are DVC outputs kept out of git) are synthesised when absent, so these tests
need no pipeline run. The scale profile is a stand-in: the same results with ``profile: scale``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qfair import paths
from qfair.params import load_params
from qfair.report.build import all_profiles, build_report, load_scale
from qfair.report.numbers import (
    ABSENT,
    GPU_ONLY,
    model_size,
    prefixed,
    profile_label,
    report_numbers,
)
from qfair.report.prose import compared_verdicts
from qfair.report.results import INPUTS, load_results
from qfair.report.texcheck import QFNUM, defined_keys, hand_written_sources, quoted_keys

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"


def _manifest(per_language: pd.DataFrame) -> dict:
    test = per_language[per_language["split"] == "test"]
    return {
        "languages": {row["language"]: {"name": row["language"], "script": row["script"],
                                        "resource_level": row["resource_level"],
                                        "train_share": math.exp(row["resource_level"]), "train_items": 100}
                      for _, row in test.iterrows()},
        "sources": {"train": {"source": "kolibri", "version": "0", "sha256": "0" * 64}},
    }


def _tensors() -> pd.DataFrame:
    return pd.DataFrame([{"model": "final", "kind": "weight", "component": component, "layer": layer,
                          "excess_kurtosis": 0.1 * layer, "max_abs_over_std": 4.0}
                         for layer in range(4) for component in ("attn_qkv", "attn_o", "mlp_up", "mlp_down")])


def write_inputs(root: Path) -> None:
    """The root profile's report inputs below ``root`` (committed files, synthesised where absent)."""
    for relative in INPUTS.values():
        source = REPO / relative
        if source.is_dir():
            shutil.copytree(source, root / relative)
        elif source.is_file():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / relative)
    if not (root / paths.CORPUS_MANIFEST).is_file():
        per_language = pd.read_csv(root / paths.EVAL / "per_language.csv")
        (root / paths.CORPUS_MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        (root / paths.CORPUS_MANIFEST).write_text(json.dumps(_manifest(per_language)))
    if not (root / INPUTS["tensors"]).is_file():
        (root / INPUTS["tensors"]).parent.mkdir(parents=True, exist_ok=True)
        _tensors().to_csv(root / INPUTS["tensors"], index=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with root results and a stand-in scale profile in ``scale/`` (with a GPU record)."""
    root = tmp_path_factory.mktemp("report")
    write_inputs(root)
    scale = root / paths.SCALE
    write_inputs(scale)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    (scale / "params.yaml").write_text(yaml.safe_dump({**params, "profile": "scale"}), encoding="utf-8")
    train = json.loads((scale / paths.TRAIN_METRICS).read_text())
    train.update(parameters=110_000_000, tokens_per_second=120_000.0, mfu=0.3, device="cuda",
                 precision="bfloat16", model_step=800, train_dev_gap=0.2, epochs=2.5)
    (scale / paths.TRAIN_METRICS).write_text(json.dumps(train))
    timing = {"stage": "train_model", "seconds": 600.0, "machine": "x86_64", "cpus": 16, "torch_threads": 8,
              "cuda": "NVIDIA H200", "os": "Linux", "python": "3.11"}
    (scale / paths.TIMINGS).mkdir(parents=True, exist_ok=True)
    (scale / paths.TIMINGS / "train_model.json").write_text(json.dumps(timing))
    pd.DataFrame({"language": ["ar", "en"], "act_kurtosis_max": [12.0, 3.0],
                  "act_max_over_median_max": [40.0, float("nan")]}).to_csv(
        scale / paths.INPUT_OUTLIERS_LANGUAGES, index=False)
    return root


@pytest.fixture(scope="module")
def root_run(workspace: Path):
    return load_results(workspace), load_params(REPO / "params.yaml")


@pytest.fixture(scope="module")
def controlled_numbers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The ``ctl/`` keys, from the controlled_analysis stage run on the committed runs."""
    from qfair.report import controlled

    work = tmp_path_factory.mktemp("controlled")
    (work / "controlled").symlink_to(REPO / "controlled")
    (work / "stages").symlink_to(REPO / "stages")
    subprocess.run([sys.executable, "-m", "qfair.stage", "stages/controlled_analysis.py"], cwd=work,
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return controlled.numbers(controlled.load(work / "results/controlled", work / "metrics/controlled.json"))


@pytest.fixture(scope="module")
def track_d_numbers() -> dict[str, str]:
    """The ``td/`` keys, from the committed Track D results of the root profile."""
    from qfair.report import track_d

    data = track_d.load(REPO / "results/track_d", REPO / "metrics/track_d.json")
    assert data is not None, "results/track_d is committed with the embedded profile's results"
    return track_d.numbers(data)


def _quoted(numbers: dict[str, str]) -> set[str]:
    """Keys the hand-written paper quotes, and those the generated sentences quote in turn."""
    used = {key for path in hand_written_sources(PAPER)
            for key in quoted_keys(path.read_text(encoding="utf-8"))}
    return used | {key for value in numbers.values() for key in QFNUM.findall(value)}


def test_without_scale_results_every_key_is_defined_and_the_text_says_so(workspace: Path, root_run,
                                                                         controlled_numbers,
                                                                         track_d_numbers) -> None:
    assert load_scale(workspace / "nowhere") is None
    numbers = (report_numbers(*root_run, None, all_profiles()) | controlled_numbers
               | track_d_numbers)  # as the report does
    assert _quoted(numbers) <= set(numbers), sorted(_quoted(numbers) - set(numbers))
    assert numbers["scale/hyp/EXP-001/value"] == numbers["scale/disp/rtn-w4-ch-sym/range"] == ABSENT
    assert "has not been run" in numbers["text/scale-status"]
    assert "has not been run" in numbers["text/replication"]
    assert numbers["primary/hyp/EXP-001/value"] == numbers["hyp/EXP-001/value"]  # the root is primary


def test_scale_keys_are_prefixed_and_primary(workspace: Path, root_run, controlled_numbers,
                                             track_d_numbers) -> None:
    scale = load_scale(workspace / paths.SCALE)
    assert scale is not None and scale[1].profile == "scale"
    numbers = report_numbers(*root_run, scale, all_profiles()) | controlled_numbers | track_d_numbers
    assert _quoted(numbers) <= set(numbers), sorted(_quoted(numbers) - set(numbers))
    # a headline number of both profiles (the stand-in has the same results)
    assert numbers["scale/hyp/EXP-001/value"] == numbers["hyp/EXP-001/value"] != ABSENT
    assert numbers["scale/disp/rtn-w4-ch-sym/range"] == numbers["primary/disp/rtn-w4-ch-sym/range"] != ABSENT
    assert numbers["scale/label/profile"] == "scale profile (110M, Kolibri, CPU)"
    assert numbers["label/profile"] == "embedded profile (5M, Kolibri, CPU)"
    assert numbers["scale/train/tokens-per-second"] == r"120\,000" and numbers["train/mfu"] == ABSENT
    assert numbers["scale/act/kurtosis/max-language"] == "ar" and numbers["act/kurtosis/max"] == ABSENT
    # generated sentences quote their own profile's keys
    assert r"\qfnum{scale/model/parameters-millions}" in numbers["scale/text/model-summary"]
    assert "primary profile" not in numbers["text/replication"] and "all" in numbers["text/replication"]
    assert all(key in GPU_ONLY or not key.startswith(("train/tokens", "act/")) for key in numbers)


def test_replication_compares_verdicts_hypothesis_by_hypothesis(root_run) -> None:
    results, params = root_run
    ledger = json.loads(json.dumps(results.ledger))
    ledger["hypotheses"][0]["verdict"] = "SUPPORTED" if ledger["hypotheses"][0]["verdict"] != "SUPPORTED" \
        else "REJECTED"
    other = type(results)(**{**results.__dict__, "ledger": ledger})
    rows = compared_verdicts(other, results)
    assert rows and rows[0][1] != rows[0][2] and all(a == b for _, a, b in rows[1:])
    text = report_numbers(results, params, (other, params))["text/replication"]
    assert rows[0][0] in text and "differ on" in text


def test_prefixed_rewrites_the_keys_values_quote() -> None:
    assert prefixed({"a/b": r"x \qfnum{c/d} y"}, "scale/") == {"scale/a/b": r"x \qfnum{scale/c/d} y"}
    assert model_size(5_208_064) == "5M" and model_size(110_500_000) == "110M" and model_size(1.1e9) == "1.1B"


def test_report_builds_both_profiles(workspace: Path, root_run, tmp_path: Path) -> None:
    scale = load_scale(workspace / paths.SCALE)
    files = build_report(*root_run, tmp_path / "with", profiles=[root_run[1]], scale=scale)
    assert {"tables/headline.tex", "tables/scale/headline.tex", "tables/replication.tex",
            "figures/scale/disparity_vs_bits.pdf", "tables/scale/outliers.tex"} <= set(files)
    numbers = (tmp_path / "with" / "numbers.tex").read_text(encoding="utf-8")
    assert r"\qfscaletrue" in numbers and "scale/hyp/EXP-001/value" in defined_keys(numbers)
    assert "NVIDIA H200" in (tmp_path / "with" / "tables" / "checklist.tex").read_text(encoding="utf-8")
    assert "MFU" in (tmp_path / "with" / "tables" / "scale" / "training.tex").read_text(encoding="utf-8")
    build_report(*root_run, tmp_path / "without", profiles=[root_run[1]], scale=None)
    numbers = (tmp_path / "without" / "numbers.tex").read_text(encoding="utf-8")
    assert r"\qfscalefalse" in numbers and "scale/hyp/EXP-001/value" in defined_keys(numbers)
    headline = (tmp_path / "without" / "tables" / "scale" / "headline.tex").read_text(encoding="utf-8")
    assert "has not been run" in headline and not any(char.isdigit() for char in headline)


def test_profile_label_is_built_from_params(root_run) -> None:
    results, params = root_run
    assert profile_label(params) == "embedded profile (Kolibri, CPU)"
    assert profile_label(params, results).startswith("embedded profile (5M, ")
