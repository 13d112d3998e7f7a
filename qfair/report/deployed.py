"""The deployed quantizers in the paper (issue 13; EXP-035..038): a methods table and two figures.

Both figures read the sweep's disparity table; a profile whose sweep has none of these families gets
a figure saying so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qfair.report.figures import not_produced
from qfair.report.latex import REL
from qfair.report.style import PAGE_WIDTH, PALETTE, interval_segments, new_figure
from qfair.report.tables import disparity_table

WEIGHT_FAMILIES = ("gptq", "lagptq", "awq", "hqq")  # weight-only, calibrated or not
ACTIVATION_FAMILIES = ("actquant", "smoothquant", "hadamard")  # weights and layer inputs
FAMILIES = WEIGHT_FAMILIES + ACTIVATION_FAMILIES
CALIBRATION_SETS = ("reference", "uniform", "mix", "oracle")
REFERENCE_CONFIG = "rtn-w4-ch-sym"  # the plain 4-bit baseline every figure shows


def deployed_rows(disparity: pd.DataFrame) -> pd.DataFrame:
    """The sweep's rows of the deployed families, weight-only first, in sweep order."""
    order = {family: index for index, family in enumerate(FAMILIES)}
    rows = disparity[disparity["method"].isin(FAMILIES)].copy()
    rows["_order"] = rows["method"].map(order)
    return rows.sort_values("_order", kind="stable").drop(columns="_order")


def deployed_numbers(results) -> dict[str, str]:
    """``deployed/configs``: how many deployed-family configs this profile's sweep has."""
    return {"deployed/configs": str(len(deployed_rows(results.disparity)))}


def methods_table(disparity: pd.DataFrame) -> str:
    """Range, worst language and mean relative degradation of every deployed config."""
    rows = deployed_rows(disparity)
    weight_only = int(rows["method"].isin(WEIGHT_FAMILIES).sum())
    baseline = [REFERENCE_CONFIG] if REFERENCE_CONFIG in set(disparity["config"]) else []
    configs = baseline + list(rows["config"])
    offset = len(configs) - len(rows)
    return disparity_table(disparity, configs, groups=tuple(g for g in (offset, offset + weight_only)
                                                            if 0 < g < len(configs)))


def _interval_bars(axes, rows: pd.DataFrame, colors: list, confidence: float) -> None:
    position = np.arange(len(rows))
    interval_segments(axes, rows["range_ci_low"], rows["range_ci_high"], position)
    axes.scatter(rows["range"], position, c=colors, s=14, zorder=3)
    axes.set_yticks(position, rows["config"], fontsize=6)
    axes.invert_yaxis()
    axes.set_xscale("symlog", linthresh=1e-3)
    axes.set_xlabel(rf"disparity range of ${REL}$ ({confidence:.0%} CI)")


def disparity_by_family(disparity: pd.DataFrame, confidence: float, profile: str) -> Figure:
    """Disparity range with its CI for each deployed config, against the 4-bit RTN baseline:
    weight-only families (left), weight-and-activation families by activation bits (right)."""
    rows = deployed_rows(disparity)
    if rows.empty:
        return not_produced("deployed quantizers (EXP-035..038)", profile, "no such config in its sweep")
    baseline = disparity[disparity["config"] == REFERENCE_CONFIG]
    weights = pd.concat([baseline, rows[rows["method"].isin(WEIGHT_FAMILIES)]])
    activations = rows[rows["method"].isin(ACTIVATION_FAMILIES)].sort_values(["bits", "config"],
                                                                              ascending=[False, True])
    height = 0.8 + 0.14 * max(len(weights), len(activations))
    figure, (left, right) = new_figure(PAGE_WIDTH, height, ncols=2)
    color = {family: PALETTE[index % len(PALETTE)] for index, family in enumerate(("rtn", *FAMILIES))}
    for axes, part, title in ((left, weights, "weight-only, 4 bits"),
                              (right, activations, "weights and layer inputs (W/A bits)")):
        if part.empty:
            axes.set_axis_off()
            continue
        _interval_bars(axes, part, [color[m] for m in part["method"]], confidence)
        axes.set_title(title, fontsize=7)
    return figure


def calibration_language(disparity: pd.DataFrame, confidence: float, profile: str) -> Figure:
    """EXP-036/037: disparity range of GPTQ and AWQ by calibration set, and LA-GPTQ's weightings."""
    rows = disparity[disparity["method"].isin(("gptq", "awq", "lagptq"))].copy()
    if rows.empty:
        return not_produced("calibration language (EXP-036, EXP-037)", profile, "no GPTQ or AWQ config")
    rows["set"] = rows["config"].str.extract(r"-(reference|uniform|mix|oracle|minimax)(?:-act)?$")[0]
    rank = {name: index for index, name in enumerate((*CALIBRATION_SETS, "minimax"))}
    rows = rows.sort_values(["method", "set"], key=lambda c: c.map(rank) if c.name == "set" else c)
    figure, axes = new_figure(PAGE_WIDTH / 2, 0.8 + 0.16 * len(rows))
    palette = {name: PALETTE[index] for index, name in enumerate(rank)}
    _interval_bars(axes, rows, [palette.get(s, "0.5") for s in rows["set"]], confidence)
    return figure
