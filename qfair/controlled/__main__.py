"""``python -m qfair.controlled``: prepare the pools (CPU), run the family (GPU), or one run.

- ``prepare``: the target languages' training pools into ``controlled/data/pools`` (needs the scale
  corpus' registry packages; run where ``python -m qfair.scale prepare`` ran);
- ``gpu``: every run (or ``--runs``), ``workers`` at once, then ``--pack`` the small results;
- ``run NAME``: one run (the command of controlled/dvc.yaml's frozen ``run@NAME`` stages).

The runs train on a GPU; on a machine without one they stop before any work, naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qfair.controlled.design import load_spec
from qfair.controlled.family import FOLDER, pack, prepare_pools, run_family
from qfair.errors import QfairError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qfair.controlled", description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["prepare", "gpu", "run"])
    parser.add_argument("name", nargs="?", help="run: the run's name (controlled/params.yaml runs)")
    parser.add_argument("--runs", nargs="+", help="gpu: only these runs")
    parser.add_argument("--workers", type=int, help="gpu: runs at once (default: params' workers)")
    parser.add_argument("--pack", type=Path, help="gpu: write the runs' small results to this .tar.gz")
    parser.add_argument("--force", action="store_true", help="rerun runs whose results are complete")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="rehearse on a CPU (tests; a CPU-sized spec)")
    parser.add_argument("--folder", type=Path, default=FOLDER,
                        help="the family's folder (default controlled/)")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.folder / "params.yaml")
        if args.part == "prepare":
            sizes = prepare_pools(spec, args.folder / "data" / "pools", args.folder)
            print("pools: " + ", ".join(f"{lang} {size:,} bytes" for lang, size in sizes.items()))
            return 0
        if not args.allow_cpu:
            from qfair.scale import gpu_problem

            if gpu_problem() is not None:
                raise QfairError("the controlled family trains its runs on a CUDA GPU and this machine "
                                 "has none (torch.cuda.is_available() is False); CPU machines read the "
                                 "committed results in controlled/runs (dvc repro never starts a run)")
        names = [args.name] if args.part == "run" else args.runs
        if args.part == "run" and not args.name:
            parser.error("run needs the run's name")
        try:
            outcomes = run_family(spec, names, args.workers or spec.workers, args.folder, force=args.force)
        finally:
            if args.pack:
                print(f"packed {len(pack(args.pack, args.folder))} files into {args.pack}")
    except QfairError as error:
        print(f"qfair controlled: error: {error}", file=sys.stderr)
        return 2
    failed = {name: outcome for name, outcome in outcomes.items()
              if outcome not in ("ok", "skipped: complete")}
    print(f"controlled: {len(outcomes) - len(failed)} of {len(outcomes)} runs done" +
          (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
