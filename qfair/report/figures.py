"""The paper's figures: one function per figure, from pipeline tables to a matplotlib Figure.

Every function is pure (tables in, figure out); :mod:`qfair.report.build` saves them with the
shared style of :mod:`qfair.report.style`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from qfair.report.latex import REL
from qfair.report.style import COLUMN_WIDTH, PAGE_WIDTH, PALETTE, interval_segments, new_figure

COMPONENT_ORDER = ["attn_qkv", "attn_o", "mlp_up", "mlp_down"]
COMPONENT_LABELS = {"attn_qkv": "attn QKV", "attn_o": "attn out", "mlp_up": "MLP up", "mlp_down": "MLP down"}
GRANULARITY_LABELS = {"tensor": "per tensor", "channel": "per channel"}  # group<N>: "group N"


def not_produced(what: str, profile: str, reason: str = "") -> Figure:
    """A small figure saying that ``profile`` does not produce ``what`` (its data does not exist)."""
    figure, axes = new_figure(COLUMN_WIDTH, 0.9)
    text = f"{what}: not produced by the {profile} profile" + (f"\n({reason})" if reason else "")
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color="0.3", transform=axes.transAxes)
    axes.set_axis_off()
    return figure


def kurtosis_heatmap(tensors: pd.DataFrame, model: str = "final") -> Figure:
    """Excess kurtosis of every block weight matrix: layer x component."""
    weights = tensors[
        (tensors["model"] == model)
        & (tensors["kind"] == "weight")
        & tensors["component"].isin(COMPONENT_ORDER)
    ]
    grid = weights.pivot_table(index="layer", columns="component", values="excess_kurtosis")
    grid = grid.reindex(columns=[c for c in COMPONENT_ORDER if c in grid.columns]).sort_index()
    figure, axes = new_figure(COLUMN_WIDTH, 0.6 + 0.32 * len(grid))
    limit = float(np.abs(grid.to_numpy()).max()) or 1.0
    image = axes.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(grid.shape[1]), [COMPONENT_LABELS[c] for c in grid.columns])
    axes.set_yticks(range(grid.shape[0]), [str(int(layer)) for layer in grid.index])
    axes.set_ylabel("layer")
    axes.grid(False)
    for (row, col), value in np.ndenumerate(grid.to_numpy()):
        axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axes, label="excess kurtosis", fraction=0.05)
    return figure


def degradation_by_language(
    sweep: pd.DataFrame, config: str, confidence: float, profile: str = "embedded"
) -> Figure:
    """Relative degradation (NLL increase) of every language under one config, with its bootstrap CI.

    A language without a resource level (no published share) is drawn as a grey ring.
    """
    rows = sweep[sweep["config"] == config].sort_values("rel_degradation")
    if rows.empty:
        return not_produced(f"degradation under {config}", profile, f"{config} is not in compress.configs")
    figure, axes = new_figure(COLUMN_WIDTH, 0.5 + 0.12 * len(rows))
    position = np.arange(len(rows))
    level = rows["resource_level"].to_numpy()
    rel = rows["rel_degradation"]
    interval_segments(axes, rows["rel_degradation_ci_low"], rows["rel_degradation_ci_high"], position)
    points = axes.scatter(rel, position, c=level, cmap="viridis", s=12, zorder=3)
    unknown = np.isnan(level)
    if unknown.any():
        axes.scatter(rel[unknown], position[unknown], facecolors="none", edgecolors="0.4", s=12,
                     zorder=3, label="no resource level")
        axes.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=5, frameon=False)
    axes.axvline(0, color="0.3", linewidth=0.6)
    axes.set_yticks(position, rows["language"], fontsize=6)
    axes.set_xlabel(f"${REL}$ under {config} ({confidence:.0%} CI)")
    figure.colorbar(points, ax=axes, label="resource level (log share)", fraction=0.05)
    return figure


def disparity_vs_bits(disparity: pd.DataFrame, confidence: float) -> Figure:
    """Disparity range and mean relative degradation of symmetric RTN against bits, per granularity."""
    rtn = disparity[(disparity["method"] == "rtn") & disparity["config"].str.endswith("-sym")]
    figure, (left, right) = new_figure(PAGE_WIDTH, 2.3, ncols=2)
    for color, (granularity, group) in zip(PALETTE, rtn.groupby("granularity", sort=False), strict=False):
        group = group.sort_values("bits")
        label = GRANULARITY_LABELS.get(granularity, granularity.replace("group", "group "))
        for axes, column in ((left, "range"), (right, "mean")):
            axes.plot(group["bits"], group[column], marker="o", color=color, label=label)
            axes.fill_between(
                group["bits"],
                group[f"{column}_ci_low"],
                group[f"{column}_ci_high"],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
    for axes, ylabel in ((left, rf"disparity range $\max {REL} - \min {REL}$"), (right, f"mean ${REL}$")):
        axes.set_yscale("symlog", linthresh=1e-3)
        axes.set_xlabel("weight bits")
        axes.set_ylabel(ylabel)
        axes.set_xticks(sorted(rtn["bits"].unique()))
    left.legend(title=f"RTN, bands: {confidence:.0%} CI", loc="upper right")
    return figure


def correlation_scatter(
    table: pd.DataFrame,
    x: str,
    y: str,
    xlabel: str,
    ylabel: str,
    confidence: float,
    label_column: str = "language",
    profile: str = "embedded",
) -> Figure:
    """Scatter of two per-language quantities with the least-squares fit and its confidence band."""
    data = table[[x, y, label_column]].dropna()
    if len(data) < 3:  # the fit band needs n - 2 > 0 degrees of freedom
        return not_produced(f"{y} against {x}", profile, f"{len(data)} languages with both values")
    figure, axes = new_figure(COLUMN_WIDTH, 2.6)
    axes.scatter(data[x], data[y], s=12, color=PALETTE[0], zorder=3)
    for _, row in data.iterrows():
        axes.annotate(
            row[label_column],
            (row[x], row[y]),
            fontsize=5,
            xytext=(2, 1),
            textcoords="offset points",
            color="0.35",
        )
    grid, fit, low, high = fit_band(data[x].to_numpy(float), data[y].to_numpy(float), confidence)
    axes.plot(grid, fit, color=PALETTE[1])
    axes.fill_between(grid, low, high, color=PALETTE[1], alpha=0.2, linewidth=0)
    spearman = stats.spearmanr(data[x], data[y]).statistic
    axes.set_title(
        rf"Spearman $\rho_s$ = {spearman:.2f} (n = {len(data)}); band: {confidence:.0%} CI of the OLS fit",
        fontsize=7,
    )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return figure


def fit_band(x: np.ndarray, y: np.ndarray, confidence: float, points: int = 100):
    """OLS line and the t-based confidence band of its mean, on a grid over ``x``."""
    result = stats.linregress(x, y)
    grid = np.linspace(x.min(), x.max(), points)
    fit = result.intercept + result.slope * grid
    n = len(x)
    residual = y - (result.intercept + result.slope * x)
    scale = np.sqrt(np.sum(residual**2) / (n - 2))
    spread = np.sqrt(1 / n + (grid - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    half = stats.t.ppf(0.5 + confidence / 2, n - 2) * scale * spread
    return grid, fit, fit - half, fit + half


def clipping_comparison(disparity: pd.DataFrame, configs: list[str], confidence: float) -> Figure:
    """Disparity range and mean relative degradation, with CIs, of the clipping methods at each bit width."""
    rows = disparity.set_index("config").reindex(configs).dropna(subset=["range"])
    figure, (left, right) = new_figure(PAGE_WIDTH, 0.6 + 0.16 * len(rows), ncols=2, sharey=True)
    position = np.arange(len(rows))
    colors = [
        PALETTE[{"rtn": 7, "mse": 4, "aciq": 0, "laaciq": 1, "oracle": 2}.get(m, 3)] for m in rows["method"]
    ]
    for axes, column, label in ((left, "range", r"disparity range"), (right, "mean", f"mean ${REL}$")):
        interval_segments(axes, rows[f"{column}_ci_low"], rows[f"{column}_ci_high"], position)
        axes.scatter(rows[column], position, c=colors, s=14, zorder=3)
        axes.set_xlabel(f"{label} ({confidence:.0%} CI)")
    left.set_yticks(position, rows.index, fontsize=6)
    left.invert_yaxis()
    return figure


def training_curves(train_loss: pd.DataFrame, dev_loss: pd.DataFrame, profile: str = "embedded") -> Figure:
    """Training loss (and a smoothed trace) and dev loss against step."""
    if train_loss.empty and dev_loss.empty:
        return not_produced("training curves", profile, "a published checkpoint, not trained by the pipeline")
    figure, axes = new_figure(COLUMN_WIDTH, 2.2)
    axes.plot(
        train_loss["step"],
        train_loss["loss"],
        color=PALETTE[5],
        alpha=0.5,
        linewidth=0.6,
        label="train (per step)",
    )
    window = max(1, len(train_loss) // 40)
    smooth = train_loss["loss"].rolling(window, min_periods=1).mean()
    axes.plot(train_loss["step"], smooth, color=PALETTE[0], label=f"train ({window}-step mean)")
    axes.plot(dev_loss["step"], dev_loss["dev_loss"], marker="o", color=PALETTE[1], label="dev")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats/token)")
    axes.legend()
    return figure


def sink_mass(sink_heads: pd.DataFrame) -> Figure:
    """Attention mass on position 0 per layer and head (mean over languages), and per language."""
    heads = sink_heads.groupby(["layer", "head"])["sink_mass"].mean().unstack("head")
    per_language = sink_heads.groupby(["language", "layer"])["sink_mass"].mean().unstack("layer")
    figure, (left, right) = new_figure(PAGE_WIDTH, 2.4, ncols=2, width_ratios=[1, 2])
    image = left.imshow(heads.to_numpy(), cmap="magma", vmin=0, vmax=1, aspect="auto")
    left.set_xticks(range(heads.shape[1]), heads.columns)
    left.set_yticks(range(heads.shape[0]), heads.index)
    left.set_xlabel("head")
    left.set_ylabel("layer")
    left.grid(False)
    figure.colorbar(image, ax=left, label="sink mass", fraction=0.08)
    for color, layer in zip(PALETTE, per_language.columns, strict=False):
        right.plot(
            range(len(per_language)),
            per_language[layer],
            marker="o",
            linestyle="none",
            color=color,
            label=f"layer {layer}",
        )
    right.set_xticks(range(len(per_language)), per_language.index, rotation=90, fontsize=5)
    right.set_ylabel("mean sink mass")
    right.legend(ncols=min(4, per_language.shape[1]), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure


def tokenizer_premium(premium: pd.DataFrame, split: str = "test") -> Figure:
    """Token premium over the reference language, per language and tokenizer (log scale)."""
    rows = premium[premium["split"] == split]
    table = rows.pivot_table(index="language", columns="tokenizer", values="premium")
    order = table.mean(axis=1).sort_values().index
    table = table.loc[order]
    figure, axes = new_figure(PAGE_WIDTH, 2.6)
    position = np.arange(len(table))
    for index, (color, tokenizer) in enumerate(zip(PALETTE, table.columns, strict=False)):
        marker = "osD^v<>p"[index % 8]
        axes.scatter(position, table[tokenizer], color=color, marker=marker, s=10, label=tokenizer)
    axes.set_yscale("log")
    axes.axhline(1, color="0.3", linewidth=0.6)
    axes.set_xticks(position, table.index, rotation=90, fontsize=6)
    axes.set_ylabel(f"token premium vs reference ({split})")
    axes.legend(ncols=len(table.columns), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure


def kurtosis_over_training(checkpoints: pd.DataFrame, profile: str = "embedded") -> Figure:
    """Largest kurtosis of the quantized weight matrices at each saved checkpoint."""
    if checkpoints.empty:
        return not_produced("kurtosis over training", profile, "the model has no training checkpoints")
    figure, axes = new_figure(COLUMN_WIDTH, 2.0)
    axes.plot(checkpoints["step"], checkpoints["max_kurtosis"], marker="o", color=PALETTE[0])
    axes.set_xlabel("training step")
    axes.set_ylabel("max excess kurtosis (quantized matrices)")
    return figure
