"""Stage report: paper/generated/ (numbers, tables, figures, appendix, checklist) from pipeline outputs."""

from qfair import paths
from qfair.params import load_params
from qfair.report.build import build_report
from qfair.report.results import load_results
from qfair.stage import run_stage

OUT = paths.PAPER_GENERATED


def main() -> None:
    params = load_params()
    files = build_report(load_results(), params, OUT)
    print(f"report: wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    run_stage("report", main, timed=False)
