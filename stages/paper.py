"""Stage paper: paper/build/main.pdf with latexmk (fails on undefined references or citations) and
a PNG of its first page."""

from qfair import paths
from qfair.report.pdf import build_pdf, render_page
from qfair.stage import run_stage


def main() -> None:
    build_pdf(paths.PAPER, paths.PAPER_PDF)
    render_page(paths.PAPER_PDF, paths.PAPER_FIRST_PAGE)
    print(f"paper: wrote {paths.PAPER_PDF} and {paths.PAPER_FIRST_PAGE}")


if __name__ == "__main__":
    run_stage("paper", main, timed=False)
