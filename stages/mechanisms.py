"""Stage mechanisms: Track A's mechanism tables and the hypothesis ledger (qfair.analysis.mechanisms_run)."""

from qfair import paths
from qfair.analysis.mechanisms_run import ledger_metrics, run_mechanisms
from qfair.io import write_csv, write_json
from qfair.params import load_params
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    run = run_mechanisms(params)
    for unit, table in run.tables.items():
        write_csv(paths.ANALYSIS / f"{unit}s.csv", table.reset_index(names=unit),
                  may_be_empty=["resource_level"])
    write_csv(paths.ANALYSIS / "components.csv", run.components)
    write_json(paths.HYPOTHESES, {
        "outlier_layers": run.outliers, "hypotheses": run.ledger,
        **({} if run.levels.complete else {"resource_level": run.levels.describe()})})
    write_json(paths.HYPOTHESES_METRICS, ledger_metrics(run.ledger))
    for r in run.ledger:
        value = f"{r['value']:+.3f}" if "value" in r else ""
        value += f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if "ci_low" in r else ""
        print(f"{r['id']:10s} {r['verdict']:12s} {value} {r.get('reason', '')}")
    if not run.levels.complete:
        print(f"resource level: {run.levels.source}; none for {run.levels.missing}, left out of the "
              "hypotheses on resource_level")


if __name__ == "__main__":
    run_stage("mechanisms", main)
