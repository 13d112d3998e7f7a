"""The entry point every DVC stage goes through.

``python -m qfair.stage stages/<name>.py`` (each stage's command in dvc.yaml) pins the CPU
numerics before anything is imported (qfair.determinism) and runs the script. Inside the script,
``run_stage`` times it for the reproducibility checklist (qfair.runinfo) and turns expected errors
(:class:`qfair.errors.QfairError`) into one clear line on stderr and exit status 2;
``QFAIR_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable

from qfair.determinism import portable_numerics
from qfair.errors import QfairError


def run_stage(name: str, main: Callable[[], None], timed: bool = True) -> None:
    """Run a stage's ``main``; exit 2 with one line on an expected error."""
    portable_numerics()  # a stage started as `python stages/x.py` is re-executed once
    try:
        if timed:
            from qfair.runinfo import timed_stage

            with timed_stage(name):
                main()
        else:
            main()
    except QfairError as error:
        if os.environ.get("QFAIR_DEBUG") == "1":
            raise
        print(f"qfair {name}: error: {error}", file=sys.stderr)
        print("  (QFAIR_DEBUG=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str]) -> None:
    if len(argv) < 1 or not argv[0].endswith(".py"):
        raise SystemExit("usage: python -m qfair.stage stages/<name>.py [arguments]")
    portable_numerics()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
