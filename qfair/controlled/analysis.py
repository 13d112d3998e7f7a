"""The controlled family's tables, estimates and verdicts, from the runs' committed results.

Reads each run folder (``controlled/runs/<name>``: its manifest, training metrics, evaluation,
sweep, weight census and activation outliers) and returns:

- ``runs``: one row per run (what it was, its parameters, dev loss, maximum weight and activation
  excess kurtosis, and per config the mean, range and resource correlation of rho);
- ``languages``: one row per (run, language, config): realised share, baseline bpb, rho;
- ``slopes``: EXP-001c's slopes on log share per target language and pooled;
- ``spread``: the seed-to-seed spread of every run-level number (replicate runs only);
- the ledger: each pre-registered hypothesis of controlled/params.yaml with its estimate, CI
  and verdict (:data:`ESTIMATES` names what each estimate is).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from qfair.analysis.stats import NOT_RUN, verdict
from qfair.controlled.design import FamilyError, FamilySpec, RunPlan, run_plans
from qfair.controlled.slopes import X, adjusted_slope, language_slopes, pooled_slope, t_interval
from qfair.io import read_json

ESTIMATES = {  # by kind; a hypothesis' estimate is "<kind>:<config or metric>"
    "slope_rho": "mean over target languages and seeds of the OLS slope of rho on ln share "
                          "(share runs; two-way bootstrap CI over languages and seeds)",
    "slope_rho_given_bpb": "the ln-share coefficient of rho ~ ln share + baseline bpb + language "
                                    "(share runs; same bootstrap)",
    "dropout_effect": "mean paired difference dropout 0.1 minus dropout 0 (same size and seed); "
                               "t interval over pairs",
    "size_slope": "OLS slope of the metric on ln parameters over the dropout-0 model runs; "
                           "t interval (n - 2 df)",
}
RUN_METRICS = ("max_weight_kurtosis", "max_act_kurtosis", "mean_act_kurtosis", "dev_loss",
               "mean_baseline_bpb")


def _max_weight_kurtosis(path: Path) -> float:
    census = pd.read_csv(path)
    final = census[(census["model"] == "final") & (census["kind"] == "weight")]
    return float(final["excess_kurtosis"].max())


def read_run(plan: RunPlan, folder: Path, configs: list[str]) -> tuple[dict, pd.DataFrame]:
    """One run's row and its (language, config) rows; errors name the missing file."""
    try:
        manifest = read_json(folder / "data/corpus/manifest.json")["languages"]
        train = read_json(folder / "metrics/train.json")
        evaluation = pd.read_csv(folder / "results/eval/per_language.csv")
        sweep = pd.read_csv(folder / "results/sweep/per_language.csv")
        activations = pd.read_csv(folder / "results/activations/input_outliers_languages.csv")
        weight_kurtosis = _max_weight_kurtosis(folder / "results/census/tensors.csv")
    except FileNotFoundError as error:
        raise FamilyError(f"run {plan.name}: {error.filename} missing (has the run been run and "
                          "committed? docs/controlled.md)") from None
    test = evaluation[evaluation["split"] == "test"].set_index("language")
    rows = []
    for config in configs:
        per_config = sweep[sweep["config"] == config].set_index("language")
        if per_config.empty:
            raise FamilyError(f"run {plan.name}: config {config} not in its sweep")
        for lang, entry in manifest.items():
            rows.append({"run": plan.name, "kind": plan.kind, "size": plan.size, "dropout": plan.dropout,
                         "seed": plan.seed, "rotation": plan.rotation, "language": lang,
                         "target": bool(plan.target_shares and lang in plan.target_shares),
                         "train_share": entry["train_share"], X: math.log(entry["train_share"]),
                         "baseline_bpb": float(test.loc[lang, "bits_per_byte"]), "config": config,
                         "rho": float(per_config.loc[lang, "rel_degradation"])})
    languages = pd.DataFrame(rows)
    run = {"run": plan.name, "kind": plan.kind, "size": plan.size, "dropout": plan.dropout,
           "seed": plan.seed, "rotation": plan.rotation, "parameters": int(train["parameters"]),
           "tokens_seen": int(train["tokens_seen"]), "epochs": float(train["epochs"]),
           "dev_loss": float(train["final_dev_loss"]), "max_weight_kurtosis": weight_kurtosis,
           "max_act_kurtosis": float(activations["act_kurtosis_max"].max()),
           "mean_act_kurtosis": float(activations["act_kurtosis_mean"].mean()),
           "mean_baseline_bpb": float(test["bits_per_byte"].mean())}
    for config, g in languages.groupby("config", sort=False):
        run[f"mean_rho:{config}"] = float(g["rho"].mean())
        run[f"range_rho:{config}"] = float(g["rho"].max() - g["rho"].min())
        run[f"resource_spearman:{config}"] = float(sps.spearmanr(g[X], g["rho"]).statistic)
    return run, languages


def gather(spec: FamilySpec, runs_folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every committed run's row and every (run, language, config) row (``spec.runs`` only)."""
    rows, languages = [], []
    for plan in [plan for plan in run_plans(spec) if plan.name in spec.runs]:
        run, per_language = read_run(plan, runs_folder / plan.name, spec.configs)
        rows.append(run)
        languages.append(per_language)
    return pd.DataFrame(rows), pd.concat(languages, ignore_index=True)


def complete_seeds(spec: FamilySpec, languages: pd.DataFrame) -> list[int]:
    """The seeds whose every designed rotation of the square is committed (the balanced part)."""
    shares = languages[languages["kind"] == "share"]
    if shares.empty:
        return []
    rotations = len(spec.shares.levels)
    per_seed = shares.groupby("seed")["rotation"].nunique()
    return sorted(int(seed) for seed, count in per_seed.items() if count == rotations)


def share_slopes(spec: FamilySpec, languages: pd.DataFrame) -> pd.DataFrame:
    """EXP-001c: per target language and pooled, the slopes of rho (each config) and of baseline
    bpb on ln share, and rho's slope holding baseline bpb fixed (pooled only); on the seeds with
    every rotation committed. Empty when fewer than two seeds are."""
    seeds = complete_seeds(spec, languages)
    if len(seeds) < 2:
        return pd.DataFrame(columns=["outcome", "language", "estimator", "slope", "ci_low", "ci_high",
                                     "seed_sd", "seeds"])
    targets = languages[(languages["kind"] == "share") & languages["target"] & languages["seed"].isin(seeds)]
    boot = dict(resamples=spec.bootstrap_resamples, confidence=spec.confidence, seed=spec.seed)
    out = []
    outcomes = [(f"rho:{config}", targets[targets["config"] == config], "rho") for config in spec.configs]
    outcomes.append(("baseline_bpb", targets[targets["config"] == spec.configs[0]], "baseline_bpb"))
    for name, rows, column in outcomes:
        per_language = language_slopes(rows, column, spec.confidence)
        out += [{"outcome": name, "language": r.language, "estimator": "mean seed slope, t over seeds",
                 "slope": r.slope, "ci_low": r.ci_low, "ci_high": r.ci_high, "seed_sd": r.seed_sd}
                for r in per_language.itertuples()]
        value, low, high = pooled_slope(rows, column, **boot)
        out.append({"outcome": name, "language": "pooled",
                    "estimator": "mean slope, bootstrap languages x seeds",
                    "slope": value, "ci_low": low, "ci_high": high, "seed_sd": float("nan")})
        if column == "rho":
            value, low, high = adjusted_slope(rows, column, "baseline_bpb", **boot)
            out.append({"outcome": f"{name}|baseline_bpb", "language": "pooled",
                        "estimator": "fixed effects, bootstrap languages x seeds",
                        "slope": value, "ci_low": low, "ci_high": high, "seed_sd": float("nan")})
    return pd.DataFrame(out).assign(seeds=len(seeds))


def _effect_metrics(runs: pd.DataFrame) -> list[str]:
    """The run-level numbers the dropout and size comparisons report."""
    return [*RUN_METRICS, *[c for c in runs.columns if c.startswith(("mean_rho:", "range_rho:"))]]


def dropout_effects(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """EXP-023: per metric, dropout 0.1 minus dropout 0 paired by (size, seed), mean and t CI."""
    models = runs[runs["kind"] == "model"]
    on = models[models["dropout"] > 0].set_index(["size", "seed"])
    off = models[models["dropout"] == 0].set_index(["size", "seed"])
    pairs = on.index.intersection(off.index)
    if len(pairs) == 0:
        return pd.DataFrame(columns=["metric", "pairs", "effect", "ci_low", "ci_high", "with_dropout",
                                     "without_dropout"])
    out = []
    for metric in _effect_metrics(runs):
        diffs = (on.loc[pairs, metric] - off.loc[pairs, metric]).to_numpy(float)
        value, low, high = (float(v) for v in t_interval(diffs, confidence))
        out.append({"metric": metric, "pairs": len(pairs), "effect": value, "ci_low": low, "ci_high": high,
                    "with_dropout": float(on.loc[pairs, metric].mean()),
                    "without_dropout": float(off.loc[pairs, metric].mean())})
    return pd.DataFrame(out)


def size_slopes(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """EXP-025: per metric, the OLS slope on ln parameters over the dropout-0 model runs."""
    models = runs[(runs["kind"] == "model") & (runs["dropout"] == 0)]
    if models["size"].nunique() < 3:
        return pd.DataFrame(columns=["metric", "runs", "sizes", "slope", "ci_low", "ci_high"])
    x = np.log(models["parameters"].to_numpy(float))
    out = []
    for metric in _effect_metrics(runs):
        fit = sps.linregress(x, models[metric].to_numpy(float))
        n = len(x)
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 2) * fit.stderr) if n > 2 else float("nan")
        out.append({"metric": metric, "runs": n, "sizes": models["size"].nunique(), "slope": float(fit.slope),
                    "ci_low": float(fit.slope) - half, "ci_high": float(fit.slope) + half})
    return pd.DataFrame(out)


def seed_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run-level number: its pooled within-cell seed SD over replicate runs (same design cell,
    other seed), beside the spread between cells, so each number can be read against its noise."""
    cell = runs["kind"] + ":" + runs["size"] + ":" + runs["dropout"].astype(str) + ":" + \
        runs["rotation"].fillna(-1).astype(int).astype(str)
    replicated = runs.assign(cell=cell).groupby("cell").filter(lambda g: len(g) > 1)
    metrics = [c for c in runs.columns if c.startswith(("mean_rho:", "range_rho:", "resource_spearman:"))]
    out = []
    if replicated.empty:  # no cell has two seeds yet: no spread to report
        return pd.DataFrame(columns=["metric", "cells", "replicate_runs", "mean", "seed_sd", "seed_cv"])
    for metric in [*RUN_METRICS, *metrics]:
        groups = replicated.groupby("cell")[metric]
        variances, sizes = groups.var(ddof=1), groups.size()
        pooled = float(np.sqrt(((sizes - 1) * variances).sum() / (sizes - 1).sum()))
        out.append({"metric": metric, "cells": len(sizes), "replicate_runs": int(sizes.sum()),
                    "mean": float(replicated[metric].mean()), "seed_sd": pooled,
                    "seed_cv": pooled / abs(float(replicated[metric].mean()))})
    return pd.DataFrame(out)


def estimate(name: str, slopes: pd.DataFrame, dropout: pd.DataFrame, sizes: pd.DataFrame) -> dict:
    """The value and CI a hypothesis' ``estimate`` names (:data:`ESTIMATES`)."""
    kind, _, arg = name.partition(":")
    if kind == "slope_rho":
        row = slopes[(slopes["outcome"] == f"rho:{arg}") & (slopes["language"] == "pooled")]
    elif kind == "slope_rho_given_bpb":
        row = slopes[(slopes["outcome"] == f"rho:{arg}|baseline_bpb") & (slopes["language"] == "pooled")]
    elif kind == "dropout_effect":
        row = dropout[dropout["metric"] == arg].rename(columns={"effect": "slope"})
    elif kind == "size_slope":
        row = sizes[sizes["metric"] == arg]
    else:
        raise FamilyError(f"hypotheses: unknown estimate {name!r} (known: {sorted(ESTIMATES)})")
    if len(row) != 1:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    r = row.iloc[0]
    return {"value": float(r["slope"]), "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"])}


def needed_runs(spec: FamilySpec, estimate_name: str) -> list[str]:
    """The design's runs an estimate needs: the share runs; the dropout-0 model runs (sizes); or
    the model runs of the (size, seed) cells designed with and without dropout (dropout pairs)."""
    kind = estimate_name.partition(":")[0]
    plans = run_plans(spec)
    if kind.startswith("slope_rho"):
        return [p.name for p in plans if p.kind == "share"]
    models = [p for p in plans if p.kind == "model"]
    if kind == "size_slope":
        return [p.name for p in models if p.dropout == 0]
    with_dropout = {(p.size, p.seed) for p in models if p.dropout > 0}
    without = {(p.size, p.seed) for p in models if p.dropout == 0}
    return [p.name for p in models if (p.size, p.seed) in with_dropout & without]


def ledger(spec: FamilySpec, slopes: pd.DataFrame, dropout: pd.DataFrame, sizes: pd.DataFrame) -> list[dict]:
    """Each pre-registered hypothesis with its estimate, CI and verdict.

    The rule is the CI's: these designed comparisons have no p-value, so ``verdict`` gets p = 0
    and the CI alone decides. A hypothesis whose runs are not all committed gets NOT RUN, naming
    the pending runs, with the interim estimate on the committed part (if there is one).
    """
    out = []
    for h in spec.hypotheses:
        result = estimate(h.estimate, slopes, dropout, sizes)
        pending = [name for name in needed_runs(spec, h.estimate) if name not in spec.runs]
        entry = {"id": h.id, "statement": h.statement, "kind": "controlled", "estimate": h.estimate,
                 "estimator": ESTIMATES[h.estimate.partition(":")[0]],
                 "direction": h.direction, "threshold": h.threshold, "confidence": spec.confidence}
        if pending:
            entry |= {"verdict": NOT_RUN, "pending_runs": pending,
                      "reason": f"{len(pending)} of its runs are pending a GPU session"}
            if np.isfinite(result["value"]):  # an interim estimate on the committed part
                entry |= {f"interim_{key}": value for key, value in result.items()}
        elif not np.isfinite(result["value"]):
            raise FamilyError(f"{h.id}: every run is committed but {h.estimate} could not be estimated")
        else:
            entry |= {**result, "verdict": verdict(result["value"], result["ci_low"], result["ci_high"],
                                                   0.0, h.threshold, h.direction)}
        out.append(entry)
    return out
