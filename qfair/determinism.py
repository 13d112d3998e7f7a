"""Reproducible CPU numerics: a fixed thread count and no dynamic thread adjustment.

MKL (inside the torch CPU build) by default lowers its thread count when the machine is busy
("dynamic" threading). That changes the order of floating-point reductions, so the same seeded
training ends with different weights on a loaded machine than on an idle one (measured: three
different weight hashes for one seed). ``MKL_DYNAMIC=FALSE`` and ``OMP_DYNAMIC=FALSE`` must be in
the environment when the process starts (MKL reads them when torch loads it): every stage's
``cmd`` in dvc.yaml sets them, and ``scripts/run.sh`` exports them.
"""

from __future__ import annotations

import os
import warnings

import torch

STATIC_THREADING = {"MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}


def deterministic_cpu(threads: int) -> None:
    """Fix the intra-op thread count and use deterministic kernels; warn if threading is dynamic."""
    dynamic = [key for key, value in STATIC_THREADING.items() if os.environ.get(key) != value]
    if dynamic:
        warnings.warn(f"{', '.join(dynamic)} not set to FALSE at start-up: CPU results may depend "
                      "on machine load (run through `dvc repro` or `scripts/run.sh`)", stacklevel=2)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
