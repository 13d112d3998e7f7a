"""CPU numerics that do not depend on the processor, its load or its vendor.

Every library the pipeline computes with picks its kernels by the CPU it finds: ATen (torch's own
kernels: softmax, layer norm, GELU, reductions) by AVX-512/AVX2/default, MKL (torch's matrix
products) by ISA and vendor, OpenBLAS (numpy and scipy) by core type, numpy's ufuncs by SIMD
level, glibc's libm (exp, log, pow, tanh, ...) by FMA. The kernels sum in other orders or round
intermediates differently, so the same seeded run gives other weights on another machine
(measured on an AMD EPYC against this Intel Xeon: 47 result files differed). ``PORTABLE_ENV``
pins each of them to one code path that every x86-64 CPU with AVX2 (Intel since 2013, AMD since
2015) runs bit for bit alike:

- ``ATEN_CPU_CAPABILITY=avx2``: ATen's AVX2 kernels; their exp/log/tanh are SLEEF's, compiled into
  torch, so they do not depend on the system's libm (ATen's ``default`` kernels call libm, whose
  results change between glibc releases). ``deterministic_cpu`` refuses a CPU without AVX2.
- ``MKL_CBWR=COMPATIBLE,STRICT``: MKL's conditional numerical reproducibility on its SSE2 branch
  without the approximate ``rcpps``/``rsqrtps`` (which differ between Intel and AMD); MKL's other
  branches exist on Intel processors only. STRICT also fixes GEMM results against thread count
  and alignment. This is the main speed cost.
- ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``torch.backends.mkldnn`` off: oneDNN has no reproducible mode.
- ``OPENBLAS_CORETYPE=Haswell``, one OpenBLAS thread: numpy's and scipy's BLAS/LAPACK kernels.
- ``NPY_DISABLE_CPU_FEATURES``: numpy's AVX-512 loops (their results differ from the AVX2 ones).
- ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4``: libm's SSE2 variants for what still calls
  libm (the FMA variants round differently: measured on exp, log, pow, tanh, sin, atan).
- ``MKL_DYNAMIC``/``OMP_DYNAMIC=FALSE`` and a fixed thread count (``deterministic_cpu``): no
  load-dependent threading; ``PYTHONHASHSEED=0``: one set/dict iteration order.

Most of these are read when a library loads (glibc's before the process starts), so
``portable_numerics`` re-executes the process once with them; ``python -m qfair.stage`` (every
stage's command in dvc.yaml) does it before anything is imported. ``QFAIR_NATIVE_NUMERICS=1``
keeps the machine's fastest kernels instead, and the results then depend on the machine.
The speed cost and the proof (byte-identical runs under emulated machines,
``tests/test_determinism.py``) are in docs/reproducibility.md.
"""

from __future__ import annotations

import os
import sys
import warnings

from qfair.errors import QfairError

STATIC_THREADING = {"MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}
GLIBC_HWCAPS_OFF = ("-AVX2", "-FMA", "-FMA4")
PORTABLE_ENV = {
    **STATIC_THREADING,
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "PYTHONHASHSEED": "0",
}
NATIVE_SWITCH = "QFAIR_NATIVE_NUMERICS"


class PortableNumericsError(QfairError):
    """This machine cannot run the pinned kernels."""


def _with_hwcaps_off(tunables: str) -> str:
    """``GLIBC_TUNABLES`` with our hwcaps masks merged into any the caller already set."""
    parts = [p for p in tunables.split(":") if p]
    caps = [p for p in parts if p.startswith("glibc.cpu.hwcaps=")]
    rest = [p for p in parts if not p.startswith("glibc.cpu.hwcaps=")]
    masks = caps[0].split("=", 1)[1].split(",") if caps else []
    masks += [m for m in GLIBC_HWCAPS_OFF if m not in masks]
    return ":".join([*rest, "glibc.cpu.hwcaps=" + ",".join(m for m in masks if m)])


def portable_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with the portable kernel settings applied."""
    env = dict(os.environ if environ is None else environ)
    env.update(PORTABLE_ENV)
    env["GLIBC_TUNABLES"] = _with_hwcaps_off(env.get("GLIBC_TUNABLES", ""))
    return env


def numerics_pinned(environ: dict[str, str] | None = None) -> bool:
    """Whether ``environ`` already carries every portable setting."""
    env = os.environ if environ is None else environ
    return portable_environment(dict(env)) == dict(env)


def portable_numerics(argv: list[str] | None = None) -> None:
    """Re-execute this interpreter with ``PORTABLE_ENV`` unless it is already in force.

    ``argv`` is the command line to run again (default: the one that started this process).
    """
    if os.environ.get(NATIVE_SWITCH) == "1" or numerics_pinned():
        return
    command = argv if argv is not None else list(sys.orig_argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *command[1:]], portable_environment())


def check_capability(capability: str) -> None:
    """Refuse a CPU on which ATen cannot run the pinned AVX2 kernels (it would fall back silently)."""
    if capability != "AVX2":
        raise PortableNumericsError(
            f"this CPU runs ATen's {capability} kernels, not the AVX2 ones the committed results were "
            "computed with (it lacks AVX2/FMA), so they cannot be reproduced bit for bit here; set "
            f"{NATIVE_SWITCH}=1 to run with this machine's own kernels anyway")


def deterministic_cpu(threads: int) -> None:
    """Fix the intra-op thread count and use deterministic kernels; warn if numerics are not pinned."""
    import torch

    native = os.environ.get(NATIVE_SWITCH) == "1"
    if not native and numerics_pinned():
        check_capability(torch.backends.cpu.get_cpu_capability())
    if not native and not numerics_pinned():
        warnings.warn("CPU kernels are not pinned (run stages through `dvc repro` or "
                      "`python -m qfair.stage`): results may depend on this machine's CPU",
                      stacklevel=2)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False  # oneDNN has no cross-ISA reproducibility mode
