"""Stage compare_configs: each pre-registered config comparison (EXP-031) on the sweep's per-item NLLs.

Writes the paired-bootstrap statistics (:func:`qfair.analysis.sweep.comparison_table`) as a small
table; the mechanisms stage's ledger turns them into verdicts. Kept apart from compress_sweep so a
changed hypothesis reruns this, not the sweep, and apart from mechanisms so that a run whose
per-item NLLs stay on the GPU machine (the scale profile) still commits the comparison.
"""

import pandas as pd

from qfair import paths
from qfair.analysis.sweep import COMPARISON_CI_COLUMNS, comparison_table
from qfair.io import write_csv
from qfair.params import load_params
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    cp = params.compress
    rules = [r for r in params.hypotheses if r.kind == "range_reduction"]
    items = pd.read_csv(paths.SWEEP / "items.csv")
    table = comparison_table(items, rules, cp.bootstrap_resamples, params.eval.confidence, cp.seed,
                             params.eval.ci_method)
    # A degenerate bootstrap (e.g. every resample ties) has no interval: an empty cell, INCONCLUSIVE
    write_csv(paths.SWEEP_COMPARISONS, table, may_be_empty=COMPARISON_CI_COLUMNS)
    print(table.to_string(index=False))


if __name__ == "__main__":
    run_stage("compare_configs", main)
