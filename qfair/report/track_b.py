"""Track B in the paper: numbers and figures of the interpretability stage (B-001..B-005).

Both read :class:`~qfair.report.results.Results`' optional interpretability tables; a profile
that has not run the stage gets ``n/a`` numbers and a figure saying so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qfair.analysis.mediation import block_median_share
from qfair.analysis.probes import probe_accuracy_drop, probe_summary
from qfair.report.latex import ABSENT, escape, fmt, fmt_pct
from qfair.report.style import PAGE_WIDTH, new_figure

KEYS = ("heads", "specific", "mixed", "universal", "items", "attribution-median", "attribution-min",
        "languages", "languages-with-loss",
        "top-block", "top-block-share", "top-quantized-block", "top-quantized-block-rho",
        "most-sensitive", "least-sensitive", "overlap", "expected-overlap",
        "probe-best-layer", "probe-layers", "probe-fp-best", "probe-quantized-best", "probe-transfer-best",
        "probe-fp-mean", "probe-quantized-mean", "probe-transfer-mean", "probe-largest-drop",
        "probe-largest-drop-language", "act-top-block", "act-top-block-share", "act-top-quantized-block",
        "act-top-quantized-block-rho")
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
        "set/trackb-activation-config": escape(ip.activation_config) if ip.activation_config else ABSENT,
    }
    if results.specificity is None:
        return numbers
    numbers[PREFIX + "items"] = str(params.interpretability.items_per_language)
    classes = results.specificity["class"].value_counts()
    agreement = results.attribution_check["spearman"].dropna()
    top = mediation_numbers(results.mediation, results.block_quantization, "")
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
        **top,
    }
    if results.activation_mediation is not None:
        numbers |= mediation_numbers(results.activation_mediation, results.activation_block_quantization,
                                     "act-")
    if results.probes is not None:
        numbers |= probe_numbers(results.probes)
    for row in results.ledger["hypotheses"]:
        if row["id"] == "EXP-034" and "overlap" in row:
            numbers[PREFIX + "overlap"] = str(int(row["overlap"]))
            numbers[PREFIX + "expected-overlap"] = fmt(float(row["expected_overlap"]), 2)
    return numbers


def mediation_numbers(mediation: pd.DataFrame, block_quantization: pd.DataFrame,
                      prefix: str) -> dict[str, str]:
    """B-005: the block whose restoration recovers the largest median share (robust to tiny
    denominators) and the block that hurts most when compressed alone (mean rho over languages)."""
    by_block = block_median_share(mediation)
    one_block = block_quantization.groupby("component")["rel_degradation"].mean()
    numbers = {PREFIX + prefix + "top-quantized-block": escape(str(one_block.idxmax())),
               PREFIX + prefix + "top-quantized-block-rho": fmt_pct(float(one_block.max()), 2)}
    if by_block.notna().any():
        numbers[PREFIX + prefix + "top-block"] = escape(str(by_block.idxmax()))
        numbers[PREFIX + prefix + "top-block-share"] = fmt_pct(float(by_block.max()))
    return numbers


def probe_numbers(probes: pd.DataFrame) -> dict[str, str]:
    """B-002: accuracies (mean over languages) at the full-precision probes' best layer and over the
    blocks, and the language whose accuracy quantization lowers most."""
    summary = probe_summary(probes)
    drop = probe_accuracy_drop(probes)
    numbers = {PREFIX + "probe-best-layer": str(summary["best_layer"]),
               PREFIX + "probe-layers": str(int(probes["layer"].max())),
               PREFIX + "probe-largest-drop": fmt_pct(float(drop.max()), 1),
               PREFIX + "probe-largest-drop-language": escape(str(drop.idxmax()))}
    for key, condition in (("fp", "full_precision"), ("quantized", "quantized"), ("transfer", "transfer")):
        numbers[PREFIX + f"probe-{key}-best"] = fmt_pct(summary[f"{condition}_accuracy_best_layer"], 1)
        numbers[PREFIX + f"probe-{key}-mean"] = fmt_pct(summary[f"{condition}_accuracy_mean"], 1)
    return numbers


def probe_figure(probes: pd.DataFrame, config: str) -> Figure:
    """B-002: language-ID accuracy per layer (mean over languages) for the three conditions, and per
    layer and language the accuracy full-precision probes lose on the quantized model's states."""
    by_layer = probes.pivot_table(index="layer", columns="condition", values="accuracy", aggfunc="mean")
    figure, (left, right) = new_figure(PAGE_WIDTH, 2.2, ncols=2)
    labels = {"full_precision": "full precision", "quantized": f"{config} (probe retrained)",
              "transfer": f"{config} (full-precision probe)"}
    for condition, label in labels.items():
        left.plot(by_layer.index, by_layer[condition], marker="o", markersize=3, label=label)
    left.set_xlabel("layer (0: embeddings)")
    left.set_ylabel("language-ID accuracy")
    left.legend(fontsize=6)
    wide = probes.pivot_table(index="layer", columns=["condition", "language"], values="accuracy")
    loss = (wide["full_precision"] - wide["transfer"]) * 100
    limit = float(np.abs(loss.to_numpy(dtype=float)).max()) or 1.0
    _heatmap(right, loss, "full-precision probe on quantized states", "accuracy lost (points)", figure,
             "RdBu_r", (-limit, limit))
    return figure


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
