"""Stage report: paper/generated/ (numbers, tables, figures, appendix, checklist) from pipeline outputs:
the root pipeline's and, where it has run, the scale profile's (scale/)."""

from qfair import paths
from qfair.params import load_params
from qfair.report.build import build_report, load_scale
from qfair.report.controlled import load as load_controlled
from qfair.report.results import load_results
from qfair.report.track_d import load as load_track_d
from qfair.stage import run_stage

OUT = paths.PAPER_GENERATED


def main() -> None:
    params = load_params()
    scale = load_scale()  # the scale profile's committed results (scale/), None before its first run
    files = build_report(load_results(), params, OUT, scale=scale, controlled=load_controlled(),
                         track_d=load_track_d())
    status = f"read from {paths.SCALE}/" if scale else "not run (no results in scale/)"
    print(f"report: scale profile {status}")
    print(f"report: wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    run_stage("report", main, timed=False)
