"""Run facts for the reproducibility checklist: each stage's wall time and the machine it ran on."""

from __future__ import annotations

import contextlib
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
    }
    return facts


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
