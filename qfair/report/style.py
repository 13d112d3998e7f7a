"""One matplotlib style for every figure, and atomic, reproducible figure files.

Figures are written twice: a vector PDF for the paper and a PNG for the README and ``dvc plots``.
PDF metadata carries no creation date, so an unchanged figure is byte-identical on a rerun.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from qfair.io import atomic_path

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
PAGE_WIDTH = 7.0  # inches: both columns

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "figure.dpi": 150,
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,  # embed TrueType, so text in the PDF stays text
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "svg.hashsalt": "qfair",
}


def new_figure(width: float = COLUMN_WIDTH, height: float = 2.4, **subplots: object):
    """``plt.subplots`` under the shared style; returns ``(figure, axes)``."""
    with plt.rc_context(STYLE):
        return plt.subplots(figsize=(width, height), layout="constrained", **subplots)


def interval_segments(axes, low, high, position) -> None:
    """Horizontal CI segments from ``low`` to ``high`` at each ``position`` (drawn as segments, not
    error bars: a bootstrap interval need not contain its point estimate)."""
    axes.hlines(position, low, high, colors="0.6", linewidth=0.8)


def save_figure(figure: Figure, stem: Path | str, png_dpi: int = 200) -> list[Path]:
    """Write ``<stem>.pdf`` and ``<stem>.png`` atomically, then close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for suffix, options in (
            (".pdf", {"metadata": {"CreationDate": None, "Producer": "qfair"}}),
            (".png", {"dpi": png_dpi, "metadata": {"Software": None}}),
        ):
            target = stem.with_suffix(suffix)
            with atomic_path(target) as temporary:
                figure.savefig(temporary, format=suffix[1:], **options)
            written.append(target)
    plt.close(figure)
    return written
