"""CPU numerics that do not depend on the processor, its load or its vendor.

Every library the pipeline computes with picks its kernels by the CPU it finds: ATen (torch's own
kernels: softmax, layer norm, GELU, reductions) by AVX-512/AVX2/default, MKL (torch's matrix
products) by ISA and vendor, OpenBLAS (numpy and scipy) by core type, numpy's ufuncs by SIMD
level, glibc's libm (exp, log, pow, tanh, ...) by FMA. The kernels sum in other orders or round
intermediates differently, so the same seeded run gives other weights on another machine
(measured on an AMD EPYC against this Intel Xeon: 47 result files differed). ``PORTABLE_ENV``
pins each of them to a code path every x86-64 CPU runs identically:

- ``ATEN_CPU_CAPABILITY=default``: ATen's portable (non-AVX) kernels.
- ``MKL_CBWR=COMPATIBLE,STRICT``: MKL's conditional numerical reproducibility, SSE2 branch without
  the approximate ``rcpps``/``rsqrtps`` (which differ between Intel and AMD); STRICT also fixes
  the result of GEMM against thread count and alignment. This is the main speed cost.
- ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN, should any op reach it.
- ``OPENBLAS_CORETYPE=Nehalem``, one OpenBLAS thread: numpy's and scipy's BLAS/LAPACK kernels.
- ``NPY_DISABLE_CPU_FEATURES``: numpy's dispatched SIMD loops (exp, log, ...) beyond its baseline.
- ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4``: libm's non-FMA variants (the FMA ones
  round differently: measured on exp, log, pow, tanh, sin, atan).
- ``MKL_DYNAMIC``/``OMP_DYNAMIC=FALSE`` and a fixed thread count (``deterministic_cpu``): no
  load-dependent threading; ``PYTHONHASHSEED=0``: one set/dict iteration order.

Most of these are read when a library loads (glibc's before the process starts), so
``portable_numerics`` re-executes the process once with them; ``python -m qfair.stage`` (every
stage's command in dvc.yaml) does it before anything is imported. ``QFAIR_NATIVE_NUMERICS=1``
keeps the machine's fastest kernels instead, and the results then depend on the machine.
The speed cost and the proof (byte-identical runs under emulated AVX2-only and SSE-only machines,
``tests/test_determinism.py``) are in docs/reproducibility.md.
"""

from __future__ import annotations

import os
import sys
import warnings

STATIC_THREADING = {"MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}
GLIBC_HWCAPS_OFF = ("-AVX2", "-FMA", "-FMA4")
PORTABLE_ENV = {
    **STATIC_THREADING,
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Nehalem",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "PYTHONHASHSEED": "0",
}
NATIVE_SWITCH = "QFAIR_NATIVE_NUMERICS"


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


def numerics_facts() -> dict[str, object]:
    """What the reproducibility checklist records about the kernels this process used."""
    import torch

    return {"portable_numerics": numerics_pinned(),
            "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{key: os.environ.get(key) for key in ("MKL_CBWR", "OPENBLAS_CORETYPE", "GLIBC_TUNABLES")}}


def deterministic_cpu(threads: int) -> None:
    """Fix the intra-op thread count and use deterministic kernels; warn if numerics are not pinned."""
    import torch

    if os.environ.get(NATIVE_SWITCH) != "1" and not numerics_pinned():
        warnings.warn("CPU kernels are not pinned (run stages through `dvc repro` or "
                      "`python -m qfair.stage`): results may depend on this machine's CPU",
                      stacklevel=2)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False  # oneDNN has no cross-ISA reproducibility mode
