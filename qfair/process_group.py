"""The ``torchrun`` process group: whether this process is one rank of several, which, and setting
up and leaving the group. Data-parallel training (qfair.models.train) and scoring
(qfair.scoring.distributed) both build on it.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """True inside a ``torchrun`` launch (it sets ``WORLD_SIZE``, also to 1)."""
    return "WORLD_SIZE" in os.environ


def active() -> bool:
    """True when a process group is initialised (scoring is then shared among its ranks)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """The rank that writes outputs (rank 0; the only rank without ``torchrun``)."""
    return rank() == 0


def setup(device: str = "cpu") -> torch.device:
    """Join the ``torchrun`` process group if launched by it; return this rank's device.

    ``device`` "cuda" gives rank ``LOCAL_RANK`` its own GPU and the NCCL backend; "cpu" uses gloo.
    Without ``torchrun`` this only checks the device and returns it.
    """
    from qfair.models.load import check_device

    check_device(device)
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if not launched():
        return target
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        kwargs = {"device_id": target} if target.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return target


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
