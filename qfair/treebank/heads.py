"""D-005: heads whose mean ablation most lowers the D-001 probes' accuracy, and their overlap with
Track B's outlier-heavy and quantization-sensitive heads.

A head is mean-ablated (its value replaced by its mean over the test sentences' tokens, Track B's
B-003 intervention) and the full-precision probes of the top layer read the ablated states; the
drop is full-precision accuracy minus ablated accuracy. The top layer sees every head's effect.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from qfair.analysis.heads import overlap_test, top_heads
from qfair.analysis.patching import ItemSet, constant_value, mean_values
from qfair.models.hooks import ComponentHooks


def ablation_drops(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet,
                   states_of: Callable[[], np.ndarray], readers: dict[str, Callable[[np.ndarray], float]],
                   device: torch.device) -> pd.DataFrame:
    """Per head and feature: accuracy of each reader on the unablated states minus on the states
    with that head mean-ablated. ``states_of`` computes the top layer's word states under the
    current hooks; ``readers`` map a feature to a scorer of such states."""
    heads = hooks.heads()
    means = mean_values(model, hooks, items, heads, device)
    base = states_of()
    reference = {feature: read(base) for feature, read in readers.items()}
    rows = []
    for head in tqdm(heads, desc="D-005 head ablation", mininterval=5):
        with hooks.replace({head: constant_value(means[head])}):
            ablated = states_of()
        for feature, read in readers.items():
            accuracy = read(ablated)
            rows.append({"layer": head.layer, "head": head.head, "feature": feature,
                         "accuracy": reference[feature], "ablated_accuracy": accuracy,
                         "accuracy_drop": reference[feature] - accuracy})
    return pd.DataFrame(rows)


def head_overlaps(drops: pd.DataFrame, others: dict[str, pd.Series], top_fraction: float,
                  confidence: float) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The per-head table (mean drop over languages and features, ``critical``: in the top
    ``top_fraction``) joined with each boolean head property of ``others`` (indexed by
    (layer, head)), and the overlap test of ``critical`` with each."""
    heads = drops.groupby(["layer", "head"], as_index=False)["accuracy_drop"].mean()
    heads["critical"] = top_heads(heads, "accuracy_drop", top_fraction)
    tests = {}
    for name, flags in others.items():
        heads[name] = [bool(flags.get((int(layer), int(head)), False))
                       for layer, head in heads[["layer", "head"]].to_numpy()]
        tests[name] = overlap_test(heads["critical"].to_numpy(), heads[name].to_numpy(), confidence)
    return heads, tests


def flagged_heads(table: pd.DataFrame, column: str, top_fraction: float) -> pd.Series:
    """(layer, head) -> True for the top ``top_fraction`` of ``table`` by ``column``."""
    flags = top_heads(table, column, top_fraction)
    return pd.Series(flags.to_numpy(), index=pd.MultiIndex.from_frame(table[["layer", "head"]].astype(int)))


def sensitive_heads(mediation: pd.DataFrame, top_fraction: float) -> pd.Series:
    """Track B's quantization-sensitive heads: the top fraction by B-005's median recovered share
    over languages (restoring the head undoes most of quantization's damage)."""
    per_head = (mediation[mediation["kind"] == "head"].groupby(["layer", "head"], as_index=False)
                ["recovered_share"].median())
    return flagged_heads(per_head.fillna({"recovered_share": -np.inf}), "recovered_share", top_fraction)


def outlier_flags(census_heads: pd.DataFrame, top_fraction: float) -> pd.Series:
    """EXP-034's outlier-heavy heads (output-projection slice kurtosis), as (layer, head) flags."""
    return flagged_heads(census_heads, "excess_kurtosis", top_fraction)

