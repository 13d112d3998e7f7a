"""Stage compress_sweep: every compression config x every language, with disparity statistics.

Resource levels (disparity terciles, LA-ACIQ's resource weighting) come from the corpus manifest
(embedded) or the hub model's published pretraining shares (paper, qfair.analysis.resource).
Languages without a published share get an empty resource_level cell and are in no resource
tercile (qfair.analysis.disparity.terciles). A ``laaciq-resource`` config needs every language's
share and is refused before any work if one is missing. Masked LMs are refused: the sweep scores
causal likelihoods only.
"""

import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from qfair.analysis.resource import ResourceLevels, resource_levels
from qfair.analysis.sweep import (
    disparity_table,
    per_language_table,
    threshold_table,
)
from qfair.corpus.store import read_manifest, read_split
from qfair.determinism import deterministic_cpu
from qfair.eval_mlm import model_kind
from qfair.hub import preflight
from qfair.io import write_csv, write_json
from qfair.models import load_model
from qfair.params import load_params
from qfair.quant.apply import target_linears
from qfair.quant.configs import check_group_sizes, parse_config
from qfair.quant.sweep import SweepSettings, calibrate, clear_partial, run_sweep
from qfair.stage import run_stage

CORPUS = Path("data/corpus")
MODELS = Path("models")  # models/<profile>/final
OUT = Path("results/sweep")
PARTIAL = OUT / "partial"  # per-config rows of an interrupted sweep (qfair.quant.sweep); removed at the end


def seeded_subset(per_language: dict[str, dict[str, str]], count: int | str, seed: int):
    """The same ``count`` item ids in every language (the split is parallel); "all": every item."""
    if count == "all":
        return per_language
    ids = sorted(next(iter(per_language.values())))
    rng = np.random.default_rng(seed)
    chosen = sorted(ids[i] for i in rng.choice(len(ids), size=min(count, len(ids)), replace=False))
    return {lang: {i: items[i] for i in chosen} for lang, items in per_language.items()}


def layer_input_widths(path: Path, exclude: list[str]) -> set[int]:
    """Input widths of the layers to compress, from the config alone (no weights loaded)."""
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)))
    return {lin.in_features for lin in target_linears(skeleton, exclude).values()}


def check_sweepable(params, configs, levels: ResourceLevels) -> dict[str, float]:
    """Refuse what the sweep cannot do, before any model is loaded; return LA-ACIQ's shares."""
    if model_kind(params) == "masked_lm":
        raise ValueError(f"model.name: {params.model.name!r} is a masked LM; the compression sweep scores "
                         "causal likelihoods only (evaluate it with the evaluate stage, which uses "
                         "pseudo-log-likelihood), or pick a causal_lm from qfair/registry/models.yaml")
    resource = [c.name for c in configs if c.method == "laaciq" and c.weighting == "resource"]
    if resource and not levels.complete:
        levels.require_shares(levels.languages, f"compress.configs {resource} (LA-ACIQ resource weighting)")
    return {lang: levels.share[lang] for lang in levels.languages if lang in levels.share}


def main() -> None:
    params = load_params()
    cp = params.compress
    configs = [parse_config(name) for name in cp.configs]
    model_dir = MODELS / params.profile / "final"
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    manifest = read_manifest(CORPUS)["languages"]
    levels = resource_levels(params, manifest)
    share = check_sweepable(params, configs, levels)
    check_group_sizes(configs, layer_input_widths(model_dir, cp.exclude_modules))
    deterministic_cpu(params.train.threads)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device)
    texts = seeded_subset(read_split(CORPUS, "test"), cp.items_per_language, cp.seed)
    calibration_texts = seeded_subset(read_split(CORPUS, "dev"), cp.calibration_items, cp.seed)
    settings = SweepSettings(cp.exclude_modules, cp.laaciq_prior, cp.bnb_int8_threshold,
                             params.eval.batch_tokens, params.eval.max_tokens,
                             params.corpus.reference_language)
    calibration = calibrate(model, tokenizer, calibration_texts, settings)
    items = run_sweep(model, model_dir, tokenizer, configs, texts, calibration, share, settings,
                      partial=PARTIAL)
    sweep_seconds = time.perf_counter() - started

    languages = sorted(texts)
    ci = dict(resamples=cp.bootstrap_resamples, confidence=params.eval.confidence, seed=cp.seed,
              method=params.eval.ci_method)
    # NaN: a language without a resource level (an empty cell; left out of the terciles).
    level = {lang: levels.level_or_nan(lang) for lang in languages}
    per_language = per_language_table(items, configs, languages, level, **ci)
    disparity = disparity_table(items, configs, languages, level, **ci)
    thresholds = threshold_table(per_language, cp.threshold_tau)

    write_csv(OUT / "items.csv", items)
    write_csv(OUT / "per_language.csv", per_language, may_be_empty=["resource_level"])
    write_csv(OUT / "disparity.csv", disparity)
    write_csv(OUT / "threshold_bits.csv", thresholds, may_be_empty=["resource_level"])
    # One series per plot file: symmetric per-channel RTN across bit widths.
    rtn_channel = disparity[disparity["config"].str.match(r"rtn-w\d-ch-sym$")]
    write_csv(OUT / "plots/disparity_vs_bits.csv", rtn_channel[["bits", "range", "worst", "mean"]])
    channel = per_language[per_language["config"].str.match(r"rtn-w\d-ch-sym$")]
    write_csv(OUT / "plots/degradation_vs_bits.csv",
              channel[["language", "bits", "rel_degradation", "rel_degradation_ci_low",
                       "rel_degradation_ci_high"]])

    metrics = {
        "languages": len(languages), "items_per_language": len(next(iter(texts.values()))),
        "configs": len(configs),
        "disparity": {row["config"]: {k: round(row[k], 6) for k in ("range", "worst", "mean")}
                      for _, row in disparity.iterrows()},
    }
    if not levels.complete:
        metrics["resource_level"] = levels.describe()
    write_json(Path("metrics/sweep.json"), metrics)
    clear_partial(PARTIAL)
    print(disparity[["config", "range", "range_ci_low", "range_ci_high", "mean", "worst_language"]]
          .to_string(index=False))
    print(f"sweep: {len(configs)} configs in {sweep_seconds:.0f} s")
    if not levels.complete:
        print(f"resource level: {levels.source}; none for {levels.missing}: tercile ratios use the "
              f"other {len(levels.known(languages))} languages")


if __name__ == "__main__":
    run_stage("compress_sweep", main)
