"""Measured hardware rates, for utilisation figures (MFU) that are honest on any machine.

MFU is always quoted against :func:`measure_peak`, the matrix-product rate measured on the same
device in the same run, never against a data-sheet number.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on CPU), so a wall-clock interval covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds, with the device synchronized on both sides."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def measure_peak(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """bf16 (GPU) or float32 (CPU) matrix-product rate in FLOP/s: random n x n operands, median."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            times.append(timed(lambda: torch.mm(a, b), device)[1])
    return 2 * n**3 / statistics.median(times)


def training_mfu(parameters: int, tokens: int, seconds: float, peak: float) -> float:
    """Model FLOPs utilisation of training: 6 x parameters x tokens / seconds / peak (Kaplan et al.)."""
    return 6 * parameters * tokens / seconds / peak
