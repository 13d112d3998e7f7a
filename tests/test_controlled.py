"""The controlled family (qfair.controlled): the Latin square, the run corpora, the slope
estimators, the spec's errors and the CPU guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qfair.controlled import analysis
from qfair.controlled.design import FamilyError, latin_square_shares, load_spec, run_plans
from qfair.controlled.family import run_corpus
from qfair.controlled.slopes import SlopeError, X, adjusted_slope, language_slopes, pooled_slope
from qfair.io import write_json, write_jsonl

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "controlled" / "params.yaml"


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 5), per_group=st.integers(1, 3), data=st.data())
def test_latin_square_keeps_totals_and_visits_every_level(k: int, per_group: int, data) -> None:
    raw = data.draw(st.lists(st.floats(1e-4, 0.9 / (k * per_group)), min_size=k, max_size=k, unique=True))
    levels = sorted(raw)
    groups = [[f"l{g}_{i}" for i in range(per_group)] for g in range(k)]
    squares = [latin_square_shares(groups, levels, r) for r in range(k)]
    totals = [sum(shares.values()) for shares in squares]
    assert np.allclose(totals, totals[0])  # so N / (1 - S): the run's total bytes is the same
    for lang in (lang for group in groups for lang in group):
        assert sorted(shares[lang] for shares in squares) == levels  # each level once per language
    for r in range(k):  # every run: each level held by exactly one group
        assert sorted(squares[r].values()) == sorted(level for level in levels for _ in range(per_group))


def _corpus(folder: Path, languages: dict[str, int]) -> None:
    """A base corpus: ``count`` training items per language, 3 dev and 3 test items."""
    for lang, count in languages.items():
        write_jsonl(folder / "train" / f"{lang}.jsonl", [{"id": f"t{i}", "text": f"{lang} train {i}"}
                                                         for i in range(count)])
        for split in ("dev", "test"):
            write_jsonl(folder / split / f"{lang}.jsonl", [{"id": f"{split}{i}", "text": f"{lang} {split}"}
                                                           for i in range(3)])
    write_json(folder / "manifest.json", {"sources": {"train": {"source": "fixture"}},
                                          "languages": {lang: {} for lang in languages}})


def test_run_corpus_fixes_non_target_bytes_and_nests_target_text(tmp_path: Path) -> None:
    _corpus(tmp_path / "base", {"en": 400, "fr_FR": 200, "yo": 5, "hi_IN": 5})
    for lang in ("yo", "hi_IN"):
        write_jsonl(tmp_path / "pools" / f"{lang}.jsonl", [{"id": f"p{i}", "text": f"{lang} pool item {i}"}
                                                           for i in range(3000)])
    spec = load_spec(SPEC)
    shares = {}
    texts = {}
    for rotation in range(2):
        plan = run_plans(spec)[0].__class__(
            name=f"r{rotation}", kind="share", seed=1, size="s25", architecture=spec.sizes["s25"],
            dropout=0.0, rotation=rotation,
            target_shares=latin_square_shares([["yo"], ["hi_IN"]], [0.01, 0.04], rotation))
        corpus, _ = run_corpus(plan, tmp_path / "base", tmp_path / "pools", seed=7)
        train = corpus.splits["train"]
        total = sum(len(t.encode()) for items in train.values() for t in items.values())
        shares[rotation] = {lang: sum(len(t.encode()) for t in items.values()) / total
                            for lang, items in train.items()}
        texts[rotation] = train
        assert corpus.splits["test"]["yo"] == {f"test{i}": "yo test" for i in range(3)}
    assert shares[0]["yo"] == pytest.approx(0.01, rel=0.05)
    assert shares[1]["yo"] == pytest.approx(0.04, rel=0.05)
    assert shares[0]["en"] == pytest.approx(shares[1]["en"], rel=0.01)  # non-target shares fixed
    assert set(texts[0]["yo"]) < set(texts[1]["yo"])  # the smaller share's text is inside the larger


def _synthetic(slope: float, languages: int = 6, seeds: int = 4, noise: float = 0.01,
               seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for lang in range(languages):
        intercept = rng.normal()
        for s in range(seeds):
            for share in (0.0025, 0.01, 0.04):
                x = np.log(share)
                bpb = 2.0 - 0.3 * x + rng.normal(0, 0.05)
                rows.append({"language": f"l{lang}", "seed": s, X: x, "baseline_bpb": bpb,
                             "rho": intercept + slope * x + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_pooled_slope_recovers_a_known_slope_and_covers_it() -> None:
    rows = _synthetic(-0.05)
    value, low, high = pooled_slope(rows, "rho", resamples=999, confidence=0.95, seed=1)
    assert value == pytest.approx(-0.05, abs=0.005)
    assert low < -0.05 < high and high < 0
    per_language = language_slopes(rows, "rho", 0.95)
    assert len(per_language) == 6 and (per_language["ci_low"] < -0.05).all()
    assert (per_language["ci_high"] > -0.05).all()


def test_adjusted_slope_recovers_the_direct_effect() -> None:
    rows = _synthetic(0.0)
    rows["rho"] = rows["rho"] - 0.1 * rows["baseline_bpb"]  # all of share's effect goes through bpb
    value, low, high = adjusted_slope(rows, "rho", "baseline_bpb", resamples=499, confidence=0.95, seed=2)
    assert low < 0 < high and abs(value) < 0.01
    naive, *_ = pooled_slope(rows, "rho", resamples=99, confidence=0.95, seed=2)
    assert naive == pytest.approx(0.03, abs=0.01)  # -0.1 x -0.3: the total effect


def test_slopes_refuse_unbalanced_and_non_finite_rows() -> None:
    rows = _synthetic(-0.05)
    with pytest.raises(SlopeError, match="unbalanced"):
        pooled_slope(rows.iloc[1:], "rho", resamples=99, confidence=0.95, seed=0)
    bad = rows.copy()
    bad.loc[3, "rho"] = np.nan
    with pytest.raises(SlopeError, match="non-finite"):
        pooled_slope(bad, "rho", resamples=99, confidence=0.95, seed=0)


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    cases = {
        "shares.levels": lambda r: r["shares"].update(levels=[0.04, 0.01, 0.0025]),
        "shares.groups": lambda r: r["shares"].update(groups=[["sw_TZ"], ["ko", "ru"], ["ar"]]),
        "runs": lambda r: r.update(runs=[*r["runs"], "share-r9-seed1"]),
        "shares.size": lambda r: r["shares"].update(size="s7"),
    }
    for field, change in cases.items():
        broken = yaml.safe_load(yaml.safe_dump(raw))
        change(broken)
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(broken), encoding="utf-8")
        with pytest.raises(FamilyError, match=str(path)) as error:
            load_spec(path)
        assert field.split(".")[0] in str(error.value), (field, str(error.value))


def test_committed_runs_are_part_of_the_design_and_complete() -> None:
    from qfair.controlled.family import base_params, complete, run_params

    spec = load_spec(SPEC)
    base = base_params(spec)
    for plan in run_plans(spec):
        if plan.name in spec.runs:  # finished, with the params the design gives it now
            assert complete(REPO / "controlled" / "runs" / plan.name, run_params(spec, plan, base)), plan.name


def test_seed_resampling_widens_the_pooled_interval() -> None:
    rows = _synthetic(0.0, noise=0.0)
    # every language has the same slope within a seed; the slope differs between seeds
    rows["rho"] += 0.03 * (rows["seed"] - 1.5) * rows[X]
    value, low, high = pooled_slope(rows, "rho", resamples=999, confidence=0.95, seed=3)
    assert value == pytest.approx(0.0, abs=1e-9)
    assert high - low > 0.02  # resampling languages alone would give a zero-width interval


def test_complete_seeds_need_every_designed_rotation() -> None:
    spec = load_spec(SPEC)
    rows = pd.DataFrame([{"kind": "share", "seed": seed, "rotation": rotation}
                         for seed, rotations in ((1, (0, 1, 2)), (2, (0, 1)), (3, (0, 1, 2)))
                         for rotation in rotations])
    assert analysis.complete_seeds(spec, rows) == [1, 3]
    assert analysis.complete_seeds(spec, rows[rows["rotation"] < 2]) == []  # two of three levels


def test_a_complete_design_gets_verdicts_and_a_pending_one_interim_estimates() -> None:
    spec = load_spec(SPEC)
    slopes = pd.DataFrame([{"outcome": f"rho:{c}{suffix}", "language": "pooled", "slope": -0.01,
                            "ci_low": -0.02, "ci_high": -0.005}
                           for c in spec.configs for suffix in ("", "|baseline_bpb")])
    kurtosis = "max_weight_kurtosis"
    dropout = pd.DataFrame([{"metric": kurtosis, "effect": 0.01, "ci_low": 0.002, "ci_high": 0.02}])
    sizes = pd.DataFrame([{"metric": kurtosis, "slope": 0.1, "ci_low": -0.1, "ci_high": 0.3}])
    designed = [plan.name for plan in run_plans(spec)]
    everything = spec.model_copy(update={"runs": designed})
    full = {e["id"]: e for e in analysis.ledger(everything, slopes, dropout, sizes)}
    assert full["EXP-001c"]["verdict"] == "SUPPORTED" and full["EXP-001c"]["value"] == -0.01
    assert full["EXP-023"]["verdict"] == "REJECTED"  # dropout raised kurtosis: the CI is above zero
    assert full["EXP-025"]["verdict"] == "INCONCLUSIVE"
    pending = {e["id"]: e for e in analysis.ledger(spec.model_copy(update={"runs": designed[1:]}),
                                                   slopes, dropout, sizes)}
    assert pending["EXP-001c"]["verdict"] == "NOT RUN" and pending["EXP-001c"]["interim_value"] == -0.01
    assert pending["EXP-001c"]["pending_runs"] == designed[:1] and "value" not in pending["EXP-001c"]
    assert pending["EXP-023"]["verdict"] == "REJECTED"  # its runs are all there


def test_ledger_gives_no_verdict_while_runs_are_pending() -> None:
    spec = load_spec(SPEC)
    runs, languages = analysis.gather(spec, REPO / "controlled" / "runs")
    entries = analysis.ledger(spec, analysis.share_slopes(spec, languages),
                              analysis.dropout_effects(runs, spec.confidence),
                              analysis.size_slopes(runs, spec.confidence))
    designed = {plan.name for plan in run_plans(spec)}
    for entry in entries:
        needed = set(analysis.needed_runs(spec, entry["estimate"]))
        assert needed <= designed
        if needed - set(spec.runs):
            assert entry["verdict"] == "NOT RUN" and set(entry["pending_runs"]) == needed - set(spec.runs)
        else:
            assert entry["verdict"] in ("SUPPORTED", "REJECTED", "INCONCLUSIVE")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the guard is for CPU machines")
def test_cpu_machine_never_starts_a_run() -> None:
    done = subprocess.run([sys.executable, "-m", "qfair.controlled", "run", "share-r0-seed1234"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "CUDA GPU" in done.stderr and "dvc repro never starts a run" in done.stderr


def test_dvc_repro_cannot_start_a_run() -> None:
    stages = yaml.safe_load((REPO / "controlled" / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert stages["run"]["do"]["frozen"] is True and stages["run"]["foreach"] == "${runs}"
    from qfair.controlled.family import RUN_OUTPUTS

    # every committed output is a declared out of the run's stage (runs/<name>/<output>)
    declared = {next(iter(out)).split("/", 2)[2]
                for key in ("outs", "metrics") for out in stages["run"]["do"][key]}
    assert declared == set(RUN_OUTPUTS)


def _model_runs() -> pd.DataFrame:
    rows = []
    for size, params in (("s25", 2.3e7), ("s50", 5.0e7), ("s100", 1.1e8)):
        for dropout in (0.0, 0.1):
            for seed in (1, 2):
                kurtosis = 0.1 * np.log(params) - (0.02 if dropout else 0.0) + 0.001 * seed
                rows.append({"run": f"{size}-{dropout}-{seed}", "kind": "model", "size": size,
                             "dropout": dropout, "seed": seed, "rotation": None, "parameters": params,
                             "max_weight_kurtosis": kurtosis, "max_act_kurtosis": 10.0 + seed,
                             "mean_act_kurtosis": 2.0, "dev_loss": 5.0 - seed / 10,
                             "mean_baseline_bpb": 2.0, "mean_rho:rtn-w4-ch-sym": 0.001 * seed})
    return pd.DataFrame(rows)


def test_dropout_effect_and_size_slope_on_known_runs() -> None:
    runs = _model_runs()
    dropout = analysis.dropout_effects(runs, 0.95).set_index("metric")
    assert dropout.loc["max_weight_kurtosis", "effect"] == pytest.approx(-0.02)
    assert dropout.loc["max_weight_kurtosis", "pairs"] == 6
    sizes = analysis.size_slopes(runs, 0.95).set_index("metric")
    assert sizes.loc["max_weight_kurtosis", "slope"] == pytest.approx(0.1)
    assert sizes.loc["max_weight_kurtosis", "sizes"] == 3
    spread = analysis.seed_spread(runs).set_index("metric")
    # seeds 1 and 2 differ by 1.0 in max_act_kurtosis in every cell: SD sqrt(0.5)
    assert spread.loc["max_act_kurtosis", "seed_sd"] == pytest.approx(np.sqrt(0.5))
    assert spread.loc["mean_act_kurtosis", "seed_sd"] == 0.0


def _tiny_family(root: Path) -> Path:
    """A family folder whose base is a 4-language corpus, a 300-token BPE and a 2-layer model on CPU."""
    from qfair.models.tokenizer import save_tokenizer, train_bpe

    base = root / "base"
    langs = {"en": 300, "fr_FR": 200, "sw_TZ": 20, "ko": 20}
    for lang, count in langs.items():
        words = [f"{lang} word{i % 17} item {i} " * 3 for i in range(count + 40)]
        write_jsonl(base / "data/corpus/train" / f"{lang}.jsonl",
                    [{"id": f"t{i}", "text": words[i]} for i in range(count)])
        for split, offset in (("dev", count), ("test", count + 20)):
            write_jsonl(base / "data/corpus" / split / f"{lang}.jsonl",
                        [{"id": f"{split}{i}", "text": words[offset + i]} for i in range(20)])
        if lang in ("sw_TZ", "ko"):
            write_jsonl(root / "family/data/pools" / f"{lang}.jsonl",
                        [{"id": f"p{i}", "text": f"{lang} pool {i} " * 4} for i in range(2000)])
    write_json(base / "data/corpus/manifest.json", {"sources": {"train": {"source": "fixture"}},
                                                    "languages": {lang: {} for lang in langs}})
    texts = [row for lang in langs
             for row in (base / "data/corpus/train" / f"{lang}.jsonl").read_text().split("\n")]
    save_tokenizer(train_bpe(texts, 300, 2), base / "models/tokenizer")
    params = yaml.safe_load((REPO / "scale" / "params.yaml").read_text(encoding="utf-8"))
    (base / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    spec.update(
        base_params=str(base / "params.yaml"), workers=1,
        sizes={"s25": {"hidden_size": 32, "n_layer": 2, "n_head": 2, "gpu_memory_gb": 1}},
        overrides={"train": {"steps": 3, "batch_size": 2, "context_length": 32, "warmup_steps": 1,
                             "eval_every": 3, "checkpoint_every": 3, "dev_blocks": 1, "threads": 1,
                             "device": "cpu", "precision": "float32", "compile": False,
                             "early_stopping_patience": None, "checkpoint_schedule": "every"},
                   "eval": {"device": "cpu", "dtype": "float32", "batch_tokens": 1024,
                            "bootstrap_resamples": 100},
                   "compress": {"items_per_language": 10, "calibration_items": 2,
                                "bootstrap_resamples": 100}},
        shares={"groups": [["sw_TZ"], ["ko"]], "levels": [0.01, 0.04], "seeds": [1, 2], "size": "s25",
                "dropout": 0.0},
        models=[{"size": "s25", "dropout": 0.1, "seeds": [1]}], runs=[])
    (root / "family/params.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return root / "family"


def test_a_run_goes_through_the_pipeline_stages_on_cpu(tmp_path: Path) -> None:
    """The GPU path's code on a CPU: one share run end to end, then its results are read back."""
    from qfair.controlled.family import complete

    family = _tiny_family(tmp_path)
    command = [sys.executable, "-m", "qfair.controlled", "gpu", "--allow-cpu", "--folder", str(family),
               "--runs", "share-r1-seed1", "--pack", str(tmp_path / "out.tar.gz")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=900)
    run = family / "runs" / "share-r1-seed1"
    log = (run / "run.log").read_text(encoding="utf-8")[-3000:] if (run / "run.log").is_file() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log
    assert complete(run)
    spec = load_spec(family / "params.yaml")
    plan = next(p for p in run_plans(spec) if p.name == "share-r1-seed1")
    row, languages = analysis.read_run(plan, run, spec.configs)
    shares = languages.drop_duplicates("language").set_index("language")["train_share"]
    assert shares["sw_TZ"] == pytest.approx(0.04, rel=0.1) and shares["ko"] == pytest.approx(0.01, rel=0.1)
    assert row["parameters"] > 0 and set(languages["config"]) == set(spec.configs)
    import tarfile

    with tarfile.open(tmp_path / "out.tar.gz") as archive:
        assert "runs/share-r1-seed1/results/done.json" in archive.getnames()
    # a second start skips the complete run
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 0 and "skipped" in again.stdout
