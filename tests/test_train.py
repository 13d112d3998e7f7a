"""Training: seeded determinism, exact resumption, fingerprints, divergence, checkpoint format."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from qfair.models.load import count_parameters
from qfair.models.train import (
    STATE_FILE,
    TrainConfig,
    TrainingDivergedError,
    sample_batch,
    token_stream,
    train,
    write_log,
)

BASE = TrainConfig(steps=6, batch_size=2, context_length=16, learning_rate=3e-3, warmup_steps=2,
                   min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0, checkpoint_every=3, seed=5,
                   fingerprint="run-a")


def _config(**changes) -> TrainConfig:
    return dataclasses.replace(BASE, **changes)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(make_bloom, stream, folder: Path, config: TrainConfig = BASE, init_seed: int = 0,
         dropout: float = 0.0, **kwargs):
    model = make_bloom(seed=init_seed, dropout=dropout)
    log = train(model, stream, config, folder, progress=False, **kwargs)
    return model, log


@pytest.fixture(scope="module")
def reference_run(make_bloom, tiny_stream, tmp_path_factory):
    """An uninterrupted 6-step run (dropout 0.1, so dropout seeding is exercised too)."""
    folder = tmp_path_factory.mktemp("reference") / "checkpoints"
    model, log = _run(make_bloom, tiny_stream, folder, dropout=0.1)
    return _weights(model), log, folder


def test_same_seed_gives_bit_identical_weights(make_bloom, tiny_stream, tmp_path,
                                               reference_run) -> None:
    weights, log, _ = reference_run
    model, again = _run(make_bloom, tiny_stream, tmp_path / "ckpt", dropout=0.1)
    assert _identical(_weights(model), weights)
    assert again.rows == log.rows
    initial = _weights(make_bloom(seed=0, dropout=0.1))
    assert not _identical(weights, initial), "training did not change the weights"


def test_other_seed_gives_other_weights(make_bloom, tiny_stream, tmp_path, reference_run) -> None:
    weights, log, _ = reference_run
    model, other = _run(make_bloom, tiny_stream, tmp_path / "ckpt", _config(seed=6), dropout=0.1)
    assert not _identical(_weights(model), weights)
    assert [r["loss"] for r in other.rows] != [r["loss"] for r in log.rows]


def test_loss_decreases(make_bloom, tiny_stream, tmp_path) -> None:
    config = _config(steps=30, checkpoint_every=30, learning_rate=1e-2, batch_size=4)
    _, log = _run(make_bloom, tiny_stream, tmp_path / "ckpt", config)
    first = sum(r["loss"] for r in log.rows[:5]) / 5
    last = sum(r["loss"] for r in log.rows[-5:]) / 5
    assert last < first - 0.3
    assert first == pytest.approx(math.log(300), rel=0.15)  # starts near uniform over the vocab


def test_log_rows_and_schedule(reference_run) -> None:
    _, log, _ = reference_run
    assert [r["step"] for r in log.rows] == [1, 2, 3, 4, 5, 6]
    lrs = [r["lr"] for r in log.rows]
    # linear warm-up over 2 steps from 0 (the transformers convention), then cosine decay
    assert lrs[:3] == pytest.approx([0.0, BASE.learning_rate / 2, BASE.learning_rate])
    assert all(a > b for a, b in itertools.pairwise(lrs[2:]))
    assert lrs[-1] >= BASE.learning_rate * BASE.min_lr_ratio
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in log.rows)


@pytest.mark.parametrize("stop", [3, 4])
def test_interrupted_run_resumes_exactly(make_bloom, tiny_stream, tmp_path, reference_run,
                                         stop: int) -> None:
    weights, log, _ = reference_run
    folder = tmp_path / "ckpt"
    _, partial = _run(make_bloom, tiny_stream, folder, dropout=0.1, stop_after=stop)
    assert partial.rows[-1]["step"] == stop
    assert [p.name for p in sorted(folder.glob("step_*"))] == ["step_000003"]
    # a new process: a new model, initialised differently, trained on the same folder
    model, resumed = _run(make_bloom, tiny_stream, folder, init_seed=123, dropout=0.1)
    assert _identical(_weights(model), weights)
    assert resumed.rows == log.rows


def test_finished_run_is_not_retrained(make_bloom, tiny_stream, tmp_path, reference_run,
                                       monkeypatch) -> None:
    weights, log, folder = reference_run
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)

    def no_batches(*args, **kwargs):
        raise AssertionError("a finished run must not draw another batch")

    monkeypatch.setattr("qfair.models.train.sample_batch", no_batches)
    model, again = _run(make_bloom, tiny_stream, copy, init_seed=99, dropout=0.1)
    assert _identical(_weights(model), weights)
    assert again.rows == log.rows


def test_checkpoint_of_another_run_is_not_resumed(make_bloom, tiny_stream, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    # another run (other seed, checkpoint steps and fingerprint) left checkpoints at steps 2, 4
    other = _config(seed=11, fingerprint="run-b", checkpoint_every=2)
    _run(make_bloom, tiny_stream, folder, other, stop_after=4)
    assert [p.name for p in sorted(folder.glob("step_*"))] == ["step_000002", "step_000004"]
    model, log = _run(make_bloom, tiny_stream, folder)
    clean, clean_log = _run(make_bloom, tiny_stream, tmp_path / "clean")
    assert _identical(_weights(model), _weights(clean))
    assert log.rows == clean_log.rows
    assert [p.name for p in sorted(folder.glob("step_*"))] == ["step_000003", "step_000006"]
    for checkpoint in folder.glob("step_*"):
        assert json.loads((checkpoint / "log.json").read_text())["fingerprint"] == "run-a"


def test_checkpoints_are_safetensors(make_bloom, tiny_stream, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    model, _ = _run(make_bloom, tiny_stream, folder)
    checkpoints = sorted(folder.glob("step_*"))
    assert [c.name for c in checkpoints] == ["step_000003", "step_000006"]
    for checkpoint in checkpoints:
        files = {p.name for p in checkpoint.iterdir()}
        assert {"model.safetensors", "config.json", "log.json"} <= files
        assert not any(name.endswith(".bin") for name in files)
    assert not (checkpoints[0] / STATE_FILE).exists()  # optimizer state only in the newest
    assert (checkpoints[1] / STATE_FILE).is_file()
    assert not list(folder.glob(".*"))  # no temporary leftovers
    state = load_file(str(checkpoints[-1] / "model.safetensors"))
    final = model.state_dict()
    assert set(state) <= set(final) and set(final) - set(state) <= {"lm_head.weight"}
    assert all(torch.equal(state[k], final[k]) for k in state)
    early = load_file(str(checkpoints[0] / "model.safetensors"))
    assert not all(torch.equal(early[k], state[k]) for k in state)


def test_dev_loss_and_written_log(make_bloom, tiny_stream, tiny_corpus, tiny_tokenizer,
                                  tmp_path) -> None:
    ids = tiny_tokenizer(tiny_corpus.texts("dev"), add_special_tokens=False)["input_ids"]
    dev = token_stream(ids, tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id, seed=0)
    dev_batches = [dev[i * 17:(i + 1) * 17].unsqueeze(0) for i in range(3)]
    model, log = _run(make_bloom, tiny_stream, tmp_path / "ckpt", dev_batches=dev_batches)
    assert [r["step"] for r in log.rows if "dev_loss" in r] == [3, 6]
    assert model.training is False
    write_log(log, tmp_path / "plots", tmp_path / "train.json", count_parameters(model))
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["parameters"] == count_parameters(model)
    assert summary["steps"] == 6
    assert summary["final_train_loss"] == log.rows[-1]["loss"]
    assert summary["final_dev_loss"] == log.rows[-1]["dev_loss"]
    assert len(pd.read_csv(tmp_path / "plots" / "train_loss.csv")) == 6
    assert pd.read_csv(tmp_path / "plots" / "dev_loss.csv")["step"].tolist() == [3, 6]


def test_nan_loss_raises(make_bloom, tiny_stream, tmp_path) -> None:
    model = make_bloom(seed=0)
    with torch.no_grad():
        model.transformer.word_embeddings.weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError) as info:
        train(model, tiny_stream, BASE, tmp_path / "ckpt", progress=False)
    message = str(info.value)
    assert "nan" in message and "step 1" in message and "train.learning_rate" in message
    assert not list((tmp_path / "ckpt").glob("step_*"))


def test_nan_loss_midway_raises(make_bloom, tiny_stream, tmp_path, monkeypatch) -> None:
    model = make_bloom(seed=0)
    forward = model.forward
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            out.loss = out.loss * float("inf")
        return out

    monkeypatch.setattr(model, "forward", poisoned)
    with pytest.raises(TrainingDivergedError, match="step 4"):
        train(model, tiny_stream, BASE, tmp_path / "ckpt", progress=False)


def test_sample_batch_is_a_function_of_seed_and_step(tiny_stream) -> None:
    a = sample_batch(tiny_stream, 3, 16, seed=1, step=7)
    assert a.shape == (3, 17)
    assert torch.equal(a, sample_batch(tiny_stream, 3, 16, seed=1, step=7))
    assert not torch.equal(a, sample_batch(tiny_stream, 3, 16, seed=1, step=8))
    assert not torch.equal(a, sample_batch(tiny_stream, 3, 16, seed=2, step=7))
    with pytest.raises(ValueError, match=r"train\.context_length"):
        sample_batch(tiny_stream[:10], 1, 16, seed=1, step=1)


def test_token_stream() -> None:
    items = [[10, 11], [12], [13, 14, 15]]
    stream = token_stream(items, bos=1, eos=2, seed=0)
    assert len(stream) == 6 + 2 * 3
    assert (stream == 1).sum() == 3 and (stream == 2).sum() == 3
    pieces, current = [], []
    for token in stream.tolist():
        current.append(token)
        if token == 2:
            pieces.append(current)
            current = []
    assert sorted(pieces) == sorted([[1, *item, 2] for item in items])
    assert torch.equal(stream, token_stream(items, bos=1, eos=2, seed=0))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _counting_batches(monkeypatch) -> list[int]:
    """Record the steps for which a batch is drawn (the steps really trained)."""
    import qfair.models.train

    steps, real = [], qfair.models.train.sample_batch

    def counting(stream, batch_size, context_length, seed, step):
        steps.append(step)
        return real(stream, batch_size, context_length, seed, step)

    monkeypatch.setattr(qfair.models.train, "sample_batch", counting)
    return steps


@pytest.mark.parametrize("damaged", ["model.safetensors", STATE_FILE])
def test_truncated_newest_checkpoint_is_skipped_with_a_warning(make_bloom, tiny_stream, tmp_path,
                                                               reference_run, monkeypatch,
                                                               damaged: str) -> None:
    """The only resumable checkpoint is truncated: a warning names it, training restarts from
    scratch and ends with the weights and log of an uninterrupted run."""
    weights, log, _ = reference_run
    folder = tmp_path / "ckpt"
    _run(make_bloom, tiny_stream, folder, dropout=0.1, stop_after=3)
    bad = folder / "step_000003" / damaged
    _truncate(bad)
    steps = _counting_batches(monkeypatch)
    # from scratch, the stage builds the model with the same seeded initialisation
    with pytest.warns(UserWarning, match=re.escape(str(bad))):
        model, resumed = _run(make_bloom, tiny_stream, folder, dropout=0.1)
    assert steps == [1, 2, 3, 4, 5, 6]
    assert _identical(_weights(model), weights)
    assert resumed.rows == log.rows
    # the damaged checkpoint was replaced by a good one
    assert load_file(str(folder / "step_000003" / "model.safetensors"))


def test_truncated_newest_checkpoint_resumes_from_an_earlier_one(make_bloom, tiny_stream, tmp_path,
                                                                  reference_run, monkeypatch) -> None:
    """An earlier checkpoint with its trainer state (a run stopped between writing the newest
    checkpoint and pruning older states) is resumed from when the newest does not load."""
    weights, log, _ = reference_run
    folder = tmp_path / "ckpt"
    _run(make_bloom, tiny_stream, folder, dropout=0.1, stop_after=3)
    state = (folder / "step_000003" / STATE_FILE).read_bytes()
    _run(make_bloom, tiny_stream, folder, dropout=0.1)  # finishes: step 6 saved, step 3 pruned
    (folder / "step_000003" / STATE_FILE).write_bytes(state)
    bad = folder / "step_000006" / "model.safetensors"
    _truncate(bad)
    steps = _counting_batches(monkeypatch)
    with pytest.warns(UserWarning, match=re.escape(str(bad))):
        model, resumed = _run(make_bloom, tiny_stream, folder, init_seed=7, dropout=0.1)
    assert steps == [4, 5, 6]
    assert _identical(_weights(model), weights)
    assert resumed.rows == log.rows


def test_dev_blocks_are_consecutive_windows_from_the_start() -> None:
    from qfair.models.train import dev_blocks

    dev = torch.arange(50)
    blocks = dev_blocks(dev, context_length=9, count=3)
    assert [b.shape for b in blocks] == [(1, 10)] * 3
    assert torch.equal(torch.cat(blocks, dim=1)[0], dev[:30])
    assert len(dev_blocks(dev, context_length=9)) == 5  # at most what the stream holds
    with pytest.raises(ValueError, match="fewer than one block"):
        dev_blocks(torch.arange(5), context_length=9)


def test_log_spaced_checkpoint_steps() -> None:
    config = _config(steps=1600, checkpoint_every=10, checkpoint_schedule="log", log_checkpoints=12)
    steps = config.checkpoint_steps()
    assert min(steps) == 10 and max(steps) == 1600 and len(steps) == 12
    ordered = sorted(steps)
    ratios = [b / a for a, b in itertools.pairwise(ordered)]
    assert max(ratios) / min(ratios) < 1.2  # evenly spaced on a log scale (up to rounding)
    every = _config(steps=7, checkpoint_every=3).checkpoint_steps()
    assert every == {3, 6, 7}


def test_eval_steps_add_the_interval_to_checkpoints() -> None:
    config = _config(steps=10, checkpoint_every=5, eval_every=2)
    assert config.eval_steps() == {2, 4, 5, 6, 8, 10}
    assert _config(steps=6, checkpoint_every=3).eval_steps() == {3, 6}


def test_early_stopping_keeps_the_best_dev_weights(make_bloom, tiny_stream, tmp_path, monkeypatch) -> None:
    # A dev loss that is lowest at step 2 and then rises: the run stops after `patience` worse
    # evaluations and the model holds the step-2 weights (checkpoint step_000002).
    import qfair.models.train as train_module

    losses = iter([3.0, 1.0, 2.0, 2.5, 2.7, 2.9])
    monkeypatch.setattr(train_module, "mean_loss", lambda model, batches, config=None: next(losses))
    config = _config(steps=12, checkpoint_every=1, eval_every=1, early_stopping_patience=2)
    model, log = _run(make_bloom, tiny_stream, tmp_path / "ck", config, dev_batches=[tiny_stream[:17][None]])
    assert log.best_step == 2 and log.stopped_early
    assert [row["step"] for row in log.rows] == [1, 2, 3, 4]  # stopped 2 evaluations after the best
    best = load_file(str(tmp_path / "ck" / "step_000002" / "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in best.items())
    assert log.tokens == 4 * config.batch_size * (config.context_length + 1)
    assert log.seconds > 0


def test_run_record_reports_epochs_gap_and_mfu() -> None:
    from qfair.models.train import TrainLog, run_record

    rows = [{"step": s, "loss": 4.0 - 0.1 * s, "lr": 1e-3, "grad_norm": 1.0} for s in range(1, 11)]
    rows[4]["dev_loss"], rows[9]["dev_loss"] = 3.9, 3.95
    log = TrainLog(rows=rows, best_step=5, stopped_early=True, seconds=2.0, tokens=10 * 2 * 16)
    config = _config(steps=20, checkpoint_every=5, eval_every=5, early_stopping_patience=1)
    record = run_record(log, config, parameters=1000, stream_tokens=64, peak_flops=1e9)
    assert record["model_step"] == 5 and record["dev_loss_at_model_step"] == 3.9
    assert record["train_loss_at_model_step"] == pytest.approx((3.9 + 3.8 + 3.7 + 3.6 + 3.5) / 5)
    assert record["train_dev_gap"] == pytest.approx(3.9 - 3.7)
    assert record["epochs"] == pytest.approx(320 / 64)
    assert record["epochs_at_model_step"] == pytest.approx(5 * 2 * 16 / 64)
    assert record["tokens_per_second"] == pytest.approx(160)
    assert record["mfu"] == pytest.approx(6 * 1000 * 320 / 2.0 / 1e9)


def test_bfloat16_training_needs_a_gpu_device() -> None:
    from qfair.params import TrainParams

    base = dict(steps=10, batch_size=2, context_length=16, learning_rate=1e-3, warmup_steps=1,
                min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0, checkpoint_every=5, threads=1)
    with pytest.raises(ValueError, match="bfloat16 is for device cuda"):
        TrainParams(**base, precision="bfloat16")
    with pytest.raises(ValueError, match="needs eval_every"):
        TrainParams(**base, early_stopping_patience=2)
    assert TrainParams(**base, device="cuda", precision="bfloat16").compile is False


def test_interrupted_early_stopping_run_resumes_exactly(make_bloom, tiny_stream, tmp_path,
                                                         monkeypatch) -> None:
    # A dev "loss" that is a function of the weights (so every run sees the same sequence), lowest
    # near step 4: the run stops early; interrupted after step 5 and resumed, it must stop at the
    # same step with the same best-dev weights.
    import qfair.models.train as train_module

    norms = {}

    def weight_norm(model) -> float:
        return float(model.transformer.word_embeddings.weight.double().norm())

    def record(model, batches, config=None):
        norms[len(norms) + 1] = weight_norm(model)
        return 0.0

    monkeypatch.setattr(train_module, "mean_loss", record)
    config = _config(steps=14, checkpoint_every=2, eval_every=1, early_stopping_patience=4)
    dev = [tiny_stream[:17][None]]
    probe = dataclasses.replace(config, early_stopping_patience=None)
    _run(make_bloom, tiny_stream, tmp_path / "probe", probe, dev_batches=dev)
    target = norms[4]
    monkeypatch.setattr(train_module, "mean_loss",
                        lambda model, batches, config=None: abs(weight_norm(model) - target))
    whole, whole_log = _run(make_bloom, tiny_stream, tmp_path / "whole", config, dev_batches=dev)
    assert whole_log.stopped_early and whole_log.best_step == 4
    _run(make_bloom, tiny_stream, tmp_path / "parts", config, dev_batches=dev, stop_after=5)
    resumed, resumed_log = _run(make_bloom, tiny_stream, tmp_path / "parts", config, dev_batches=dev)
    assert resumed_log.best_step == 4 and resumed_log.stopped_early
    assert [r["step"] for r in resumed_log.rows] == [r["step"] for r in whole_log.rows]
    assert resumed_log.tokens == whole_log.tokens
    assert _identical(_weights(whole), _weights(resumed))
    # Rerun over a finished run's checkpoints (its last one is the step that stopped it): no extra step.
    again, again_log = _run(make_bloom, tiny_stream, tmp_path / "whole", config, dev_batches=dev)
    assert again_log.stopped_early and again_log.rows == whole_log.rows
    assert again_log.tokens == whole_log.tokens
    assert _identical(_weights(whole), _weights(again))


def test_pending_rows_read_losses_at_flush_and_catch_divergence() -> None:
    from qfair.models.train import _PendingRows

    pending, rows = _PendingRows(), []
    for step, value in enumerate([2.5, 2.25, 2.0], start=1):
        row = {"step": step, "loss": None, "lr": 1e-3, "grad_norm": None}
        pending.add(row, torch.tensor(value), torch.tensor(value / 2))
        rows.append(row)
    assert rows[0]["loss"] is None  # nothing read before the flush
    pending.flush()
    assert [r["loss"] for r in rows] == [2.5, 2.25, 2.0]
    assert [r["grad_norm"] for r in rows] == [1.25, 1.125, 1.0]
    row = {"step": 9, "loss": None, "lr": 1e-3, "grad_norm": None}
    pending.add(row, torch.tensor(float("inf")), torch.tensor(1.0))
    with pytest.raises(TrainingDivergedError, match="inf at step 9"):
        pending.flush()


def test_dev_loss_on_an_accelerator_stacks_blocks_with_equal_weight(make_bloom, tiny_stream,
                                                                    monkeypatch) -> None:
    """Stacked passes (the last one smaller) give the mean of the per-block losses."""
    from types import SimpleNamespace

    import qfair.models.train as train_module

    class MeanOfIds(torch.nn.Module):  # a "loss" that differs per block, to expose any misweighting
        def forward(self, input_ids, labels):
            return SimpleNamespace(loss=input_ids.float().mean())

    blocks = [torch.full((1, 4), value) for value in (1, 2, 3, 4, 10)]
    autocast = _config(precision="bfloat16")  # the accelerator path (bf16 autocast also runs on CPU)
    monkeypatch.setattr(train_module, "DEV_BATCH", 2)  # passes of 2, 2 and 1 blocks
    assert train_module.mean_loss(MeanOfIds(), blocks, autocast) == 4.0  # not (1.5 + 3.5 + 10) / 3
    model = make_bloom(seed=0)
    real = [tiny_stream[i * 17:(i + 1) * 17].unsqueeze(0) for i in range(5)]
    assert train_module.mean_loss(model, real, autocast) == pytest.approx(
        train_module.mean_loss(model, real), rel=3e-2)  # bf16 against the float32 per-block path
    assert model.training


# ------------------------------------------------------------- data parallel (DDP, two gloo ranks)


def _ddp_rank(rank: int, world: int, port: int, model, stream, config, folder: str, out: str,
              stop_after: int | None) -> None:
    import os

    from qfair import process_group

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)  # as in the parent (conftest): the same CPU kernels
    process_group.setup("cpu")
    try:
        log = train(model, stream, config, Path(folder), progress=False, stop_after=stop_after)
        torch.save({"weights": _weights(model), "rows": log.rows, "tokens": log.tokens},
                   Path(out) / f"rank{rank}.pt")
    finally:
        process_group.teardown()


def _ddp_run(model, stream, config, folder: Path, out: Path, stop_after: int | None = None) -> list[dict]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out.mkdir(parents=True, exist_ok=True)
    # fork: the ranks inherit the imported modules, which keeps this test to a few seconds
    mp.start_processes(_ddp_rank, args=(2, port, model, stream, config, str(folder), str(out), stop_after),
                       nprocs=2, join=True, start_method="fork")
    return [torch.load(out / f"rank{rank}.pt") for rank in range(2)]


DDP = _config(batch_size=4, fingerprint="run-ddp")


def test_two_gloo_ranks_train_as_one_process(make_bloom, tiny_stream, tmp_path) -> None:
    """Each rank trains on half of every batch; DDP averages the gradients: the losses and weights
    of one process, up to the order of the reduction; rank 0 alone writes the checkpoints."""
    single_model, single = _run(make_bloom, tiny_stream, tmp_path / "single", DDP)
    ranks = _ddp_run(make_bloom(seed=0), tiny_stream, DDP, tmp_path / "ddp", tmp_path / "out")
    for result in ranks:
        assert [r["step"] for r in result["rows"]] == [r["step"] for r in single.rows]
        for ours, theirs in zip(result["rows"], single.rows, strict=True):
            assert ours["loss"] == pytest.approx(theirs["loss"], abs=1e-6)
            assert ours["lr"] == theirs["lr"]
        assert result["tokens"] == single.tokens
        for name, value in _weights(single_model).items():
            torch.testing.assert_close(result["weights"][name], value, rtol=1e-5, atol=1e-6)
    assert _identical(ranks[0]["weights"], ranks[1]["weights"])  # every rank holds the same model
    assert sorted(p.name for p in (tmp_path / "ddp").glob("step_*")) == ["step_000003", "step_000006"]


def test_a_ddp_checkpoint_resumes_in_one_process(make_bloom, tiny_stream, tmp_path) -> None:
    """Checkpoints hold no per-rank state: two ranks stop after step 3, one process finishes."""
    single_model, single = _run(make_bloom, tiny_stream, tmp_path / "single", DDP)
    _ddp_run(make_bloom(seed=0), tiny_stream, DDP, tmp_path / "ckpt", tmp_path / "out", stop_after=3)
    model, resumed = _run(make_bloom, tiny_stream, tmp_path / "ckpt", DDP, init_seed=9)
    assert [r["step"] for r in resumed.rows] == [r["step"] for r in single.rows]
    assert resumed.rows[-1]["loss"] == pytest.approx(single.rows[-1]["loss"], abs=1e-6)
    for name, value in _weights(single_model).items():
        torch.testing.assert_close(_weights(model)[name], value, rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_split_evenly_is_refused(make_bloom, tiny_stream, tmp_path,
                                                       monkeypatch) -> None:
    from qfair import process_group

    monkeypatch.setattr(process_group, "world_size", lambda: 3)
    with pytest.raises(ValueError, match=r"train.batch_size \(4\).*ranks \(3\)"):
        _run(make_bloom, tiny_stream, tmp_path / "x", DDP)
