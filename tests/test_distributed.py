"""Data-parallel scoring: the batch plan, and two gloo ranks on CPU against one process."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from qfair import process_group
from qfair.scoring import distributed
from qfair.scoring.causal import encode_items, length_sorted_batches, score_items

# ------------------------------------------------------------------------ batch plan


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(1, 200), min_size=1, max_size=80),
       budget=st.integers(1, 2000), world=st.integers(1, 5))
def test_assign_batches_covers_every_batch_once_and_balances(lengths, budget, world) -> None:
    batches = length_sorted_batches(lengths, budget)
    plan = distributed.assign_batches(batches, lengths, world)
    assert len(plan) == world
    assert sorted(b for rank in plan for b in rank) == list(range(len(batches)))
    cost = [max(lengths[i] for i in batch) * len(batch) for batch in batches]
    loads = [sum(cost[b] for b in rank) for rank in plan]
    # greedy LPT: no rank carries more than the lightest rank plus one batch
    assert max(loads) - min(loads) <= max(cost)
    assert plan == distributed.assign_batches(batches, lengths, world)  # deterministic


def test_assign_batches_example() -> None:
    # costs 20, 18, 9, 5: rank 0 gets 20, rank 1 gets 18 then 9 (27), rank 0 then 5 (25)
    batches = [[0, 1], [2, 3], [4], [5]]
    lengths = [10, 10, 9, 8, 9, 5]
    assert distributed.assign_batches(batches, lengths, 2) == [[0, 3], [1, 2]]
    assert distributed.assign_batches(batches, lengths, 1) == [[0, 1, 2, 3]]
    assert distributed.assign_batches(batches, lengths, 6)[4:] == [[], []]
    with pytest.raises(ValueError, match="world size"):
        distributed.assign_batches(batches, lengths, 0)


# ------------------------------------------------------------------- one process


def test_without_torchrun_it_is_eval_score_items(tiny_model, tiny_tokenizer, tiny_corpus,
                                                 monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not process_group.launched() and not process_group.active()
    assert process_group.setup("cpu") == torch.device("cpu")
    assert (process_group.rank(), process_group.world_size(), process_group.is_main()) == (0, 1, True)
    texts = tiny_corpus.texts("dev")[:30]
    ours = distributed.score_items(tiny_model, tiny_tokenizer, texts, 200, 1024)
    np.testing.assert_array_equal(ours.nll, score_items(tiny_model, tiny_tokenizer, texts, 200, 1024).nll)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_setup_on_cuda_without_cuda_names_the_device() -> None:
    with pytest.raises(ValueError, match=r"'cuda'.*CUDA is not available"):
        process_group.setup("cuda")


# ------------------------------------------------------------------ two gloo ranks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, model, tokenizer, texts, budget, out_dir) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)  # as in the parent (conftest): the same CPU kernels
    device = process_group.setup("cpu")
    try:
        assert process_group.active() and process_group.world_size() == world
        scores = distributed.score_items(model.to(device), tokenizer, texts, budget, 1024)
        np.save(os.path.join(out_dir, f"nll_rank{rank}.npy"), scores.nll)
        np.save(os.path.join(out_dir, f"tokens_rank{rank}.npy"), scores.n_tokens)
    finally:
        process_group.teardown()


def test_two_gloo_ranks_equal_one_process_exactly(tiny_model, tiny_tokenizer, tiny_corpus,
                                                  tmp_path) -> None:
    test = tiny_corpus.splits["test"]
    texts = [t for loc in sorted(test) for t in list(test[loc].values())[:12]]
    texts += [" ".join(test["hi_IN"].values())[:300], "a"]  # one long item, one 1-token item
    budget = 120
    lengths = [len(ids) for ids in encode_items(tiny_tokenizer, texts, 1024)]
    batches = length_sorted_batches(lengths, budget)
    plan = distributed.assign_batches(batches, lengths, 2)
    assert all(plan), "both ranks must get work"
    # fork: the ranks inherit the imported modules, which keeps this test to a few seconds
    mp.start_processes(_rank_main, args=(2, _free_port(), tiny_model, tiny_tokenizer, texts, budget,
                                         str(tmp_path)), nprocs=2, join=True, start_method="fork")
    single = score_items(tiny_model, tiny_tokenizer, texts, budget, 1024)
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"nll_rank{rank}.npy"), single.nll)
        np.testing.assert_array_equal(np.load(tmp_path / f"tokens_rank{rank}.npy"), single.n_tokens)
