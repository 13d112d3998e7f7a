"""Track D on one model: D-001 to D-005 on the held-out treebank sentences, and the verdicts.

Every estimate is per treebank language and gets a sentence-cluster bootstrap CI (test sentences
resampled with replacement, the probes and trees fixed) and a one-sided bootstrap p-value; the
overlap estimates (D-005) get the hypergeometric test of Track B's EXP-034 instead. Holm runs over
the whole Track D family. Probe layers: every block output (layer 0, the embeddings, is left out
of D-001/D-002 means, since weight quantization of the blocks cannot change it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from qfair.analysis.morphology import internal_boundaries
from qfair.analysis.probes import logistic_probe
from qfair.analysis.stats import holm, verdict
from qfair.models.hooks import ComponentHooks
from qfair.models.linears import target_linears
from qfair.quant.configs import parse_config
from qfair.quant.methods.base import WeightSnapshot
from qfair.scoring.causal import pad_token_id
from qfair.treebank.boundaries import Splitter, boundary_scores, offset_cuts
from qfair.treebank.conllu import read_conllu
from qfair.treebank.heads import ablation_drops, head_overlaps
from qfair.treebank.probes import (
    edge_counts,
    feature_labels,
    fit_structural_probe,
    majority_accuracy,
    parsed_sentences,
    probe_predictions,
)
from qfair.treebank.words import (
    POOLINGS,
    EncodedSentence,
    TreebankSentence,
    WordStates,
    encode_sentence,
    item_set,
    surface_sentences,
    word_states,
)

# The surface-word scheme of each treebank language's annotation (qfair/treebank/words.py).
SCHEMES = {"he": "multiword", "tr": "inflectional_groups"}
FULL = "full_precision"


@dataclass
class Split:
    sentences: list[TreebankSentence]
    encoded: list[EncodedSentence]
    sentence_of_word: np.ndarray  # test-sentence index of every word (the bootstrap's cluster)
    states: dict[str, WordStates]  # condition (full_precision or a config) -> states


def read_split(corpus: Path, locale: str, split: str, tokenizer) -> Split:
    sentences = surface_sentences(read_conllu(corpus / "treebank" / locale / f"{split}.conllu"),
                                  SCHEMES[locale])
    encoded = [encode_sentence(tokenizer, sentence) for sentence in sentences]
    owner = np.concatenate([np.full(len(s.words), i) for i, s in enumerate(sentences)])
    return Split(sentences, encoded, owner, {})


def measure_states(model: torch.nn.Module, splits: list[Split], configs: list[str], exclude: list[str],
                   pad_id: int, batch_tokens: int, device: torch.device) -> None:
    """Word states of every split at full precision and under each config (weights restored after)."""
    items = [item_set(split.encoded, pad_id, batch_tokens) for split in splits]
    for split, its in zip(splits, items, strict=True):
        split.states[FULL] = word_states(model, split.encoded, its, device)
    snapshot = WeightSnapshot(target_linears(model, exclude))
    for name in configs:
        try:
            parse_config(name).apply(snapshot)
            for split, its in zip(splits, items, strict=True):
                split.states[name] = word_states(model, split.encoded, its, device)
        finally:
            snapshot.restore()


def _features(dev: Split, test: Split, wanted: list[str], min_words: int) -> dict[str, tuple]:
    out = {}
    for feature in wanted:
        fit, scored = feature_labels(dev.sentences, feature), feature_labels(test.sentences, feature)
        fit_mask, test_mask = fit != "", scored != ""
        if fit_mask.sum() >= min_words and test_mask.sum() >= min_words and len(set(fit[fit_mask])) > 1:
            out[feature] = (fit, fit_mask, scored, test_mask)
    return out


Cells = dict[tuple, tuple[np.ndarray, np.ndarray]]  # (feature, layer, condition key) -> (labelled, hit)


def feature_probes(locale: str, dev: Split, test: Split, td) -> tuple[pd.DataFrame, Cells]:
    """D-001/D-004 accuracy per feature, layer and condition with ``td.pooling`` (and, at full
    precision on the top layer, with the other poolings), and the per-word hits for the bootstrap."""
    rows, cells = [], {}
    n_layer = dev.states[FULL].states[td.pooling].shape[0]
    runs = [(td.pooling, layer, td.configs) for layer in range(n_layer)]
    runs += [(pooling, n_layer - 1, []) for pooling in POOLINGS if pooling != td.pooling]
    for feature, (fit, fit_mask, truth, test_mask) in _features(dev, test, td.features, td.min_words).items():
        majority = majority_accuracy(fit[fit_mask], truth[test_mask])
        for pooling, layer, configs in runs:
            def states(condition: str, split: Split, mask: np.ndarray) -> np.ndarray:
                return split.states[condition].states[pooling][layer][mask]  # noqa: B023
            predicted = probe_predictions(
                states(FULL, dev, fit_mask), fit[fit_mask],
                {FULL: states(FULL, test, test_mask),
                 **{f"transfer:{c}": states(c, test, test_mask) for c in configs}},
                td.probe_regularization, td.seed)
            for config in configs:
                predicted |= probe_predictions(states(config, dev, fit_mask), fit[fit_mask],
                                               {f"quantized:{config}": states(config, test, test_mask)},
                                               td.probe_regularization, td.seed)
            for key, labels in predicted.items():
                hits = labels == truth[test_mask]
                condition, _, config = key.partition(":")
                rows.append({"language": locale, "feature": feature, "layer": layer, "pooling": pooling,
                             "condition": condition, "config": config or "none",
                             "accuracy": float(hits.mean()), "majority_accuracy": majority,
                             "fit_words": int(fit_mask.sum()), "test_words": int(test_mask.sum())})
                if pooling == td.pooling:
                    cells[(feature, layer, key)] = (test_mask, hits)
    return pd.DataFrame(rows), cells


def structural_probes(locale: str, dev: Split, test: Split, td) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """D-002 UUAS per layer and condition, each (layer, condition key)'s per-tree edge counts, and
    the test sentence of each scored tree (the bootstrap's cluster)."""
    fit_trees, test_trees = parsed_sentences(dev.sentences), parsed_sentences(test.sentences)
    rows, counts = [], {}

    def fit(condition: str, layer: int) -> np.ndarray:
        return fit_structural_probe(dev.states[condition].states[td.pooling][layer], fit_trees,
                                    td.structural_rank, td.structural_epochs, td.structural_learning_rate,
                                    32, td.seed)

    for layer in range(dev.states[FULL].states[td.pooling].shape[0]):
        full = fit(FULL, layer)
        probes = {FULL: (full, FULL), **{f"transfer:{c}": (full, c) for c in td.configs},
                  **{f"quantized:{c}": (fit(c, layer), c) for c in td.configs}}
        for key, (probe, condition) in probes.items():
            found = edge_counts(probe, test.states[condition].states[td.pooling][layer], test_trees)
            counts[(layer, key)] = found
            kind, _, config = key.partition(":")
            rows.append({"language": locale, "layer": layer, "condition": kind, "config": config or "none",
                         "uuas": float(found[:, 0].sum() / found[:, 1].sum()), "sentences": len(test_trees)})
    owner = np.array([int(test.sentence_of_word[tree.rows[0]]) for tree in test_trees])
    return pd.DataFrame(rows), counts, owner


def boundary_table(locale: str, test: Split, splitters: dict[str, Splitter]) -> pd.DataFrame:
    """D-003 boundary scores of each tokenizer on the test words that have gold morphemes."""
    words = [(w.form, w.morphemes) for s in test.sentences for w in s.words if w.morphemes is not None]
    return pd.DataFrame([{"language": locale, "tokenizer": name, **boundary_scores(words, split)}
                         for name, split in splitters.items()])


def word_degradation(locale: str, test: Split, configs: Sequence[str]) -> pd.DataFrame:
    """Per test word with two or more gold morphemes: whether the project tokenizer's split (in
    context) crosses a gold boundary, and its NLL rise under each config in bits per byte."""
    rows, index = [], 0
    for s_index, (sentence, encoded) in enumerate(zip(test.sentences, test.encoded, strict=True)):
        for word in sentence.words:
            if word.morphemes is not None and len(word.morphemes) > 1:
                found = offset_cuts(encoded.offsets, word.start, word.end)
                gold = internal_boundaries(word.morphemes)
                size = len(word.form.encode("utf-8"))
                full = float(test.states[FULL].nll[index])
                rows.append({"language": locale, "sentence": s_index, "form": word.form,
                             "morphemes": len(word.morphemes), "bytes": size, "crossing": not gold <= found,
                             "boundary_recall": len(gold & found) / len(gold), "nll_full_precision": full,
                             **{f"degradation:{c}": (float(test.states[c].nll[index]) - full)
                                / np.log(2) / size for c in configs}})
            index += 1
    return pd.DataFrame(rows)


def cluster_bootstrap(statistic: Callable[[np.ndarray], float], clusters: int, resamples: int,
                      confidence: float, seed: int) -> dict[str, float]:
    """``statistic(weights)`` (weights: how often each test sentence is drawn; all ones is the
    sample) with a percentile CI over scipy.stats.bootstrap's resamples of sentence indices, and
    the one-sided bootstrap p-values of "the estimate is > 0" and "< 0". A resample where the
    statistic is undefined (NaN: a group with no word drawn) is left out."""
    value = statistic(np.ones(clusters))
    if not np.isfinite(value):
        return dict.fromkeys(("value", "ci_low", "ci_high", "p_greater", "p_less"), float("nan"))
    result = stats.bootstrap((np.arange(clusters),),
                             lambda drawn: statistic(np.bincount(drawn, minlength=clusters)),
                             n_resamples=resamples, confidence_level=confidence, method="percentile",
                             vectorized=False, rng=np.random.default_rng(seed))
    draws = result.bootstrap_distribution[np.isfinite(result.bootstrap_distribution)]
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"value": float(value), "ci_low": float(low), "ci_high": float(high),
            "p_greater": float((1 + np.sum(draws <= 0)) / (1 + len(draws))),
            "p_less": float((1 + np.sum(draws >= 0)) / (1 + len(draws)))}


def _mean_accuracy_gap(cells: Cells, owner: np.ndarray, plus: str,
                       minus: str) -> Callable[[np.ndarray], float]:
    """Mean over features and block layers (>= 1) of accuracy[plus] - accuracy[minus], words weighted."""
    pairs = [(cells[(f, layer, plus)], cells[(f, layer, minus)]) for (f, layer, key) in cells
             if key == plus and layer >= 1]
    if not pairs:
        raise ValueError(f"Track D: no probe cells for {plus} - {minus}")

    def statistic(weights: np.ndarray) -> float:
        w = weights[owner]
        gaps = []
        for (mask, hit_a), (_, hit_b) in pairs:
            wm = w[mask]
            gaps.append((wm @ hit_a - wm @ hit_b) / wm.sum())
        return float(np.mean(gaps))
    return statistic


def _uuas_gap(counts: dict, owner: np.ndarray, plus: str, minus: str) -> Callable[[np.ndarray], float]:
    """Mean over block layers of UUAS[plus] - UUAS[minus], trees weighted by their sentence's draws."""
    pairs = [(counts[(layer, plus)], counts[(layer, minus)]) for (layer, key) in counts
             if key == plus and layer >= 1]

    def statistic(weights: np.ndarray) -> float:
        w = weights[owner]
        return float(np.mean([(w @ a[:, 0]) / (w @ a[:, 1]) - (w @ b[:, 0]) / (w @ b[:, 1])
                              for a, b in pairs]))
    return statistic


def _crossing_gap(words: pd.DataFrame, column: str) -> Callable[[np.ndarray], float]:
    """Mean degradation of crossing words minus aligned words, words weighted by their sentence's draws."""
    crossing, values = words["crossing"].to_numpy(bool), words[column].to_numpy()
    owner = words["sentence"].to_numpy()

    def statistic(weights: np.ndarray) -> float:
        w = weights[owner]
        if w[crossing].sum() == 0 or w[~crossing].sum() == 0:
            return float("nan")  # no crossing or no aligned word drawn
        return float((w[crossing] @ values[crossing]) / w[crossing].sum()
                     - (w[~crossing] @ values[~crossing]) / w[~crossing].sum())
    return statistic


def language_estimates(cells: Cells, word_owner: np.ndarray, counts: dict, tree_owner: np.ndarray,
                       words: pd.DataFrame, n_sentences: int, td, confidence: float) -> dict[str, dict]:
    """Each estimate of a hypothesis (``TrackDHypothesis.estimate``) for one language, with its
    sentence-cluster bootstrap CI and one-sided p-values, on ``td.hypothesis_config``."""
    config = td.hypothesis_config
    quantized, transfer = f"quantized:{config}", f"transfer:{config}"
    statistics = {
        "probe_accuracy_drop": _mean_accuracy_gap(cells, word_owner, FULL, quantized),
        "retraining_gain": _mean_accuracy_gap(cells, word_owner, quantized, transfer),
        "uuas_drop": _uuas_gap(counts, tree_owner, FULL, quantized),
        "crossing_difference": _crossing_gap(words, f"degradation:{config}"),
    }
    return {name: cluster_bootstrap(statistic, n_sentences, td.bootstrap_resamples, confidence, td.seed)
            for name, statistic in statistics.items()}


def track_d_ledger(td, estimates: dict[str, dict[str, dict]], overlaps: dict[str, dict],
                   alpha: float) -> pd.DataFrame:
    """One row per hypothesis and language (D-005's overlaps: over all languages' heads), with
    Holm-adjusted p over the whole Track D family and the verdict of qfair.analysis.stats.verdict."""
    overlap_of = {"critical_outlier_overlap": "outlier_heavy",
                  "critical_sensitive_overlap": "quantization_sensitive"}
    rows = []
    for rule in td.hypotheses:
        if rule.estimate in overlap_of:
            test = overlaps[overlap_of[rule.estimate]]
            if rule.direction != "greater":
                raise ValueError(f"{rule.id}: an overlap is tested one-sided, direction greater")
            rows.append({"id": rule.id, "language": "all", "estimate": rule.estimate,
                         "value": test["odds_ratio"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
                         "p": test["p"]})
            continue
        for locale, per_name in estimates.items():
            result = per_name[rule.estimate]
            rows.append({"id": rule.id, "language": locale, "estimate": rule.estimate,
                         "value": result["value"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                         "p": result["p_greater"] if rule.direction == "greater" else result["p_less"]})
    ledger = pd.DataFrame(rows)
    # an undefined estimate (NaN: e.g. no aligned word) is INCONCLUSIVE and not in Holm's family
    defined = np.isfinite(ledger["p"].to_numpy())
    ledger["p_holm"] = np.nan
    ledger.loc[defined, "p_holm"] = holm(ledger.loc[defined, "p"].to_numpy())
    rules = {rule.id: rule for rule in td.hypotheses}
    ledger.insert(1, "statement", [rules[i].statement for i in ledger["id"]])
    ledger["threshold"] = [rules[i].threshold for i in ledger["id"]]
    ledger["direction"] = [rules[i].direction for i in ledger["id"]]
    ledger["config"] = td.hypothesis_config
    ledger["verdict"] = [verdict(r.value, r.ci_low, r.ci_high, r.p_holm, r.threshold, r.direction, alpha)
                         for r in ledger.itertuples()]
    return ledger


@dataclass
class TrackDRun:
    features: pd.DataFrame  # D-001/D-004 accuracy per language, feature, layer, pooling, condition
    structural: pd.DataFrame  # D-002 UUAS per language, layer, condition
    boundaries: pd.DataFrame  # D-003 boundary P/R/F1 per language and tokenizer
    words: pd.DataFrame  # D-003 per multi-morpheme test word: crossing and degradation
    head_drops: pd.DataFrame  # D-005 per language, head and feature
    heads: pd.DataFrame  # D-005 per head: mean drop, critical, Track B flags
    ledger: pd.DataFrame


def head_split(test: Split, sentences: int) -> Split:
    """The first ``sentences`` test sentences (D-005 reruns the model once per head)."""
    words = sum(len(s.words) for s in test.sentences[:sentences])
    return Split(test.sentences[:sentences], test.encoded[:sentences], test.sentence_of_word[:words],
                 {name: WordStates({p: v[:, :words] for p, v in ws.states.items()}, ws.nll[:words])
                  for name, ws in test.states.items()})


def head_readers(dev: Split, test: Split, td, layer: int) -> dict[str, Callable[[np.ndarray], float]]:
    """D-005: the full-precision probe of each feature at ``layer``, as a scorer of test states."""
    readers = {}
    for feature, (fit, fit_mask, truth, test_mask) in _features(dev, test, td.features, td.min_words).items():
        probe_fit = dev.states[FULL].states[td.pooling][layer][fit_mask]
        probe = logistic_probe(td.probe_regularization, td.seed).fit(probe_fit, fit[fit_mask])
        readers[feature] = (lambda states, p=probe, m=test_mask, t=truth[test_mask]:
                            float(np.mean(p.predict(states[m]) == t)))
    return readers


def run_track_d(model: torch.nn.Module, tokenizer, corpus: Path, td, exclude: list[str],
                splitters: dict[str, Splitter], head_flags: dict[str, pd.Series], alpha: float,
                confidence: float, device: torch.device) -> TrackDRun:
    """Track D on ``model`` (full precision; each config applied and undone in turn)."""
    pad_id = pad_token_id(tokenizer)
    hooks = ComponentHooks(model, model.config.num_attention_heads)
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in ("features", "structural", "boundaries",
                                                                   "words", "head_drops")}
    estimates = {}
    for locale in sorted(p.name for p in (corpus / "treebank").iterdir() if p.is_dir()):
        if locale not in SCHEMES:
            raise ValueError(f"{corpus / 'treebank' / locale}: no surface-word scheme for {locale} "
                             f"(qfair.treebank.run.SCHEMES knows {sorted(SCHEMES)})")
        dev, test = (read_split(corpus, locale, split, tokenizer) for split in ("dev", "test"))
        measure_states(model, [dev, test], td.configs, exclude, pad_id, td.batch_tokens, device)
        features, cells = feature_probes(locale, dev, test, td)
        structural, counts, tree_owner = structural_probes(locale, dev, test, td)
        words = word_degradation(locale, test, td.configs)
        estimates[locale] = language_estimates(cells, test.sentence_of_word, counts, tree_owner, words,
                                               len(test.sentences), td, confidence)
        top = dev.states[FULL].states[td.pooling].shape[0] - 1
        head_test = head_split(test, td.head_sentences)
        readers = head_readers(dev, head_test, td, top)
        head_items = item_set(head_test.encoded, pad_id, td.batch_tokens)

        def states_of(split=head_test, items=head_items, top=top) -> np.ndarray:
            return word_states(model, split.encoded, items, device, (td.pooling,)).states[td.pooling][top]

        drops = ablation_drops(model, hooks, head_items, states_of, readers, device)
        drops.insert(0, "language", locale)
        for name, table in (("features", features), ("structural", structural),
                            ("boundaries", boundary_table(locale, test, splitters)), ("words", words),
                            ("head_drops", drops)):
            tables[name].append(table)
    joined = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
    heads, overlaps = head_overlaps(joined["head_drops"], head_flags, td.head_fraction, confidence)
    return TrackDRun(**joined, heads=heads, ledger=track_d_ledger(td, estimates, overlaps, alpha))


def track_d_metrics(run: TrackDRun, td) -> dict:
    """``metrics/track_d.json``: per language, the probes' mean accuracy over features and block
    layers per condition, the best layer's UUAS per condition, each tokenizer's boundary F1, and
    the verdicts."""
    features = run.features[(run.features["pooling"] == td.pooling) & (run.features["layer"] >= 1)]
    structural = run.structural[run.structural["layer"] >= 1]
    out: dict = {"run": True, "pooling": td.pooling, "hypothesis_config": td.hypothesis_config,
                 "languages": {}}
    for locale in sorted(run.features["language"].unique()):
        accuracy = (features[features["language"] == locale].groupby(["condition", "config"])["accuracy"]
                    .mean())
        uuas = structural[structural["language"] == locale].groupby(["condition", "config"])["uuas"].max()
        f1 = run.boundaries[run.boundaries["language"] == locale].set_index("tokenizer")["f1"]
        out["languages"][locale] = {
            "probe_accuracy": {f"{c}:{k}" if k != "none" else c: float(v) for (c, k), v in accuracy.items()},
            "best_layer_uuas": {f"{c}:{k}" if k != "none" else c: float(v) for (c, k), v in uuas.items()},
            "boundary_f1": {name: None if pd.isna(v) else float(v) for name, v in f1.items()},
            "multi_morpheme_test_words": int((run.words["language"] == locale).sum()),
        }
    out["verdicts"] = {f"{r.id}:{r.language}": r.verdict for r in run.ledger.itertuples()}
    return out
