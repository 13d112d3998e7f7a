"""Run facts for the reproducibility checklist: each stage's wall time and the machine it ran on."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

from qfair.paths import TIMINGS


def machine_facts() -> dict[str, object]:
    """Hardware and core software of this process (no host names or user data)."""
    import torch

    facts: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        **software_facts(),
    }
    return facts


def software_facts() -> dict[str, str | None]:
    """What identifies the numerical software beyond its version number.

    Two builds of one torch version can round differently (benchmarks/NOTES.md: an Intel host's
    local ``torch 2.13.0+cpu`` wheel differs from the committed run's at training step 4 by one
    float32 ULP), so check-repro names these when results differ: the commit torch was built from,
    the hash of the installed wheel's RECORD (the sha256 of every file it installed), the CPU
    kernel set torch dispatches to, and the C library.
    """
    import torch

    build = torch.__config__.show()
    commit = build.split("COMMIT_SHA=", 1)[1].split(",", 1)[0].strip() if "COMMIT_SHA=" in build else None
    try:
        record = importlib.metadata.distribution("torch").read_text("RECORD") or ""
        record_hash: str | None = hashlib.sha256(record.encode()).hexdigest()[:16] if record else None
    except importlib.metadata.PackageNotFoundError:
        record_hash = None
    libc, libc_version = platform.libc_ver()
    return {"torch_commit": commit, "torch_record_sha256": record_hash,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "libc": f"{libc} {libc_version}".strip() or None}


@contextlib.contextmanager
def timed_stage(name: str, folder: Path | str = TIMINGS) -> Iterator[None]:
    """Time the body; on success write ``<folder>/<name>.json`` (seconds and machine facts)."""
    from qfair.io import write_json

    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank records the stage
        facts = {"stage": name, "seconds": round(seconds, 1), **machine_facts()}
        write_json(Path(folder) / f"{name}.json", facts)
