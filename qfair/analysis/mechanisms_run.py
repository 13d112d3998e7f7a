"""The mechanisms stage's work: Track A's per-unit tables and the hypothesis ledger.

A language's resource level comes from the corpus manifest (embedded) or the hub model's
published pretraining shares (paper, qfair.analysis.resource). A language without one has an
empty resource_level cell in languages.csv and is left out of the hypotheses that use it (the
ledger's record lists it under ``left_out``); every other hypothesis keeps every language.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from qfair import paths
from qfair.analysis.heads import outlier_heads
from qfair.analysis.ledger import evaluate_ledger
from qfair.analysis.mechanisms import (
    checkpoint_table,
    component_table,
    language_table,
    layer_kurtosis,
    layer_table,
    outlier_layers,
)
from qfair.analysis.resource import ResourceLevels, resource_levels
from qfair.io import read_json

ACTIVATION_METRICS = ("act_kurtosis_mean", "act_channel_max_over_median_mean")  # joined for EXP-035


@dataclass
class MechanismsRun:
    tables: dict[str, pd.DataFrame]  # per unit: language, layer, checkpoint
    components: pd.DataFrame
    outliers: list[int]
    ledger: list[dict]
    levels: ResourceLevels


def run_mechanisms(params) -> MechanismsRun:
    """Read the census, activation profile, sweep (tables, config comparisons) and evaluation outputs;
    tables and ledger."""
    ap = params.analysis
    census = pd.read_csv(paths.CENSUS / "tensors.csv")
    census["layer"] = census["layer"].astype("Int64")
    summaries = read_json(paths.CENSUS / "summary.json")
    profile = pd.read_csv(paths.ACTIVATIONS / "layers.csv")
    sweep = pd.read_csv(paths.SWEEP / "per_language.csv")
    evaluation = pd.read_csv(paths.EVAL / "per_language.csv")
    manifest = read_json(paths.CORPUS_MANIFEST)["languages"]
    levels = resource_levels(params, manifest)
    # language_table reads script and resource_level from here; NaN marks "no resource level"
    manifest = {lang: {**entry, "resource_level": levels.level_or_nan(lang)}
                for lang, entry in manifest.items()}
    missing = sorted(set(profile["language"]) - set(sweep["language"]))
    if missing:
        raise ValueError(f"languages {missing} are in the activation profile but missing from the sweep")

    interpretability = interpretability_tables(params.interpretability.outlier_head_fraction)
    kurt = layer_kurtosis(census[census["model"] == "final"])
    outliers = outlier_layers(kurt, ap.outlier_layers_k)
    tables = {
        "language": language_table(profile, kurt, outliers, evaluation[evaluation["split"] == "test"],
                                   manifest, sweep, params.corpus.reference_language),
        "layer": layer_table(kurt, profile),
        "checkpoint": checkpoint_table(summaries),
        "head": interpretability["head"],
    }
    tables["language"] = tables["language"].join(interpretability["language"], validate="one_to_one")
    # EXP-035: how heavy-tailed each language's layer inputs are (the activation stage's summary)
    inputs = pd.read_csv(paths.INPUT_OUTLIERS_LANGUAGES).set_index("language")
    tables["language"] = tables["language"].join(inputs[list(ACTIVATION_METRICS)], validate="one_to_one")
    comparisons = pd.read_csv(paths.SWEEP_COMPARISONS)  # the compare_configs stage's statistics
    ledger = evaluate_ledger(params.hypotheses, tables, comparisons,
                             ap.alpha, ap.permutation_resamples, ap.bootstrap_resamples,
                             params.eval.confidence, ap.seed, holm_family=ap.holm_family)
    return MechanismsRun(tables, component_table(census), outliers, ledger, levels)


def interpretability_tables(outlier_head_fraction: float) -> dict[str, pd.DataFrame]:
    """Track B's per-head table (B-001 class, census outlier flag) and per-language sensitivity."""
    specificity = pd.read_csv(paths.INTERPRETABILITY / "head_specificity.csv")
    census_heads = pd.read_csv(paths.CENSUS / "attention_heads.csv")
    census_heads["outlier_head"] = outlier_heads(census_heads, outlier_head_fraction).astype(float)
    heads = specificity[["layer", "head", "class"]].merge(
        census_heads[["layer", "head", "excess_kurtosis", "outlier_head"]], on=["layer", "head"],
        validate="one_to_one")
    if len(heads) != len(specificity):
        raise ValueError("interpretability: head_specificity.csv and census attention_heads.csv "
                         "list different heads")
    heads["language_specific"] = (heads["class"] == "specific").astype(float)
    # one row per head, indexed by its component name (L<layer>.head<h>); written as heads.csv
    heads.index = pd.Index([f"L{layer}.head{head}" for layer, head in heads[["layer", "head"]].to_numpy()],
                           name="component")
    heads = heads.rename(columns={"layer": "layer_index", "head": "head_index"})
    languages = pd.read_csv(paths.INTERPRETABILITY / "languages.csv").set_index("language")
    # probe_accuracy_drop: only where the profile runs B-002
    per_language = [c for c in ("ablation_sensitivity", "probe_accuracy_drop") if c in languages]
    return {"head": heads, "language": languages[per_language]}


def ledger_metrics(ledger: list[dict]) -> dict:
    """``metrics/hypotheses.json``: verdict, estimate and Holm p per hypothesis."""
    return {r["id"]: {"verdict": r["verdict"], **({"value": r["value"]} if "value" in r else {}),
                      **({"p_holm": r["p_holm"]} if "p_holm" in r else {})} for r in ledger}
