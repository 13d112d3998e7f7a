"""B-005 summaries shared by the metrics and the paper: which block mediates a quantization's loss.

A block's share is the median over languages of the share of the language's degradation that
restoring the block from full precision recovers. The median, because a language whose quantization
barely raised its NLL has a near-zero denominator and an unstable share, which would drive a mean.
Light on purpose (pandas only): the report stage imports it without the forward-pass modules.
"""

from __future__ import annotations

import pandas as pd


def block_median_share(mediated: pd.DataFrame) -> pd.Series:
    """Median recovered share over languages per block (heads left out), indexed by component."""
    blocks = mediated[mediated["kind"] != "head"]
    return blocks.groupby("component")["recovered_share"].median()


def top_block(mediated: pd.DataFrame) -> dict:
    """The block whose restoration recovers the largest median share of the degradation."""
    by_block = block_median_share(mediated)
    if not by_block.notna().any():
        return {"top_mediating_block": None, "top_mediating_block_share": None}
    return {"top_mediating_block": str(by_block.idxmax()), "top_mediating_block_share": float(by_block.max())}
