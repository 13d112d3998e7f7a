"""The ``qfair`` command.

``qfair check-repro``: did this machine reproduce the committed results?
``qfair index``: regenerate docs/experiments.md, the experiment index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qfair import check_repro


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qfair")
    commands = parser.add_subparsers(dest="command", required=True)
    repro = commands.add_parser("check-repro", help="compare the regenerated results with the committed ones")
    repro.add_argument("--ref", default="HEAD", help="the commit to compare with (default: HEAD)")
    repro.add_argument("--strict", action="store_true", help="exit 1 unless identical")
    index = commands.add_parser("index", help="regenerate docs/experiments.md from the catalogue")
    index.add_argument("--params", default="params.yaml")
    index.add_argument("--out", default="docs/experiments.md")
    args = parser.parse_args(argv)
    if args.command == "index":
        return write_index(Path(args.params), Path(args.out))
    try:
        result = check_repro.compare(".", args.ref)
    except FileNotFoundError as error:
        print(f"qfair check-repro: error: {error}", file=sys.stderr)
        return 2
    print(check_repro.report(result, args.ref))
    return 1 if args.strict and not result.identical else 0


def write_index(params: Path, out: Path) -> int:
    """Write the experiment index for the hypotheses of ``params`` (see qfair.report.index)."""
    from qfair.io import write_text
    from qfair.report.index import index_markdown, paper_labels, registered_hypotheses

    hypotheses = registered_hypotheses(params, params.parent / "controlled" / "params.yaml")
    write_text(out, index_markdown(hypotheses, paper_labels("paper")))
    print(f"qfair index: wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
