"""Slope estimators of the controlled family (EXP-001c), with CIs over seeds and languages.

The data are one row per (run, target language): the run's seed, the language's realised log
training share and an outcome (rho under a config, or full-precision bits per byte). Within one
seed the Latin square gives every target language each share level once, so the rows form a
balanced array ``[language, seed, level]`` (:func:`cells`), and:

- :func:`cell_slopes`: per (language, seed) the OLS slope of the outcome on log share;
- :func:`language_slopes`: per language their mean over seeds, with a t interval over seeds;
- :func:`pooled_slope`: the mean over languages and seeds, with a two-way bootstrap CI that
  resamples languages and seeds (both are samples: of languages one could have targeted, and of
  training randomness);
- :func:`adjusted_slope`: the log-share coefficient of ``outcome ~ log share + covariate +
  language`` (language fixed effects, every row), with the same bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from qfair.errors import QfairError

X = "log_share"


class SlopeError(QfairError, ValueError):
    """The rows cannot give the asked slope (unbalanced, a constant share, a non-finite value)."""


@dataclass(frozen=True)
class Cells:
    """Columns of the rows as arrays ``[language, seed, level]`` (levels in increasing share)."""

    languages: list[str]
    seeds: list[int]
    values: dict[str, np.ndarray]


def cells(rows: pd.DataFrame, columns: list[str]) -> Cells:
    """The rows as a balanced ``[language, seed, level]`` array per column; errors name the gap."""
    missing = {"language", "seed", X, *columns} - set(rows.columns)
    if missing:
        raise SlopeError(f"rows lack columns {sorted(missing)}")
    numeric = rows[[X, *columns]].to_numpy(dtype=float)
    if not np.isfinite(numeric).all():
        raise SlopeError(f"non-finite values in {[X, *columns]}")
    languages = sorted(rows["language"].unique())
    seeds = sorted(rows["seed"].unique())
    sizes = rows.groupby(["language", "seed"]).size()
    if len(sizes) != len(languages) * len(seeds) or sizes.nunique() != 1 or sizes.iloc[0] < 2:
        raise SlopeError(f"unbalanced rows: every (language, seed) needs the same number (>= 2) of "
                         f"share levels; counts {sizes.to_dict()}")
    ordered = rows.sort_values(["language", "seed", X])
    shape = (len(languages), len(seeds), int(sizes.iloc[0]))
    values = {name: ordered[name].to_numpy(float).reshape(shape) for name in [X, *columns]}
    if (np.ptp(values[X], axis=2) == 0).any():
        raise SlopeError("a (language, seed) has one share only: no slope")
    return Cells(languages, [int(s) for s in seeds], values)


def cell_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS slopes of ``y`` on ``x`` along the last axis."""
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    return (dx * dy).sum(axis=-1) / (dx * dx).sum(axis=-1)


def fixed_effects_coefficient(x: np.ndarray, z: np.ndarray, y: np.ndarray) -> float:
    """The ``x`` coefficient of ``y ~ x + z + language`` on ``[language, seed, level]`` arrays."""
    def within(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(a.shape[0], -1)
        return (flat - flat.mean(axis=1, keepdims=True)).ravel()

    design = np.column_stack([within(x), within(z)])
    gram = design.T @ design
    if np.linalg.cond(gram) > 1e12:
        raise SlopeError("log share and the covariate are collinear given the language: no adjusted slope")
    return float(np.linalg.solve(gram, design.T @ within(y))[0])


def bootstrap(data: Cells, statistic: Callable[[dict[str, np.ndarray]], float], resamples: int,
              confidence: float, seed: int) -> tuple[float, float, float]:
    """``statistic`` and its percentile CI, resampling languages and seeds with replacement."""
    n_lang, n_seed = len(data.languages), len(data.seeds)
    if n_lang < 2 or n_seed < 2:
        raise SlopeError(f"the bootstrap needs >= 2 languages and >= 2 seeds, got {n_lang} and {n_seed}")
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for b in range(resamples):
        li = rng.integers(0, n_lang, n_lang)
        si = rng.integers(0, n_seed, n_seed)
        draws[b] = statistic({k: v[li][:, si] for k, v in data.values.items()})
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(statistic(data.values)), float(low), float(high)


def t_interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean along the last axis and its t interval (NaN bounds with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = sps.t.ppf(0.5 + confidence / 2, n - 1) * values.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def language_slopes(rows: pd.DataFrame, outcome: str, confidence: float) -> pd.DataFrame:
    """Per language: the mean seed slope of ``outcome`` on log share, its t interval over seeds."""
    data = cells(rows, [outcome])
    slopes = cell_slopes(data.values[X], data.values[outcome])  # [language, seed]
    n = slopes.shape[1]
    mean, low, high = t_interval(slopes, confidence)
    sd = slopes.std(axis=1, ddof=1) if n > 1 else np.full(len(mean), np.nan)
    return pd.DataFrame({"language": data.languages, "slope": mean, "ci_low": low,
                         "ci_high": high, "seeds": n, "seed_sd": sd})


def pooled_slope(rows: pd.DataFrame, outcome: str, resamples: int, confidence: float,
                 seed: int) -> tuple[float, float, float]:
    """The mean (language, seed) slope of ``outcome`` on log share, with its two-way bootstrap CI."""
    data = cells(rows, [outcome])
    return bootstrap(data, lambda v: float(cell_slopes(v[X], v[outcome]).mean()), resamples, confidence, seed)


def adjusted_slope(rows: pd.DataFrame, outcome: str, covariate: str, resamples: int, confidence: float,
                   seed: int) -> tuple[float, float, float]:
    """The log-share slope of ``outcome`` holding ``covariate`` fixed (language fixed effects),
    with its two-way bootstrap CI."""
    data = cells(rows, [outcome, covariate])
    return bootstrap(data, lambda v: fixed_effects_coefficient(v[X], v[covariate], v[outcome]),
                     resamples, confidence, seed)
