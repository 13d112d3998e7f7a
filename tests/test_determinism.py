"""Portable CPU numerics: the same bytes whatever processor the pipeline runs on.

Another machine is emulated on this one by the switches each library reads to pick its kernels
(the best ISA it may use): an AVX-512 machine without the newest extensions (Skylake-X or Zen 4
class) and an AVX2-only one (Haswell or Zen 2 class); a CPU without AVX2 is refused.
``tests/numerics_workload.py`` (training, scoring, one quantization config and the statistics, in
miniature) must print the same hashes under each. The control runs the same
emulations with the machine's own kernels (``QFAIR_NATIVE_NUMERICS=1``) and must see different
hashes, so the emulation really changes the kernels and this test can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfair.determinism import NATIVE_SWITCH, PORTABLE_ENV, numerics_pinned, portable_environment

WORKLOAD = Path(__file__).with_name("numerics_workload.py")
ROOT = Path(__file__).resolve().parents[1]
MACHINES = {
    "this machine": {},
    "AVX-512 without the newest extensions": {
        "ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "OPENBLAS_CORETYPE": "SkylakeX", "NPY_DISABLE_CPU_FEATURES": "AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512_FP16,-AVX512_BF16,-AMX_BF16,-AMX_INT8,-AMX_TILE",
    },
    "AVX2 only": {
        "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ",
    },
}


def _host_has_avx512() -> bool:
    """An emulation can only take extensions away: AVX-512 kernels need an AVX-512 host."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return "avx512f" in flags


HOST_AVX512 = _host_has_avx512()


def run_workload(machine: dict[str, str], native: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV and k != "GLIBC_TUNABLES"}
    env.update(machine, PYTHONPATH=str(ROOT))
    env.pop(NATIVE_SWITCH, None)
    if native:
        env[NATIVE_SWITCH] = "1"
    done = subprocess.run([sys.executable, str(WORKLOAD)], env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def portable_runs() -> dict[str, dict[str, str]]:
    return {name: run_workload(machine, native=False) for name, machine in MACHINES.items()}


def test_portable_numerics_give_identical_bytes_on_every_emulated_machine(portable_runs):
    reference = portable_runs["this machine"]
    assert reference["aten_cpu_capability"] == "AVX2"
    for name, result in portable_runs.items():
        differing = [key for key in reference if result[key] != reference[key]]
        assert not differing, f"{name}: {differing} differ from this machine's portable run"


def test_emulated_machines_change_native_results(portable_runs):
    """The control: without pinning, the emulations pick other kernels and other bytes.

    On an AVX2-only host (many AMD EPYC machines) "AVX-512" cannot be emulated (its kernels would
    stop on an illegal instruction) and "AVX2 only" is the host itself, so no emulation changes a
    kernel and the control cannot be made there; the portable runs above are still compared.
    """
    if not HOST_AVX512:
        pytest.skip("needs an AVX-512 host to emulate other machines by taking extensions away")
    native = {name: run_workload(machine, native=True) for name, machine in MACHINES.items()}
    weights = {result["weights"] for result in native.values()}
    assert len(weights) >= 2, "the emulated machines did not change any kernel: the test proves nothing"
    statistics = {result["numpy_exp_log"] for result in native.values()}
    assert len(statistics) >= 2, "numpy/libm emulation changed nothing"


def test_portable_environment_merges_glibc_tunables():
    env = portable_environment({"GLIBC_TUNABLES": "glibc.malloc.check=1:glibc.cpu.hwcaps=-AVX512F"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.check=1:glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-FMA4"
    assert numerics_pinned(env)
    assert not numerics_pinned({**env, "ATEN_CPU_CAPABILITY": "avx512"})


def test_a_stage_reexecutes_itself_with_pinned_numerics(tmp_path):
    """`python stages/x.py` run by hand still gets the portable kernels (run_stage re-executes)."""
    script = tmp_path / "probe.py"
    script.write_text("import json, os\nfrom qfair.stage import run_stage\n"
                      "def main():\n    print(json.dumps(dict(os.environ)))\n"
                      "run_stage('probe', main, timed=False)\n")
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    env.update(PYTHONPATH=str(ROOT))
    env.pop(NATIVE_SWITCH, None)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert numerics_pinned(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_cpu_without_avx2_is_refused_with_the_way_out():
    from qfair.determinism import PortableNumericsError, check_capability

    check_capability("AVX2")
    with pytest.raises(PortableNumericsError, match="QFAIR_NATIVE_NUMERICS=1"):
        check_capability("DEFAULT")
