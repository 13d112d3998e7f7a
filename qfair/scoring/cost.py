"""C-004: measured cost of scoring each language's parallel test set (time, energy, CO2e).

After the evaluation proper, every language's test split is scored again in a separate timed pass
(``repeats`` times, after one untimed warm-up pass), through the same scorer the evaluation used on
one device. Nothing here feeds the evaluation's outputs: the NLLs of these passes are discarded.

- ``seconds``: wall time (``time.perf_counter``) of the ``repeats`` passes over the language, run
  back to back in one window, divided by ``repeats``, with ``torch.cuda.synchronize`` before and
  after on a GPU; it includes tokenization and batching.
- ``cpu_seconds``: this process's CPU time (``time.process_time``, all its threads) per pass.
- ``joules``: on CUDA, the difference of NVML's cumulative energy counter
  (``nvmlDeviceGetTotalEnergyConsumption``, millijoules, the whole GPU since driver load) before
  and after the window, divided by ``repeats``. The counter advances in steps (every 100 ms on an
  H200, measured 2026-12), so a window of well under a second is coarse: raise ``repeats``. The CPU has
  no such counter here: NaN, and ``energy_source`` says why (also when ``pynvml``, package
  ``nvidia-ml-py``, is not installed or the GPU does not report energy).
- per kB: divided by the language's UTF-8 bytes / 1000 (the same content in every language of a
  parallel set, so per kB is per unit of text, and the differences across languages are the cost
  of the same content); ``g_co2e_per_kb`` is ``joules_per_kb / 3.6e6 * grid_g_co2e_per_kwh``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from qfair.scoring.causal import ItemScores

COST_COLUMNS = ["language", "items", "bytes", "tokens", "seconds", "seconds_per_kb", "cpu_seconds",
                "cpu_seconds_per_kb", "joules", "joules_per_kb", "g_co2e_per_kb", "device", "energy_source"]
ENERGY_COLUMNS = ["joules", "joules_per_kb", "g_co2e_per_kb"]  # NaN (empty) where energy is unavailable
JOULES_PER_KWH = 3.6e6

Scorer = Callable[[Sequence[str]], ItemScores]


class EnergyMeter:
    """NVML's cumulative energy counter of the GPU a CUDA device is, or ``None`` readings.

    ``source`` is ``"nvml"`` when the counter is read, else ``"unavailable: <why>"``.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.handle, self._nvml = None, None
        device = torch.device(device)
        if device.type != "cuda":
            self.source = f"unavailable: no energy counter on {device.type}"
            return
        try:
            import pynvml  # package nvidia-ml-py; imported only on CUDA
        except ImportError:
            self.source = "unavailable: pynvml (nvidia-ml-py) not installed"
            return
        try:
            pynvml.nvmlInit()
            self.handle = _nvml_handle(pynvml, device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except pynvml.NVMLError as error:
            self.handle = None
            self.source = f"unavailable: NVML {error}"
            return
        self._nvml = pynvml
        self.source = "nvml"

    def millijoules(self) -> float | None:
        if self.handle is None:
            return None
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))


def _nvml_handle(pynvml, device: torch.device):
    """The NVML handle of a CUDA device: by UUID (CUDA_VISIBLE_DEVICES renumbers), else by index."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except pynvml.NVMLError:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_cost(scorer: Scorer, texts: Mapping[str, Mapping[str, str]], device: torch.device | str,
                 repeats: int, grid_g_co2e_per_kwh: float, meter: EnergyMeter | None = None) -> pd.DataFrame:
    """Per language (sorted), the cost of ``scorer`` on its items (:data:`COST_COLUMNS`).

    ``scorer(texts) -> ItemScores`` is the evaluation's scorer bound to the model and its settings.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    meter = meter if meter is not None else EnergyMeter(device)
    languages = sorted(texts)
    if not languages:
        return pd.DataFrame(columns=COST_COLUMNS)
    scorer(list(texts[languages[0]].values()))  # warm-up: allocator, kernels, a compiled graph
    rows = []
    for lang in languages:
        items = list(texts[lang].values())
        # One window over all the repeats: NVML's counter advances in steps (its driver updates it
        # periodically), so fewer, longer windows measure energy more finely than many short ones.
        _synchronize(device)
        start_mj, start_cpu, start = meter.millijoules(), time.process_time(), time.perf_counter()
        for _ in range(repeats):
            scores = scorer(items)
        _synchronize(device)
        seconds = (time.perf_counter() - start) / repeats
        cpu_seconds = (time.process_time() - start_cpu) / repeats
        end_mj = meter.millijoules()
        # A counter that did not advance read a window shorter than its update period: that energy
        # is unresolved (NaN), not zero (a zero would make the max/min ratio infinite).
        joules = (math.nan if start_mj is None or end_mj <= start_mj
                  else (end_mj - start_mj) / 1000.0 / repeats)
        n_bytes = int(np.sum(scores.n_bytes))
        kb = n_bytes / 1000.0
        rows.append({"language": lang, "items": len(items), "bytes": n_bytes,
                     "tokens": int(np.sum(scores.n_tokens)), "seconds": seconds,
                     "seconds_per_kb": seconds / kb, "cpu_seconds": cpu_seconds,
                     "cpu_seconds_per_kb": cpu_seconds / kb, "joules": joules,
                     "joules_per_kb": joules / kb,
                     "g_co2e_per_kb": joules / kb / JOULES_PER_KWH * grid_g_co2e_per_kwh,
                     "device": str(device), "energy_source": meter.source})
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def cost_metrics(cost: pd.DataFrame, grid_g_co2e_per_kwh: float, repeats: int) -> dict:
    """Summary numbers of a cost table: totals and the spread of cost per kB across languages."""
    if cost.empty:
        return {"enabled": False}
    per_kb = cost["seconds_per_kb"]
    energy = bool(np.isfinite(cost["joules"]).all())
    return {
        "enabled": True,
        "device": str(cost["device"].iloc[0]),
        "energy_source": str(cost["energy_source"].iloc[0]),
        "repeats": repeats,
        "grid_g_co2e_per_kwh": grid_g_co2e_per_kwh,
        "languages": len(cost),
        "total_seconds": float(cost["seconds"].sum()),
        "total_joules": float(cost["joules"].sum()) if energy else None,
        "total_g_co2e": (float(cost["joules"].sum()) / JOULES_PER_KWH * grid_g_co2e_per_kwh
                         if energy else None),
        "min_seconds_per_kb": float(per_kb.min()),
        "max_seconds_per_kb": float(per_kb.max()),
        "max_over_min_seconds_per_kb": float(per_kb.max() / per_kb.min()),
        "max_over_min_joules_per_kb": (float(cost["joules_per_kb"].max() / cost["joules_per_kb"].min())
                                       if energy else None),
    }
