"""Per-unit tables for Track A's mechanism analyses (EXP-007/008, 022/026, 024, 027, 030, 033).

Outlier layers are chosen from the weights alone (top-k layers by their largest matrix kurtosis)
before any degradation is looked at; each language's use of them comes from the activation
profile; its degradation from the compression sweep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qfair.analysis.census import MATRIX_COMPONENTS


def layer_kurtosis(census: pd.DataFrame) -> pd.DataFrame:
    """Per layer of one model: largest kurtosis over all / attention / MLP weight matrices."""
    weights = census[(census["kind"] == "weight") & census["component"].isin(MATRIX_COMPONENTS)
                     & census["layer"].notna()].copy()
    weights["layer"] = weights["layer"].astype(int)
    weights["group"] = np.where(weights["component"].str.startswith("attn_"), "attn", "mlp")
    table = weights.pivot_table(index="layer", columns="group", values="excess_kurtosis", aggfunc="max")
    table = table.rename(columns={"attn": "attn_kurtosis", "mlp": "mlp_kurtosis"})
    table["max_kurtosis"] = table[["attn_kurtosis", "mlp_kurtosis"]].max(axis=1)
    table["layer_index"] = table.index.astype(float)
    return table


def outlier_layers(layers: pd.DataFrame, k: int) -> list[int]:
    """The k layers with the largest weight kurtosis (ties broken by lower index)."""
    ranked = layers.sort_values(["max_kurtosis", "layer_index"], ascending=[False, True])
    return [int(layer) for layer in ranked.index[:k]]


def layer_table(layers: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """Layer kurtosis joined with activation means over languages (EXP-030's units)."""
    means = profile.groupby("layer")[["sink_mass", "attn_out_norm", "mlp_out_norm"]].mean()
    return layers.join(means, how="inner")


def language_table(profile: pd.DataFrame, layers: pd.DataFrame, outliers: list[int],
                   eval_test: pd.DataFrame, manifest: dict, sweep: pd.DataFrame,
                   reference: str) -> pd.DataFrame:
    """One row per language with every metric the ledger's language hypotheses may name."""
    usage = profile.assign(block=profile["attn_out_norm"] + profile["mlp_out_norm"])
    usage = usage.pivot(index="language", columns="layer", values="block")
    share = usage / usage.to_numpy().sum(axis=1, keepdims=True)
    kurtosis = layers["max_kurtosis"].reindex(usage.columns).to_numpy()
    table = pd.DataFrame(index=usage.index)
    table["outlier_layer_share"] = share[outliers].sum(axis=1)
    table["effective_kurtosis"] = share.to_numpy() @ kurtosis
    test = eval_test.set_index("language")
    table["baseline_bpb"] = test["bits_per_byte"]
    table["tokens_per_byte"] = test["tokens_per_byte"]
    table["token_premium"] = test["tokens"] / test.loc[reference, "tokens"]
    table["resource_level"] = [manifest[lang]["resource_level"] for lang in table.index]
    table["script_latin"] = [float(manifest[lang]["script"] == "Latn") for lang in table.index]
    rel = sweep.pivot(index="language", columns="config", values="rel_degradation")
    rel.columns = [f"rel_degradation:{c}" for c in rel.columns]
    return table.join(rel, how="inner")


def checkpoint_table(summaries: dict) -> pd.DataFrame:
    """Max kurtosis per training checkpoint, by step (empty for a model with no checkpoints)."""
    rows = [{"checkpoint": name, "step": float(s["step"]), "max_kurtosis": s["max_kurtosis"]}
            for name, s in summaries.items() if "step" in s]
    table = pd.DataFrame(rows, columns=["checkpoint", "step", "max_kurtosis"])
    return table.set_index("checkpoint").sort_values("step")


def component_table(census: pd.DataFrame) -> pd.DataFrame:
    """EXP-022/026: kurtosis by component (weights only), per model."""
    weights = census[census["kind"] == "weight"]
    grouped = weights.groupby(["model", "component"])["excess_kurtosis"]
    return grouped.agg(["mean", "max", "count"]).reset_index()
