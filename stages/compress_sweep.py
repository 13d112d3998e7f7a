"""Stage compress_sweep: every compression config x every language, with disparity statistics."""

import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from qfair.analysis.sweep import (
    disparity_table,
    per_language_table,
    threshold_table,
)
from qfair.corpus.store import read_manifest, read_split
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv, write_json
from qfair.models import load_model
from qfair.params import load_params
from qfair.quant.apply import target_linears
from qfair.quant.configs import check_group_sizes, parse_config
from qfair.quant.sweep import SweepSettings, calibrate, run_sweep

CORPUS = Path("data/corpus")
MODEL = Path("models/embedded/final")
OUT = Path("results/sweep")


def seeded_subset(per_language: dict[str, dict[str, str]], count: int, seed: int):
    """The same ``count`` item ids in every language (the split is parallel)."""
    ids = sorted(next(iter(per_language.values())))
    rng = np.random.default_rng(seed)
    chosen = sorted(ids[i] for i in rng.choice(len(ids), size=min(count, len(ids)), replace=False))
    return {lang: {i: items[i] for i in chosen} for lang, items in per_language.items()}


def layer_input_widths(path: Path, exclude: list[str]) -> set[int]:
    """Input widths of the layers to compress, from the config alone (no weights loaded)."""
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)))
    return {lin.in_features for lin in target_linears(skeleton, exclude).values()}


def main() -> None:
    params = load_params()
    cp = params.compress
    configs = [parse_config(name) for name in cp.configs]
    check_group_sizes(configs, layer_input_widths(MODEL, cp.exclude_modules))
    deterministic_cpu(params.train.threads)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    model = load_model(MODEL)
    manifest = read_manifest(CORPUS)["languages"]
    texts = seeded_subset(read_split(CORPUS, "test"), cp.items_per_language, cp.seed)
    calibration_texts = seeded_subset(read_split(CORPUS, "dev"), cp.calibration_items, cp.seed)
    settings = SweepSettings(cp.exclude_modules, cp.laaciq_prior, cp.bnb_int8_threshold,
                             params.eval.batch_tokens, params.eval.max_tokens,
                             params.corpus.reference_language)
    calibration = calibrate(model, tokenizer, calibration_texts, settings)
    share = {lang: manifest[lang]["train_share"] for lang in texts}
    items = run_sweep(model, MODEL, tokenizer, configs, texts, calibration, share, settings)
    sweep_seconds = time.perf_counter() - started

    languages = sorted(texts)
    level = {lang: manifest[lang]["resource_level"] for lang in languages}
    ci = dict(resamples=cp.bootstrap_resamples, confidence=params.eval.confidence, seed=cp.seed,
              method=params.eval.ci_method)
    per_language = per_language_table(items, configs, languages, level, **ci)
    disparity = disparity_table(items, configs, languages, level, **ci)
    thresholds = threshold_table(per_language, cp.threshold_tau)

    write_csv(OUT / "items.csv", items)
    write_csv(OUT / "per_language.csv", per_language)
    write_csv(OUT / "disparity.csv", disparity)
    write_csv(OUT / "threshold_bits.csv", thresholds)
    # One series per plot file: symmetric per-channel RTN across bit widths.
    rtn_channel = disparity[disparity["config"].str.match(r"rtn-w\d-ch-sym$")]
    write_csv(OUT / "plots/disparity_vs_bits.csv", rtn_channel[["bits", "range", "worst", "mean"]])
    channel = per_language[per_language["config"].str.match(r"rtn-w\d-ch-sym$")]
    write_csv(OUT / "plots/degradation_vs_bits.csv",
              channel[["language", "bits", "rho", "rho_ci_low", "rho_ci_high"]])

    metrics = {
        "languages": len(languages), "items_per_language": len(next(iter(texts.values()))),
        "configs": len(configs),
        "disparity": {row["config"]: {k: round(row[k], 6) for k in ("range", "worst", "mean")}
                      for _, row in disparity.iterrows()},
    }
    write_json(Path("metrics/sweep.json"), metrics)
    print(disparity[["config", "range", "range_ci_low", "range_ci_high", "mean", "worst_language"]]
          .to_string(index=False))
    print(f"sweep: {len(configs)} configs in {sweep_seconds:.0f} s")


if __name__ == "__main__":
    main()
