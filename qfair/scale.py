"""The scale profile's run: the same stages as ``dvc repro``, in ``scale/``, on one GPU.

``python -m qfair.scale all`` (the frozen stage of ``scale/dvc.yaml``; docs/profiles.md) runs every
compute stage of the pipeline with ``scale/`` as its working folder, so each stage reads
``scale/params.yaml`` (a copy of ``profiles/scale.yaml``) and writes ``scale/data``,
``scale/models`` and ``scale/results`` exactly as the embedded profile writes the repository root.
Only the small outputs (:data:`COMMITTED`) are versioned in git; CPU machines never run a GPU stage
and read those. The GPU check runs before any work, so a run started without a GPU stops at once.

The CPU part (corpus, tokenizer, tokenizer premiums) and the GPU part can run on different
machines: a GPU machine without registry access gets the prepared ``scale/data`` and
``scale/models/tokenizer`` carried to it (``prepare`` here, ``gpu`` there, ``analyse`` anywhere),
see docs/profiles.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TextIO

from qfair.errors import QfairError

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "scale"
PROFILE = "scale"

CPU_STAGES = ("validate_params", "prepare_corpus", "train_tokenizer", "tokenizer_premium")
GPU_STAGES = ("train_model", "evaluate", "compress_sweep", "compare_configs", "weight_census",
              "activation_profile", "interpretability", "track_d")
# (and what reads their uncommitted outputs: per-item NLLs, model weights)
ANALYSIS_STAGES = ("mechanisms", "snapshot")  # read committed result files only: CPU, anywhere
STAGES = CPU_STAGES + GPU_STAGES + ANALYSIS_STAGES

# What the report and `dvc metrics` read; versioned in git as the outs of scale/dvc.yaml (no text,
# no weights). Paths are relative to scale/.
COMMITTED = (
    "data/corpus/manifest.json",
    "metrics/train.json", "metrics/train/train_loss.csv", "metrics/train/dev_loss.csv",
    "metrics/eval.json", "metrics/sweep.json", "metrics/census.json", "metrics/tokenizers.json",
    "metrics/hypotheses.json", "metrics/cost.json", "metrics/interpretability.json",
    "results/eval/per_language.csv", "results/eval/cost.csv",
    "results/sweep/per_language.csv", "results/sweep/disparity.csv", "results/sweep/threshold_bits.csv",
    "results/sweep/comparisons.csv",
    "results/sweep/plots/disparity_vs_bits.csv", "results/sweep/plots/degradation_vs_bits.csv",
    "results/census/tensors.csv", "results/census/attention_heads.csv", "results/census/summary.json",
    "results/activations/layers.csv", "results/activations/sink_heads.csv",
    "results/activations/input_outliers.csv", "results/activations/input_outliers_languages.csv",
    "results/tokenizers/premium.csv", "results/interpretability",
    "results/analysis", "results/hypotheses.json", "results/SNAPSHOT.md", "results/timings",
)


class ScaleError(QfairError):
    """The scale run cannot start here; the message names what is missing."""


class StageFailed(ScaleError):
    """A stage script exited non-zero; ``stage`` names it."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def gpu_problem(cuda_available: bool | None = None) -> str | None:
    """Why this machine cannot run the scale profile's GPU stages (None if it can)."""
    import torch

    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if available:
        return None
    return ("profile 'scale' trains and evaluates a ~100M-parameter model on a CUDA GPU "
            "(scale/params.yaml: train.device and eval.device are 'cuda'), and this machine has "
            "none (torch.cuda.is_available() is False). CPU machines read the committed results "
            "in scale/ (dvc repro never starts this stage); regenerate them on a GPU machine with "
            "`python -m qfair.scale all` (docs/profiles.md)")


def check_params(folder: Path = FOLDER) -> None:
    """scale/params.yaml is valid and is the scale profile (before any stage runs)."""
    from qfair.params import load_params

    path = folder / "params.yaml"
    if not path.is_file():
        raise ScaleError(f"{path} not found: it is the scale profile's params "
                         "(a copy of profiles/scale.yaml)")
    params = load_params(path)
    if params.profile != PROFILE:
        raise ScaleError(f"{path}: profile is {params.profile!r}, expected {PROFILE!r}")


def select(stages: tuple[str, ...], start: str | None, stop: str | None) -> list[str]:
    """The stages from ``start`` to ``stop`` (inclusive) in pipeline order."""
    for name in (start, stop):
        if name is not None and name not in stages:
            raise ScaleError(f"unknown stage {name!r}; the scale run's stages are {list(stages)}")
    first = stages.index(start) if start else 0
    last = stages.index(stop) if stop else len(stages) - 1
    return list(stages[first : last + 1])


def run_stages(names: list[str], folder: Path = FOLDER, log: TextIO | None = None) -> dict[str, float]:
    """Run each stage script as `dvc repro` would, in ``folder``; stop at the first that fails
    (:class:`StageFailed`). The stages' output goes to ``log`` when given, else to this process'."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    seconds = {}
    for name in names:
        print(f"== {folder.name}: {name}", file=log or sys.stdout, flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "qfair.stage", str(ROOT / "stages" / f"{name}.py")],
                              cwd=folder, env=env, check=False, stdout=log,
                              stderr=subprocess.STDOUT if log else None)
        seconds[name] = round(time.perf_counter() - start, 1)
        if done.returncode != 0:
            where = f"see {log.name}" if log else "its message is above"
            raise StageFailed(name, f"stage {name} failed in {folder} (exit {done.returncode}); {where}")
        print(f"== {folder.name}: {name} done in {seconds[name]:.0f} s", file=log or sys.stdout, flush=True)
    return seconds


def pack_files(target: Path, folder: Path, names: list[str]) -> list[str]:
    """``names`` (relative to ``folder``) as one .tar.gz, written atomically; returns them."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
        with tarfile.open(fileobj=tmp, mode="w:gz") as archive:
            for name in names:
                archive.add(folder / name, arcname=name)
    os.replace(tmp.name, target)
    return names


def pack(target: Path, folder: Path = FOLDER) -> list[str]:
    """The committed outputs that exist, as one .tar.gz (what a GPU machine sends back)."""
    return pack_files(target, folder, [name for name in COMMITTED if (folder / name).exists()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qfair.scale", description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["all", "prepare", "gpu", "analyse"],
                        help="all: every stage; prepare: the CPU stages before training; gpu: training, "
                             "evaluation, sweep, census, activations; analyse: the ledger and snapshot (CPU)")
    parser.add_argument("--from", dest="start", help="first stage to run")
    parser.add_argument("--to", dest="stop", help="last stage to run")
    parser.add_argument("--pack", type=Path, help="write the committed outputs to this .tar.gz after the run")
    args = parser.parse_args(argv)
    stages = {"all": STAGES, "prepare": CPU_STAGES, "gpu": GPU_STAGES, "analyse": ANALYSIS_STAGES}[args.part]
    try:
        names = select(stages, args.start, args.stop)
        if any(name in GPU_STAGES for name in names) and (problem := gpu_problem()):
            raise ScaleError(problem)
        check_params()
        try:
            try:
                seconds = run_stages(names)
            except StageFailed as error:
                raise ScaleError(f"{error}. Rerun from it with "
                                 f"`python -m qfair.scale all --from {error.stage}`") from None
        finally:
            if args.pack:
                print(f"packed {len(pack(args.pack))} outputs into {args.pack}")
    except QfairError as error:
        print(f"qfair scale: error: {error}", file=sys.stderr)
        return 2
    print("scale: " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
