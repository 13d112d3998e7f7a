"""The scale profile's run (qfair.scale): the GPU guard, the stage order, the committed outputs."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from qfair import scale

ROOT = Path(__file__).resolve().parents[1]


def test_scale_params_are_the_scale_profile() -> None:
    assert (ROOT / "scale" / "params.yaml").read_bytes() == (ROOT / "profiles" / "scale.yaml").read_bytes()


def test_stage_order_matches_the_root_pipeline() -> None:
    # The scale run is the same stages as `dvc repro`, in the root pipeline's order, minus the
    # stages that build the paper from both profiles' results and the controlled family's analysis
    # (its runs are its own pipeline, controlled/).
    root = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    compute = [name for name in root
               if name not in {"report", "paper", "plots_template", "controlled_analysis"}]
    assert sorted(scale.STAGES) == sorted(compute)
    assert [name for name in root if name in scale.STAGES][: len(scale.CPU_STAGES)] != []
    for name in scale.STAGES:
        assert (ROOT / "stages" / f"{name}.py").is_file()


def test_frozen_stage_declares_exactly_the_committed_outputs() -> None:
    spec = yaml.safe_load((ROOT / "scale" / "dvc.yaml").read_text())["stages"]["scale"]
    assert spec["frozen"] is True
    declared = [next(iter(entry)) for entry in spec["outs"] + spec["metrics"]]
    assert sorted(declared) == sorted(scale.COMMITTED)
    assert all(next(iter(entry.values()))["cache"] is False for entry in spec["outs"] + spec["metrics"])


def test_gpu_guard_names_the_profile_and_what_it_needs() -> None:
    problem = scale.gpu_problem(cuda_available=False)
    assert "profile 'scale'" in problem and "CUDA" in problem and "python -m qfair.scale all" in problem
    assert scale.gpu_problem(cuda_available=True) is None


def test_run_without_a_gpu_stops_before_any_stage(tmp_path: Path) -> None:
    # The GPU part on this (CPU) machine: exit 2 and the guard's message, and no stage started.
    done = subprocess.run([sys.executable, "-m", "qfair.scale", "gpu"], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    if "CUDA" not in done.stderr:
        pytest.skip("this machine has a GPU")
    assert done.returncode == 2
    assert "qfair scale: error: profile 'scale'" in done.stderr
    assert "== scale:" not in done.stdout


def test_select_stages() -> None:
    assert scale.select(scale.STAGES, "evaluate", "compress_sweep") == ["evaluate", "compress_sweep"]
    assert scale.select(scale.GPU_STAGES, None, None) == list(scale.GPU_STAGES)
    with pytest.raises(scale.ScaleError, match=r"unknown stage 'evaluat'"):
        scale.select(scale.STAGES, "evaluat", None)


def test_check_params_refuses_another_profile(tmp_path: Path) -> None:
    with pytest.raises(scale.ScaleError, match=r"params\.yaml not found"):
        scale.check_params(tmp_path)
    (tmp_path / "params.yaml").write_bytes((ROOT / "profiles" / "embedded.yaml").read_bytes())
    with pytest.raises(scale.ScaleError, match="profile is 'embedded', expected 'scale'"):
        scale.check_params(tmp_path)


def test_pack_holds_only_committed_outputs(tmp_path: Path) -> None:
    (tmp_path / "results" / "eval").mkdir(parents=True)
    (tmp_path / "results" / "eval" / "per_language.csv").write_text("a\n1\n")
    (tmp_path / "results" / "eval" / "items.csv").write_text("large\n")  # not committed
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.safetensors").write_bytes(b"0")
    packed = scale.pack(tmp_path / "out" / "scale.tar.gz", tmp_path)
    assert packed == ["results/eval/per_language.csv"]
    with tarfile.open(tmp_path / "out" / "scale.tar.gz") as archive:
        assert archive.getnames() == ["results/eval/per_language.csv"]
    assert not list((tmp_path / "out").glob("*.tmp"))
