"""Stage mechanisms: Track A's mechanism tables and the hypothesis ledger.

A language's resource level comes from the corpus manifest (embedded) or the hub model's
published pretraining shares (paper, qfair.analysis.resource). A language without one has an
empty resource_level cell in languages.csv and is left out of the hypotheses that use it (the
ledger's record lists it under ``left_out``); every other hypothesis keeps every language.
"""

from pathlib import Path

import pandas as pd

from qfair.analysis.ledger import evaluate_ledger
from qfair.analysis.mechanisms import (
    checkpoint_table,
    component_table,
    language_table,
    layer_kurtosis,
    layer_table,
    outlier_layers,
)
from qfair.analysis.resource import resource_levels
from qfair.analysis.sweep import laaciq_verdicts
from qfair.io import read_json, write_csv, write_json
from qfair.params import load_params
from qfair.stage import run_stage

OUT = Path("results/analysis")


def main() -> None:
    params = load_params()
    ap = params.analysis
    census = pd.read_csv("results/census/tensors.csv")
    census["layer"] = census["layer"].astype("Int64")
    summaries = read_json("results/census/summary.json")
    profile = pd.read_csv("results/activations/layers.csv")
    sweep = pd.read_csv("results/sweep/per_language.csv")
    evaluation = pd.read_csv("results/eval/per_language.csv")
    manifest = read_json("data/corpus/manifest.json")["languages"]
    levels = resource_levels(params, manifest)
    # language_table reads script and resource_level from here; NaN marks "no resource level"
    manifest = {lang: {**entry, "resource_level": levels.level_or_nan(lang)}
                for lang, entry in manifest.items()}
    missing = sorted(set(profile["language"]) - set(sweep["language"]))
    if missing:
        raise ValueError(f"languages {missing} are in the activation profile but missing from the sweep")

    kurt = layer_kurtosis(census[census["model"] == "final"])
    outliers = outlier_layers(kurt, ap.outlier_layers_k)
    tables = {
        "language": language_table(profile, kurt, outliers, evaluation[evaluation["split"] == "test"],
                                   manifest, sweep, params.corpus.reference_language),
        "layer": layer_table(kurt, profile),
        "checkpoint": checkpoint_table(summaries),
    }
    for unit, table in tables.items():
        write_csv(OUT / f"{unit}s.csv", table.reset_index(names=unit), may_be_empty=["resource_level"])
    write_csv(OUT / "components.csv", component_table(census))
    cp = params.compress
    sweep_verdicts = laaciq_verdicts(
        pd.read_csv("results/sweep/items.csv"),
        [r for r in params.hypotheses if r.kind == "laaciq_vs_aciq"], cp.bootstrap_resamples,
        params.eval.confidence, cp.seed, params.eval.ci_method)
    ledger = evaluate_ledger(params.hypotheses, tables, sweep_verdicts,
                             ap.alpha, ap.permutation_resamples, ap.bootstrap_resamples,
                             params.eval.confidence, ap.seed, holm_family=ap.holm_family)
    write_json(Path("results/hypotheses.json"), {
        "outlier_layers": outliers, "hypotheses": ledger,
        **({} if levels.complete else {"resource_level": levels.describe()})})
    write_json(Path("metrics/hypotheses.json"), {
        r["id"]: {"verdict": r["verdict"], **({"value": r["value"]} if "value" in r else {}),
                  **({"p_holm": r["p_holm"]} if "p_holm" in r else {})} for r in ledger})
    for r in ledger:
        value = f"{r['value']:+.3f}" if "value" in r else ""
        value += f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if "ci_low" in r else ""
        print(f"{r['id']:10s} {r['verdict']:12s} {value} {r.get('reason', '')}")
    if not levels.complete:
        print(f"resource level: {levels.source}; none for {levels.missing}, left out of the "
              "hypotheses on resource_level")


if __name__ == "__main__":
    run_stage("mechanisms", main)
