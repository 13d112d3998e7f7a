"""Data-parallel scoring over several processes (``torchrun``): one process per GPU, or CPU ranks.

Every rank tokenizes all items and forms exactly the batches one process would
(:func:`qfair.scoring.causal.length_sorted_batches`); whole batches are dealt to ranks, balanced by padded
token count; each rank scores its batches; the NLLs are gathered to every rank in the original
item order. Because every item is scored in the same batch (same shape, same neighbours) as in
one process, the result is identical to one process, bit for bit on deterministic kernels.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing is initialised and
:func:`score_items` is :func:`qfair.scoring.causal.score_items`, so a stage calls the same function either
way (under ``torchrun`` with one process the distributed path runs, with one rank)::

    device = qfair.process_group.setup("cuda")              # this rank's GPU; or "cpu" (gloo)
    model = load_model(path, dtype="bfloat16", device=device)
    scores = qfair.scoring.distributed.score_items(model, tokenizer, texts, batch_tokens, max_tokens)
    if qfair.process_group.is_main():
        write_csv(...)                               # one rank writes
    qfair.process_group.teardown()
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from qfair.process_group import active, is_main, rank, world_size
from qfair.scoring import causal
from qfair.scoring.causal import ItemScores


def assign_batches(batches: Sequence[Sequence[int]], lengths: Sequence[int] | np.ndarray,
                   world: int) -> list[list[int]]:
    """Indices of the batches each rank scores, balanced by padded tokens (width x rows).

    Greedy longest-processing-time: the largest batch goes to the least-loaded rank (ties to the
    lower rank), a deterministic function of its inputs, so every rank computes the same plan.
    """
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    lengths = np.asarray(lengths)
    cost = [int(lengths[list(batch)].max()) * len(batch) if len(batch) else 0 for batch in batches]
    order = sorted(range(len(batches)), key=lambda b: (-cost[b], b))
    loads = [(0, r) for r in range(world)]
    plan: list[list[int]] = [[] for _ in range(world)]
    for b in order:
        load, r = heapq.heappop(loads)
        plan[r].append(b)
        heapq.heappush(loads, (load + cost[b], r))
    return [sorted(ranks_batches) for ranks_batches in plan]


def gather_nll(nll: np.ndarray, mine: np.ndarray, device: torch.device) -> np.ndarray:
    """Combine every rank's NLLs of its own items (indices ``mine``) into one full array."""
    world = world_size()
    index = torch.as_tensor(mine, dtype=torch.int64, device=device)
    values = torch.as_tensor(nll[mine], dtype=torch.float64, device=device)
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(mine)], dtype=torch.int64, device=device))
    width = int(max(int(c) for c in counts))
    # all_gather needs equal shapes: pad every rank's part to the longest.
    padded_index = torch.full((width,), -1, dtype=torch.int64, device=device)
    padded_values = torch.zeros(width, dtype=torch.float64, device=device)
    padded_index[: len(mine)], padded_values[: len(mine)] = index, values
    all_index = [torch.empty_like(padded_index) for _ in range(world)]
    all_values = [torch.empty_like(padded_values) for _ in range(world)]
    dist.all_gather(all_index, padded_index)
    dist.all_gather(all_values, padded_values)
    full = np.full(len(nll), np.nan)
    for count, idx, val in zip(counts, all_index, all_values, strict=True):
        n = int(count)
        full[idx[:n].cpu().numpy()] = val[:n].cpu().numpy()
    return full


def score_items(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch_tokens: int = 4096,
                max_tokens: int = 1024, progress: bool = False, compile: bool = False) -> ItemScores:
    """:func:`qfair.scoring.causal.score_items`, its batches shared among the ranks of a ``torchrun`` launch.

    Every rank returns the full result. In one process it is ``qfair.scoring.causal.score_items`` itself.
    """
    if not active():
        return causal.score_items(model, tokenizer, texts, batch_tokens, max_tokens, progress,
                                  compile=compile)
    tokens = causal.TokenItems.from_lists(causal.encode_items(tokenizer, texts, max_tokens))
    batches = causal.length_sorted_batches(tokens.lengths, batch_tokens)
    plan = assign_batches(batches, tokens.lengths, world_size())[rank()]
    mine = [batches[b] for b in plan]
    nll = causal.score_token_batches(model, tokens, mine, causal.pad_token_id(tokenizer),
                                    progress and is_main(), compile=compile)
    indices = np.array([i for batch in mine for i in batch], dtype=np.int64)
    backend_device = (causal.model_device(model) if dist.get_backend() == "nccl"
                      else torch.device("cpu"))
    full = gather_nll(nll, indices, backend_device)  # every batch has one rank: no item is missing
    causal.check_finite_nll(full)
    return ItemScores(nll=full, n_tokens=tokens.lengths - 1, n_bytes=causal.utf8_lengths(texts))
