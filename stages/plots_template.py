"""Stage plots_template: results/plots/offline.html, the template `dvc plots show` uses offline."""

from qfair import paths
from qfair.io import write_text
from qfair.report.plots import VEGA_SCRIPTS, offline_template, read_script
from qfair.stage import run_stage


def main() -> None:
    out = paths.PLOTS_TEMPLATE
    write_text(out, offline_template([read_script(script) for script in VEGA_SCRIPTS]))
    print(f"plots_template: wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    run_stage("plots_template", main, timed=False)
