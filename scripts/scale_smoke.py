"""A few-minute rehearsal of the scale run's GPU stages on a 2-layer model (docs/profiles.md).

The scale run takes most of a GPU session, and a method that breaks on CUDA twenty minutes in
costs all of it. This runs the same stage scripts (qfair.scale's GPU stages) in a scratch copy of
``scale/``: the model shrunk and the item counts cut (:data:`SMOKE`), every config of
``scale/params.yaml`` kept, so each one meets the device first. Nothing it writes is a result.

    python scripts/scale_smoke.py [--device cuda] [--folder /tmp/scale-smoke] [--stages ...]

It needs the prepared inputs (``python -m qfair.scale prepare``): ``scale/data/corpus`` and
``scale/models/tokenizer``, which it links, never writes.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import yaml

from qfair.scale import FOLDER, GPU_STAGES, run_stages

# Overrides of scale/params.yaml: sizes only, never a method or its settings.
SMOKE = {
    "model": {"hidden_size": 256, "n_layer": 2, "n_head": 4},
    "train": {"steps": 6, "batch_size": 4, "context_length": 128, "warmup_steps": 1, "eval_every": 3,
              "checkpoint_every": 2, "log_checkpoints": 3, "dev_blocks": 2, "compile": False},
    "eval": {"splits": ["test"], "bootstrap_resamples": 100, "cost": {"repeats": 1}},
    "compress": {"items_per_language": 10, "calibration_items": 4, "bootstrap_resamples": 100},
    "analysis": {"permutation_resamples": 99, "bootstrap_resamples": 100},
    "interpretability": {"items_per_language": 8, "null_resamples": 99},
}


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied key by key (nested mappings merged, not replaced)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) else value
    return out


def smoke_params(params: dict, device: str) -> dict:
    """The scale params with :data:`SMOKE` applied and every stage on ``device``."""
    params = merge(params, SMOKE)
    params["train"]["device"] = params["eval"]["device"] = device
    if device == "cpu":  # a check of this script and the stage chain: bfloat16 is slow on CPUs
        params["train"].update(precision="float32", threads=os.cpu_count() or 1)
        params["eval"]["dtype"] = "float32"
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scale-smoke"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--stages", nargs="+", default=list(GPU_STAGES), choices=GPU_STAGES,
                        help="a subset, in pipeline order (on a CPU, evaluate and activation_profile "
                             "score the whole test split: hours)")
    args = parser.parse_args(argv)
    for needed in (FOLDER / "data" / "corpus", FOLDER / "models" / "tokenizer"):
        if not needed.is_dir():
            parser.error(f"{needed} is missing: run `python -m qfair.scale prepare` first")
    shutil.rmtree(args.folder, ignore_errors=True)
    (args.folder / "models").mkdir(parents=True)
    (args.folder / "data").symlink_to((FOLDER / "data").resolve())
    (args.folder / "models" / "tokenizer").symlink_to((FOLDER / "models" / "tokenizer").resolve())
    params = yaml.safe_load((FOLDER / "params.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(smoke_params(params, args.device), sort_keys=False)
    (args.folder / "params.yaml").write_text(text, encoding="utf-8")
    try:
        seconds = run_stages(args.stages, folder=args.folder)
    finally:
        if not args.keep:
            shutil.rmtree(args.folder, ignore_errors=True)
    print("smoke passed:", ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
