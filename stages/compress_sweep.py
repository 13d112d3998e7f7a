"""Stage compress_sweep: every compression config x every language, with disparity statistics.

The work is :func:`qfair.quant.sweep_runner.compress_sweep` (checks, calibration, the sweep, with
per-config partial results that let an interrupted run resume) and
:func:`qfair.quant.sweep_runner.sweep_tables`; this script writes their outputs.
"""

from qfair import paths
from qfair.io import write_csv, write_json
from qfair.params import load_params
from qfair.quant.sweep_runner import clear_partial, compress_sweep, sweep_metrics, sweep_tables
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    cp = params.compress
    run = compress_sweep(params, paths.CORPUS, paths.final_model(params.profile),
                         partial=paths.SWEEP_PARTIAL)
    tables = sweep_tables(run, cp.bootstrap_resamples, params.eval.confidence, cp.seed,
                          params.eval.ci_method, cp.threshold_tau)
    write_csv(paths.SWEEP / "items.csv", run.items)
    write_csv(paths.SWEEP / "per_language.csv", tables["per_language"], may_be_empty=["resource_level"])
    write_csv(paths.SWEEP / "disparity.csv", tables["disparity"])
    write_csv(paths.SWEEP / "threshold_bits.csv", tables["threshold_bits"], may_be_empty=["resource_level"])
    write_csv(paths.SWEEP / "plots/disparity_vs_bits.csv", tables["disparity_vs_bits"])
    write_csv(paths.SWEEP / "plots/degradation_vs_bits.csv", tables["degradation_vs_bits"])
    write_json(paths.SWEEP_METRICS, sweep_metrics(run, tables["disparity"]))
    clear_partial(paths.SWEEP_PARTIAL)
    print(tables["disparity"][["config", "range", "range_ci_low", "range_ci_high", "mean", "worst_language"]]
          .to_string(index=False))
    print(f"sweep: {len(run.configs)} configs in {run.seconds:.0f} s")
    if not run.levels.complete:
        print(f"resource level: {run.levels.source}; none for {run.levels.missing}: tercile ratios use "
              f"the other {len(run.levels.known(sorted(run.texts)))} languages")


if __name__ == "__main__":
    run_stage("compress_sweep", main)
