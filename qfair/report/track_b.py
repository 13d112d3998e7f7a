"""Track B in the paper: numbers and figures of the interpretability stage (B-001, B-003..B-005).

Both read :class:`~qfair.report.results.Results`' optional interpretability tables; a profile
that has not run the stage gets ``n/a`` numbers and a figure saying so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qfair.report.latex import ABSENT, escape, fmt, fmt_pct
from qfair.report.style import PAGE_WIDTH, new_figure

KEYS = ("heads", "specific", "mixed", "universal", "items", "attribution-median", "attribution-min",
        "languages", "languages-with-loss",
        "top-block", "top-block-share", "top-quantized-block", "top-quantized-block-rho",
        "most-sensitive", "least-sensitive", "overlap", "expected-overlap")
PREFIX = "trackb/"


def _block_order(frame: pd.DataFrame) -> list[str]:
    blocks = frame[frame["kind"] != "head"].drop_duplicates("component")
    return list(blocks.sort_values(["layer", "kind"])["component"])


def track_b_numbers(results, params) -> dict[str, str]:
    """``trackb/*`` keys (``n/a`` for a profile without the interpretability stage's tables)."""
    ip = params.interpretability
    numbers = {PREFIX + key: ABSENT for key in KEYS} | {
        "set/trackb-specific-min": fmt(ip.specific_min, 2),
        "set/trackb-universal-max": fmt(ip.universal_max, 2),
        "set/trackb-outlier-fraction": fmt_pct(ip.outlier_head_fraction, 0),
        "set/trackb-config": escape(ip.config),
    }
    if results.specificity is None:
        return numbers
    numbers[PREFIX + "items"] = str(params.interpretability.items_per_language)
    classes = results.specificity["class"].value_counts()
    agreement = results.attribution_check["spearman"].dropna()
    blocks = results.mediation[results.mediation["kind"] != "head"]
    by_block = blocks.groupby("component")["recovered_share"].median()  # robust to tiny denominators
    one_block = results.block_quantization.groupby("component")["rel_degradation"].mean()
    sensitivity = results.interpretability_languages.set_index("language")["ablation_sensitivity"]
    rho = results.interpretability_languages["rho"]
    numbers |= {
        PREFIX + "languages": str(len(rho)),
        PREFIX + "languages-with-loss": str(int((rho > 0).sum())),  # those with a defined share
        PREFIX + "heads": str(len(results.specificity)),
        **{PREFIX + name: str(int(classes.get(name, 0))) for name in ("specific", "mixed", "universal")},
        PREFIX + "attribution-median": fmt(float(agreement.median())) if len(agreement) else ABSENT,
        PREFIX + "attribution-min": fmt(float(agreement.min())) if len(agreement) else ABSENT,
        PREFIX + "most-sensitive": escape(str(sensitivity.idxmax())),
        PREFIX + "least-sensitive": escape(str(sensitivity.idxmin())),
        PREFIX + "top-quantized-block": escape(str(one_block.idxmax())),
        PREFIX + "top-quantized-block-rho": fmt_pct(float(one_block.max()), 2),
    }
    if by_block.notna().any():
        numbers[PREFIX + "top-block"] = escape(str(by_block.idxmax()))
        numbers[PREFIX + "top-block-share"] = fmt_pct(float(by_block.max()))
    for row in results.ledger["hypotheses"]:
        if row["id"] == "EXP-034" and "overlap" in row:
            numbers[PREFIX + "overlap"] = str(int(row["overlap"]))
            numbers[PREFIX + "expected-overlap"] = fmt(float(row["expected_overlap"]), 2)
    return numbers


def _heatmap(axes, grid: pd.DataFrame, title: str, label: str, figure: Figure, cmap: str,
             limits: tuple[float, float]) -> None:
    image = axes.imshow(grid.to_numpy(dtype=float), cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
    axes.set_xticks(range(grid.shape[1]), grid.columns, rotation=90, fontsize=5)
    axes.set_yticks(range(grid.shape[0]), grid.index, fontsize=5)
    axes.set_title(title, fontsize=7)
    axes.grid(False)
    figure.colorbar(image, ax=axes, label=label, fraction=0.05)


def mediation_heatmaps(mediation: pd.DataFrame, block_quantization: pd.DataFrame, config: str) -> Figure:
    """B-005: per block (rows) and language (columns), the share of the language's degradation that
    restoring the block recovers, and the converse: rho when only that block is quantized."""
    order = _block_order(mediation)
    shares = (mediation[mediation["kind"] != "head"]
              .pivot(index="component", columns="language", values="recovered_share").reindex(order))
    rho = (block_quantization.pivot(index="component", columns="language", values="rel_degradation")
           .reindex(order))
    figure, (left, right) = new_figure(PAGE_WIDTH, 0.8 + 0.16 * len(order), ncols=2)
    # Colours saturate at +-1: a language whose quantization barely raised its NLL has unstable shares.
    _heatmap(left, shares, f"restored from full precision ({config})", "share of loss recovered",
             figure, "RdBu_r", (-1.0, 1.0))
    limit = float(np.abs(rho.to_numpy(dtype=float)).max()) or 1.0
    _heatmap(right, rho * 100, f"only this block quantized ({config})", "rel. degradation (%)",
             figure, "RdBu_r", (-limit * 100, limit * 100))
    return figure


def head_specificity_figure(specificity: pd.DataFrame) -> Figure:
    """B-001: each head's largest between/within-language variance ratio; specific heads boxed."""
    grid = specificity.pivot(index="layer", columns="head", values="max_specificity").sort_index()
    figure, axes = new_figure(PAGE_WIDTH / 2, 0.8 + 0.2 * len(grid))
    image = axes.imshow(np.log10(grid.to_numpy(dtype=float)), cmap="viridis", aspect="auto")
    axes.set_xticks(range(grid.shape[1]), grid.columns, fontsize=5)
    axes.set_yticks(range(grid.shape[0]), grid.index, fontsize=5)
    axes.set_xlabel("head")
    axes.set_ylabel("layer")
    axes.grid(False)
    for layer, head in specificity.loc[specificity["class"] == "specific", ["layer", "head"]].to_numpy():
        axes.add_patch(_box(list(grid.columns).index(head), list(grid.index).index(layer)))
    figure.colorbar(image, ax=axes, label="log10 specificity", fraction=0.05)
    return figure


def _box(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=0.8)
