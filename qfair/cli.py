"""The ``qfair`` command: ``qfair check-repro`` (did this machine reproduce the committed results?)."""

from __future__ import annotations

import argparse
import sys

from qfair import check_repro


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qfair")
    commands = parser.add_subparsers(dest="command", required=True)
    repro = commands.add_parser("check-repro", help="compare the regenerated results with the committed ones")
    repro.add_argument("--ref", default="HEAD", help="the commit to compare with (default: HEAD)")
    repro.add_argument("--strict", action="store_true", help="exit 1 unless identical")
    args = parser.parse_args(argv)
    try:
        result = check_repro.compare(".", args.ref)
    except FileNotFoundError as error:
        print(f"qfair check-repro: error: {error}", file=sys.stderr)
        return 2
    print(check_repro.report(result, args.ref))
    return 1 if args.strict and not result.identical else 0


if __name__ == "__main__":
    raise SystemExit(main())
