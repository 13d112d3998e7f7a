"""Stage paper: paper/build/main.pdf with latexmk (fails on undefined references or citations) and
a PNG of its first page."""

from pathlib import Path

from qfair.report.pdf import build_pdf, render_page
from qfair.stage import run_stage

PAPER = Path("paper")
PDF = Path("paper/build/main.pdf")
FIRST_PAGE = Path("paper/build/page1.png")


def main() -> None:
    build_pdf(PAPER, PDF)
    render_page(PDF, FIRST_PAGE)
    print(f"paper: wrote {PDF} and {FIRST_PAGE}")


if __name__ == "__main__":
    run_stage("paper", main, timed=False)
