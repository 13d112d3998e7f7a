"""One statistics battery for a correlation across languages, plus Holm correction and verdicts.

Every cross-language correlation in the study is reported the same way: Pearson and Spearman
with scipy's p-values, a bootstrap CI over languages, a permutation p-value, the
leave-one-language-out range and a partial correlation controlling for covariates (script and
baseline BPB). The resampling is done by ``scipy.stats.bootstrap`` and
``scipy.stats.permutation_test`` with vectorized statistics, never hand-written loops.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

Method = Literal["pearson", "spearman"]
Alternative = Literal["two-sided", "less", "greater"]
SUPPORTED, REJECTED, INCONCLUSIVE = "SUPPORTED", "REJECTED", "INCONCLUSIVE"
NOT_TESTABLE, NOT_RUN = "NOT TESTABLE", "NOT RUN"
_STATISTIC_NAME = {"pearson": "pearson_r", "spearman": "spearman_rho"}


@dataclass(frozen=True)
class CorrelationResult:
    """Everything the battery reports for one correlation; ``to_dict`` gives one flat record."""

    n: int
    method: str
    statistic: str  # name of the primary statistic: "pearson_r" or "spearman_rho"
    value: float  # its value on the full sample
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    ci_low: float
    ci_high: float
    ci_method: str  # "BCa", "percentile", or "percentile_defined" (see ``correlation_battery``)
    confidence: float
    bootstrap_undefined: int  # resamples whose statistic is undefined (a resample with constant x or y)
    permutation_p: float
    alternative: str
    loo_min: float
    loo_min_language: str  # the language whose removal gives ``loo_min``
    loo_max: float
    loo_max_language: str
    partial_r: float | None  # None when no covariates were given
    partial_p: float | None
    partial_df: int | None  # n - 2 - k, the degrees of freedom behind ``partial_p``
    covariates: tuple[str, ...]

    def to_dict(self) -> dict[str, float | int | str | None]:
        """A flat record of plain Python scalars; covariate names are joined by commas."""
        record = asdict(self)
        record["covariates"] = ",".join(self.covariates)
        return record


def _correlate(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along ``axis`` for stacked samples; NaN where a sample is constant."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    # Rounding can push |r| a hair above 1.
    return np.clip(r, -1.0, 1.0)


def _statistic(method: Method):
    """A vectorized ``statistic(x, y, axis)`` for the chosen method."""
    if method == "pearson":
        return _correlate

    def spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        # Re-rank every resample: bootstrap resamples contain ties that the original ranks lack.
        return _correlate(stats.rankdata(a, axis=axis), stats.rankdata(b, axis=axis), axis=axis)

    return spearman


def _as_vector(values, name: str, languages: Sequence[str]) -> np.ndarray:
    """A 1-D float array of one value per language, finite, else ValueError naming the culprit."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size != len(languages):
        raise ValueError(f"{name} has shape {array.shape}; expected one value per language "
                         f"({len(languages)} languages)")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} is {array[bad[0]]} for language {languages[bad[0]]!r}; "
                         "all values must be finite")
    return array


def _check_choices(method: str, alternative: str) -> None:
    if method not in _STATISTIC_NAME:
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")


def partial_correlation(x, y, covariates: Mapping[str, np.ndarray], method: Method = "pearson",
                        alternative: Alternative = "two-sided") -> tuple[float, float, int]:
    """Correlation of x and y controlling for ``covariates``: returns ``(r, p, df)``.

    x and y are each residualized on the covariates plus an intercept by least squares and the
    residuals are correlated (Pearson). For ``method="spearman"`` x, y and every covariate are
    rank-transformed first, which gives the usual partial Spearman correlation.

    The p-value is *not* the one ``pearsonr`` would give for the residuals: each of the k
    covariates uses up a degree of freedom, so ``t = r * sqrt(df / (1 - r**2))`` is referred to
    Student's t with ``df = n - 2 - k``.
    """
    _check_choices(method, alternative)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    columns = [np.asarray(c, dtype=np.float64) for c in covariates.values()]
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
        columns = [stats.rankdata(c) for c in columns]
    n, k = x.size, len(columns)
    df = n - 2 - k
    if df < 1:
        raise ValueError(f"partial correlation needs n - 2 - k >= 1; got n={n}, k={k} covariates")
    design = np.column_stack([np.ones(n), *columns])
    if np.linalg.matrix_rank(design) < k + 1:
        # A constant covariate (e.g. every language in Latin script) duplicates the intercept.
        raise ValueError(f"covariates {list(covariates)} are constant or collinear over these "
                         "languages; drop the redundant ones")
    coef, *_ = np.linalg.lstsq(design, np.column_stack([x, y]), rcond=None)
    residuals = np.column_stack([x, y]) - design @ coef
    r = float(_correlate(residuals[:, 0], residuals[:, 1]))
    if np.isnan(r):
        raise ValueError("x or y is fully explained by the covariates; partial correlation is undefined")
    with np.errstate(divide="ignore"):
        t = r * np.sqrt(df / (1.0 - r * r)) if abs(r) < 1 else np.copysign(np.inf, r)
    dist = stats.t(df)
    p = {"two-sided": 2 * dist.sf(abs(t)), "greater": dist.sf(t), "less": dist.cdf(t)}[alternative]
    return r, float(min(p, 1.0)), df


def paired_bootstrap(data: Sequence[np.ndarray], statistic, n_resamples: int, confidence: float,
                     rng: np.random.Generator, method: str = "BCa"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided paired bootstrap CI (``scipy.stats.bootstrap``) with one fallback.

    ``statistic(*arrays, axis)`` is vectorized and may return several statistics. Where
    ``method``'s bounds are undefined (BCa's acceleration is 0/0, a ratio near 0/0, resamples whose
    statistic is NaN), that statistic gets the percentile interval of the *same* resamples where it
    is defined (a bootstrap conditional on them); its bounds stay NaN only if every resample is.
    Returns ``(low, high, fell_back, distribution)``: 1-D arrays with one entry per statistic and
    the bootstrap distribution (``[statistics, n_resamples]``).
    """
    with warnings.catch_warnings():
        # Degenerate data is reported through the fallback mask instead of a warning.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(tuple(data), statistic, paired=True, vectorized=True,
                                 n_resamples=n_resamples, confidence_level=confidence,
                                 method=method, rng=rng)
    low = np.atleast_1d(np.asarray(result.confidence_interval.low, dtype=float)).copy()
    high = np.atleast_1d(np.asarray(result.confidence_interval.high, dtype=float)).copy()
    distribution = np.atleast_2d(result.bootstrap_distribution)
    fell_back = ~(np.isfinite(low) & np.isfinite(high))
    if fell_back.any():
        tail = (1 - confidence) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            low[fell_back] = np.nanquantile(distribution[fell_back], tail, axis=-1)
            high[fell_back] = np.nanquantile(distribution[fell_back], 1 - tail, axis=-1)
    return low, high, fell_back, distribution


def _bootstrap_ci(x: np.ndarray, y: np.ndarray, statistic, n_bootstrap: int, confidence: float,
                  rng: np.random.Generator) -> tuple[float, float, str, int]:
    """Two-sided bootstrap CI over languages (:func:`paired_bootstrap`) and how it was obtained."""
    low, high, fell_back, distribution = paired_bootstrap((x, y), statistic, n_bootstrap, confidence, rng)
    undefined = int(np.isnan(distribution).sum())
    # With few languages some resamples repeat one language only and have no correlation.
    ci_method = "BCa" if not fell_back[0] else "percentile_defined" if undefined else "percentile"
    return float(low[0]), float(high[0]), ci_method, undefined


def correlation_battery(x, y, languages: Sequence[str], covariates: Mapping[str, np.ndarray] | None = None,
                        method: Method = "spearman", n_resamples: int = 9999, n_bootstrap: int = 9999,
                        confidence: float = 0.95, seed: int = 0,
                        alternative: Alternative = "two-sided") -> CorrelationResult:
    """Run the full statistics battery on one correlation between x and y across languages.

    ``method`` picks the primary statistic used for the CI, the permutation test and the
    leave-one-out range; Pearson and Spearman with scipy's p-values are always both reported.

    - CI: ``scipy.stats.bootstrap`` resampling languages (x and y paired), two-sided at
      ``confidence`` whatever ``alternative`` is. BCa, or percentile on the same resamples if
      BCa gives NaN; if that is NaN too because some resamples are undefined (constant),
      percentile over the defined resamples. ``ci_method`` says which one was used.
    - Permutation p: ``scipy.stats.permutation_test`` with ``permutation_type="pairings"``
      (x shuffled against y; exact when n! <= n_resamples).
    - Leave-one-out: the statistic recomputed without each language in turn; its min and max,
      and the languages whose removal gives them (a single influential language shows up here).
    - Partial correlation: see :func:`partial_correlation`.

    ``seed`` makes the bootstrap and the permutation test reproducible (independent streams).
    Raises ValueError for fewer than 4 languages, mismatched lengths, non-finite values (naming
    the array and language) or constant x or y.
    """
    _check_choices(method, alternative)
    languages = [str(language) for language in languages]
    if len(set(languages)) != len(languages):
        raise ValueError("languages must be unique")
    n = len(languages)
    if n < 4:
        raise ValueError(f"need at least 4 languages for a correlation battery, got {n}")
    x, y = _as_vector(x, "x", languages), _as_vector(y, "y", languages)
    for name, array in (("x", x), ("y", y)):
        if np.ptp(array) == 0:
            raise ValueError(f"{name} is constant across languages ({array[0]}); correlation is undefined")
    covariates = dict(covariates or {})
    covariates = {name: _as_vector(values, f"covariate {name!r}", languages)
                  for name, values in covariates.items()}

    pearson = stats.pearsonr(x, y, alternative=alternative)
    spearman = stats.spearmanr(x, y, alternative=alternative)
    statistic = _statistic(method)
    value = float(pearson.statistic if method == "pearson" else spearman.statistic)
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    ci_low, ci_high, ci_method, undefined = _bootstrap_ci(x, y, statistic, n_bootstrap, confidence, boot_rng)

    # Pairings: only x is permuted against a fixed y. Ranks of a permutation are the permuted
    # ranks, so Spearman can rank once and correlate ranks in every permutation.
    xs, ys = (x, y) if method == "pearson" else (stats.rankdata(x), stats.rankdata(y))
    permutation = stats.permutation_test(
        (xs,), lambda xp, axis=-1: _correlate(xp, ys, axis=axis), permutation_type="pairings",
        vectorized=True, n_resamples=n_resamples, alternative=alternative, rng=perm_rng)

    keep = ~np.eye(n, dtype=bool)  # row i keeps every language but language i
    loo = statistic(np.broadcast_to(x, (n, n))[keep].reshape(n, n - 1),
                    np.broadcast_to(y, (n, n))[keep].reshape(n, n - 1), axis=-1)
    if np.all(np.isnan(loo)):
        raise ValueError("every leave-one-out subsample is constant; the correlation rests on one language")
    # A left-out subsample can be constant (undefined correlation); it is skipped in the range.
    i_min, i_max = int(np.nanargmin(loo)), int(np.nanargmax(loo))

    partial_r = partial_p = partial_df = None
    if covariates:
        partial_r, partial_p, partial_df = partial_correlation(x, y, covariates, method, alternative)

    return CorrelationResult(
        n=n, method=method, statistic=_STATISTIC_NAME[method], value=value,
        pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
        spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue),
        ci_low=ci_low, ci_high=ci_high, ci_method=ci_method, confidence=float(confidence),
        bootstrap_undefined=undefined, permutation_p=float(permutation.pvalue), alternative=alternative,
        loo_min=float(loo[i_min]), loo_min_language=languages[i_min],
        loo_max=float(loo[i_max]), loo_max_language=languages[i_max],
        partial_r=partial_r, partial_p=partial_p, partial_df=partial_df, covariates=tuple(covariates))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    With the m p-values sorted ascending, ``p_adj(i) = max over j <= i of min(1, (m - j + 1) p(j))``
    (1-based): the running maximum makes the adjusted values monotone in the raw ones. Rejecting
    where ``p_adj < alpha`` controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def script_covariate(scripts: Sequence[str]) -> np.ndarray:
    """1.0 for Latin script (ISO 15924 code ``"Latn"``), 0.0 for any other script."""
    return np.array([1.0 if script == "Latn" else 0.0 for script in scripts])


def verdict(value: float, ci_low: float, ci_high: float, p_adjusted: float, threshold: float,
            direction: Literal["less", "greater"], alpha: float = 0.05) -> str:
    """Verdict on a pre-registered claim "the statistic is <direction> than <threshold>".

    - SUPPORTED: the point estimate is beyond the threshold in the stated direction, the whole
      CI is beyond it too (``ci_low > threshold`` for "greater", ``ci_high < threshold`` for
      "less"), and the Holm-adjusted p-value is below ``alpha``.
    - REJECTED: the whole CI lies on the wrong side of the threshold (``ci_high < threshold``
      for "greater", ``ci_low > threshold`` for "less").
    - INCONCLUSIVE: anything else, including a CI that contains the threshold, a significant
      CI with ``p_adjusted >= alpha``, and NaN inputs.
    """
    if direction not in ("less", "greater"):
        raise ValueError(f"direction must be 'less' or 'greater', got {direction!r}")
    if np.isnan([value, ci_low, ci_high, p_adjusted]).any():
        return INCONCLUSIVE
    if ci_low > ci_high:
        raise ValueError(f"ci_low ({ci_low}) is above ci_high ({ci_high})")
    sign = 1.0 if direction == "greater" else -1.0
    # Flip "less" into "greater" so one rule covers both: beyond means sign * (v - threshold) > 0.
    low, high = sorted((sign * (ci_low - threshold), sign * (ci_high - threshold)))
    if sign * (value - threshold) > 0 and low > 0 and p_adjusted < alpha:
        return SUPPORTED
    if high < 0:
        return REJECTED
    return INCONCLUSIVE


def sign_test_min_p(n: int, alternative: Alternative = "greater") -> float:
    """Smallest p-value an exact binomial sign test over ``n`` untied units can give.

    All ``n`` units on one side: ``0.5**n`` one-sided, twice that (at most 1) two-sided;
    equal to ``scipy.stats.binomtest(n, n, 0.5, alternative).pvalue``.
    """
    _check_choices("pearson", alternative)
    if n < 1:
        raise ValueError(f"a sign test needs at least one untied unit, got n={n}")
    p = 0.5**n
    return min(1.0, 2 * p) if alternative == "two-sided" else p


def permutation_min_p(n: int, n_resamples: int, alternative: Alternative = "greater") -> float:
    """Smallest p-value of :func:`correlation_battery`'s permutation test over ``n`` units.

    ``scipy.stats.permutation_test`` (pairings) is exact when ``n! <= n_resamples``: the
    observed pairing is one of ``n!``, so p >= ``1 / n!``; otherwise it is randomized and
    ``p = (count + 1) / (n_resamples + 1) >= 1 / (n_resamples + 1)``. Two-sided p-values are
    twice the smaller one-sided value (at most 1). Ties only raise the smallest p.
    """
    _check_choices("pearson", alternative)
    if n < 2 or n_resamples < 1:
        raise ValueError(f"need n >= 2 and n_resamples >= 1, got n={n}, n_resamples={n_resamples}")
    count = math.factorial(n)
    p = 1.0 / count if count <= n_resamples else 1.0 / (n_resamples + 1)
    return min(1.0, 2 * p) if alternative == "two-sided" else p
