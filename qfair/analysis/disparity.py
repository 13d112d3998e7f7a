"""Per-language degradation and disparity of a compression config (docs/definitions.md).

Relative degradation ``rel_l = N_l(q) / N_l(fp) - 1`` with ``N_l`` the summed NLL over language
l's test items (:func:`rel_degradation_matrix`, the one place it is computed). Disparity: range
``max_l rel - min_l rel``, worst-language ``rel``, mean ``rel``, and the ratio of mean ``rel`` in
the bottom resource tercile to the top tercile. Confidence intervals come from
``scipy.stats.bootstrap`` (BCa by default: the range is a biased statistic, which
percentile intervals do not correct) with ``paired=True`` over items: every language's full-precision and
compressed NLL arrays are resampled with the same item indices (the test set is parallel).
"""

from __future__ import annotations

import numpy as np

from qfair.analysis.stats import paired_bootstrap

DISPARITY_STATS = ("range", "worst", "mean", "tercile_ratio")


def terciles(resource_level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the bottom and top thirds of languages by resource level.

    A language without a resource level (NaN: no published pretraining share) is in neither third;
    with no level at all both masks are empty, and the tercile ratio is then undefined.
    """
    resource_level = np.asarray(resource_level, dtype=float)
    known = np.flatnonzero(np.isfinite(resource_level))
    order = known[np.argsort(resource_level[known], kind="stable")]
    bottom, top = np.zeros(len(resource_level), bool), np.zeros(len(resource_level), bool)
    if len(order):
        k = max(1, len(order) // 3)
        bottom[order[:k]], top[order[-k:]] = True, True
    return bottom, top


def rel_degradation_matrix(fp: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """Relative degradation per language from per-item NLL arrays ``[..., languages, items]``."""
    return q.sum(axis=axis) / fp.sum(axis=axis) - 1.0


def disparity_statistics(rel: np.ndarray, bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``[range, worst, mean, tercile_ratio]`` over the language axis (axis 0) of ``rel``."""
    return np.stack([
        rel.max(axis=0) - rel.min(axis=0),
        rel.max(axis=0),
        rel.mean(axis=0),
        rel[bottom].mean(axis=0) / rel[top].mean(axis=0),
    ])


def _bootstrap(arrays: list[np.ndarray], statistic, resamples: int, confidence: float,
               seed: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap CI over items (:func:`qfair.analysis.stats.paired_bootstrap`)."""
    low, high, _, _ = paired_bootstrap(arrays, statistic, resamples, confidence,
                                       np.random.default_rng(seed), method)
    return low, high


def disparity(fp: np.ndarray, q: np.ndarray, resource_level: np.ndarray, resamples: int,
              confidence: float, seed: int, method: str = "BCa") -> dict[str, float | str]:
    """Point estimates and paired-bootstrap CIs of the disparity statistics of one config.

    ``tercile_ratio`` and its bounds are the string ``"undefined"`` when the ratio is 0/0.

    ``fp`` and ``q`` are ``[languages, items]`` per-item NLL (same items in every row).
    """
    n_lang = fp.shape[0]
    bottom, top = terciles(resource_level)

    def statistic(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
        rel = rel_degradation_matrix(np.stack(arrays[:n_lang]), np.stack(arrays[n_lang:]), axis=axis)
        return disparity_statistics(rel, bottom, top)

    with np.errstate(divide="ignore", invalid="ignore"):
        point = disparity_statistics(rel_degradation_matrix(fp, q), bottom, top)
        low, high = _bootstrap([*fp, *q], statistic, resamples, confidence, seed, method)
    out: dict[str, float | str] = {}
    for index, name in enumerate(DISPARITY_STATS):
        values = (float(point[index]), float(low[index]), float(high[index]))
        if not all(np.isfinite(values)):
            if name != "tercile_ratio":
                raise FloatingPointError(f"disparity: {name} or its CI is not finite: {values}")
            # A ratio whose denominator (the top tercile's mean rel. degradation) is zero is undefined.
            values = ("undefined",) * 3
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = values
    return out


def language_rel_degradation_ci(fp: np.ndarray, q: np.ndarray, resamples: int, confidence: float,
                    seed: int, method: str = "BCa") -> tuple[float, float]:
    """Paired-bootstrap CI of one language's relative degradation over its items."""
    low, high = _bootstrap([fp, q], lambda a, b, axis=-1: rel_degradation_matrix(a, b, axis), resamples,
                           confidence, seed, method)
    return float(low[0]), float(high[0])


def comparison(fp: np.ndarray, q_treatment: np.ndarray, q_baseline: np.ndarray, resamples: int,
               confidence: float, seed: int, method: str = "BCa") -> dict[str, float]:
    """Range reduction and relative change of the mean relative degradation, treatment vs baseline.

    ``range_reduction = 1 - range_T / range_B``;
    ``mean_rel_degradation_increase = (mean_T - mean_B) / |mean_B|``;
    both with paired-bootstrap CIs (one resample of items drives all three models).
    """
    n = fp.shape[0]

    def contrast(rel_t: np.ndarray, rel_b: np.ndarray) -> np.ndarray:
        range_t = rel_t.max(axis=0) - rel_t.min(axis=0)
        range_b = rel_b.max(axis=0) - rel_b.min(axis=0)
        mean_t, mean_b = rel_t.mean(axis=0), rel_b.mean(axis=0)
        return np.stack([1 - range_t / range_b, (mean_t - mean_b) / np.abs(mean_b)])

    def statistic(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
        f, t, b = (np.stack(arrays[i * n:(i + 1) * n]) for i in range(3))
        return contrast(rel_degradation_matrix(f, t, axis), rel_degradation_matrix(f, b, axis))

    point = contrast(rel_degradation_matrix(fp, q_treatment), rel_degradation_matrix(fp, q_baseline))
    low, high = _bootstrap([*fp, *q_treatment, *q_baseline], statistic, resamples, confidence,
                           seed, method)
    return {"range_reduction": float(point[0]), "range_reduction_ci_low": float(low[0]),
            "range_reduction_ci_high": float(high[0]), "mean_rel_degradation_increase": float(point[1]),
            "mean_rel_degradation_increase_ci_low": float(low[1]),
            "mean_rel_degradation_increase_ci_high": float(high[1])}


def threshold_bits(bits: np.ndarray, rel_degradation: np.ndarray, tau: float) -> int | None:
    """``B*``: the smallest tested width from which every larger tested width also passes.

    A width passes when its relative degradation is at most ``tau``. ``B*`` is the smallest
    width ``b`` such that all tested widths ``>= b`` pass; a passing width below a failing one
    (a non-monotone curve) does not count. None when the largest width fails (or none was tested).
    """
    pairs = sorted(zip((int(b) for b in bits), rel_degradation, strict=True), reverse=True)
    b_star = None
    for width, value in pairs:  # from the largest width down, until the first failure
        if not value <= tau:  # NaN fails
            break
        b_star = width
    return b_star
