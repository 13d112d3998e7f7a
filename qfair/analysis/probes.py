"""B-002: does quantization damage what a probe reads? Language-ID probes per layer.

Each item of Track B's item set is one vector per layer: the mean of its hidden states over real
tokens (layer 0 is the embedding output; :func:`qfair.analysis.patching.pooled_hidden_states`). A multinomial
logistic probe (scikit-learn; standardised features) predicts the item's language from that vector,
cross-validated with folds grouped by parallel item id, so every language of one verse is held out
together and a probe cannot match a translation it saw in training.

Three conditions of the same folds and items:

- ``full_precision``: probe trained and tested on full-precision states;
- ``quantized``: trained and tested on the quantized model's states (what a probe can still read);
- ``transfer``: trained on full-precision states, tested on quantized ones (how far quantization
  moves the representation a full-precision reader relies on).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CONDITIONS = ("full_precision", "quantized", "transfer")


def logistic_probe(regularization: float, seed: int):
    """A standardised L2 logistic-regression probe (Track B's B-002 and Track D's D-001)."""
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=regularization, max_iter=2000, random_state=seed))


def language_id_probes(full_precision: np.ndarray, quantized: np.ndarray, languages: np.ndarray,
                       groups: np.ndarray, folds: int, regularization: float, seed: int) -> pd.DataFrame:
    """Out-of-fold language-ID accuracy per layer, language and condition (:data:`CONDITIONS`).

    ``full_precision`` and ``quantized`` are ``[layer, item, hidden]`` states of the same items;
    ``languages`` labels each item, ``groups`` its parallel id (the fold unit).
    """
    if full_precision.shape != quantized.shape:
        raise ValueError(f"B-002: full-precision states {full_precision.shape} and quantized states "
                         f"{quantized.shape} differ in shape")
    n_groups = len(np.unique(groups))
    if not 2 <= folds <= n_groups:
        raise ValueError(f"interpretability.probe_folds is {folds}; it must be between 2 and the "
                         f"number of parallel items ({n_groups})")
    splits = list(GroupKFold(n_splits=folds).split(full_precision[0], languages, groups))
    rows = []
    for layer in range(full_precision.shape[0]):
        predicted = {name: np.empty(len(languages), dtype=languages.dtype) for name in CONDITIONS}
        for train, test in splits:
            reader = logistic_probe(regularization, seed).fit(full_precision[layer][train], languages[train])
            predicted["full_precision"][test] = reader.predict(full_precision[layer][test])
            predicted["transfer"][test] = reader.predict(quantized[layer][test])
            retrained = logistic_probe(regularization, seed).fit(quantized[layer][train], languages[train])
            predicted["quantized"][test] = retrained.predict(quantized[layer][test])
        for condition, labels in predicted.items():
            correct = pd.Series(labels == languages).groupby(languages).mean()
            rows += [{"layer": layer, "language": language, "condition": condition,
                      "accuracy": float(accuracy)} for language, accuracy in correct.items()]
    return pd.DataFrame(rows)


def probe_accuracy_drop(probes: pd.DataFrame) -> pd.Series:
    """Per language: full-precision minus quantized accuracy, averaged over the transformer layers
    (layer 0, the embeddings, is left out: weight quantization of the blocks cannot reach it)."""
    wide = probes[probes["layer"] > 0].pivot_table(index="language", columns="condition",
                                                   values="accuracy", aggfunc="mean")
    return (wide["full_precision"] - wide["quantized"]).rename("probe_accuracy_drop")


def probe_summary(probes: pd.DataFrame) -> dict:
    """Mean accuracy over languages per condition at the layer where full-precision probes peak
    (the shallowest such layer), and averaged over the transformer layers."""
    by_layer = probes.pivot_table(index="layer", columns="condition", values="accuracy", aggfunc="mean")
    best = int(by_layer["full_precision"].idxmax())
    blocks = by_layer.loc[by_layer.index > 0]
    return {"best_layer": best,
            **{f"{condition}_accuracy_best_layer": float(by_layer.loc[best, condition])
               for condition in CONDITIONS},
            **{f"{condition}_accuracy_mean": float(blocks[condition].mean()) for condition in CONDITIONS}}
