"""Seeded, resumable causal-LM training on CPU (embedded profile) or GPUs (scale profile).

Each step draws its batch from ``default_rng([seed, step])`` and seeds dropout with the step, so
a run interrupted after any checkpoint and resumed gives the same weights as an uninterrupted one
(on CPU bit for bit; on a GPU up to its kernels' own nondeterminism). On a GPU the step runs under
bf16 autocast with fused AdamW and optionally ``torch.compile``; with early stopping the dev loss is
measured every ``eval_every`` steps and the weights with the lowest dev loss become the model.

Under ``torchrun`` (a process group set up by :func:`qfair.process_group.setup`) the model is
wrapped in PyTorch DDP: every rank draws the same global batch and trains on its contiguous share of
the rows, DDP averages the gradients, and every rank holds the same weights; with equal shares this is
the single-process step up to the order of the reduction (dropout masks differ: they are drawn per
share). Rank 0 alone writes checkpoints; they hold no per-rank state, so a run resumes at any
world size.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import PreTrainedModel, get_cosine_with_min_lr_schedule_with_warmup

from qfair import process_group
from qfair.io import sha256_file, sha256_text, write_csv, write_json, write_text

STATE_FILE = "trainer_state.pt"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    steps: int
    batch_size: int
    context_length: int
    learning_rate: float
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    grad_clip: float
    checkpoint_every: int
    seed: int
    fingerprint: str = ""  # identifies data + settings; a checkpoint of another run is not resumed
    device: str = "cpu"
    precision: str = "float32"  # float32, or bfloat16 autocast (weights and optimizer stay float32)
    compile: bool = False  # torch.compile the training forward pass
    checkpoint_schedule: str = "every"  # every: each checkpoint_every steps; log: log-spaced steps
    log_checkpoints: int = 12  # how many log-spaced checkpoints (checkpoint_schedule: log)
    eval_every: int | None = None  # dev loss interval (None: at checkpoints only)
    early_stopping_patience: int | None = None  # dev evaluations without improvement before stopping
    dev_blocks: int = 16

    def checkpoint_steps(self) -> set[int]:
        """Steps that save a checkpoint: a fixed interval, or log-spaced from ``checkpoint_every``."""
        if self.checkpoint_schedule == "log":
            spaced = np.geomspace(min(self.checkpoint_every, self.steps), self.steps, self.log_checkpoints)
            return {round(s) for s in spaced} | {self.steps}
        return {s for s in range(self.checkpoint_every, self.steps + 1, self.checkpoint_every)} | {self.steps}

    def eval_steps(self) -> set[int]:
        """Steps that measure the dev loss: every checkpoint, and every ``eval_every`` steps."""
        extra = set(range(self.eval_every, self.steps + 1, self.eval_every)) if self.eval_every else set()
        return self.checkpoint_steps() | extra


@dataclass
class TrainLog:
    rows: list[dict] = field(default_factory=list)
    best_step: int | None = None  # early stopping: the step whose weights became the model
    stopped_early: bool = False
    seconds: float = 0.0  # wall time of the training steps (dev evaluations and saving excluded)
    tokens: int = 0  # tokens processed by those steps


def token_stream(tokenized_items: list[list[int]], bos: int, eos: int, seed: int) -> torch.Tensor:
    """Concatenate ``<s> item </s>`` in a seeded order into one stream of token ids."""
    order = np.random.default_rng(seed).permutation(len(tokenized_items))
    pieces = [[bos, *tokenized_items[i], eos] for i in order]
    return torch.tensor([t for piece in pieces for t in piece], dtype=torch.long)


def sample_batch(stream: torch.Tensor, batch_size: int, context_length: int, seed: int,
                 step: int) -> torch.Tensor:
    """``batch_size`` random windows of ``context_length + 1`` tokens, a function of (seed, step)."""
    if len(stream) <= context_length + 1:
        raise ValueError(f"train.context_length {context_length} >= training stream ({len(stream)} tokens)")
    starts = np.random.default_rng([seed, step]).integers(0, len(stream) - context_length - 1, batch_size)
    return torch.stack([stream[s : s + context_length + 1] for s in starts])


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Decay matrices only; norms and biases are left alone (standard practice).
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    if config.device.startswith("cuda"):  # one fused kernel for the whole update
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95), fused=True)
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95))


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*")) if folder.is_dir() else []


def _save_checkpoint(model: PreTrainedModel, optimizer: torch.optim.Optimizer, scheduler,
                     step: int, log: TrainLog, config: TrainConfig, folder: Path) -> None:
    target = folder / f"step_{step:06d}"
    tmp = folder / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step}, tmp / STATE_FILE)
    write_text(tmp / "log.json", json.dumps({"fingerprint": config.fingerprint, "rows": log.rows,
                                             "tokens": log.tokens, "seconds": log.seconds}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    # Optimizer state is only needed to resume: keep it in the newest checkpoint alone.
    for older in _checkpoints(folder)[:-1]:
        (older / STATE_FILE).unlink(missing_ok=True)


# What a truncated or overwritten checkpoint file raises on reading (safetensors, torch's zip
# reader, the unpickler, json): such a checkpoint is skipped, never a reason to stop.
UNREADABLE = (SafetensorError, OSError, RuntimeError, EOFError, ValueError, KeyError,
              pickle.UnpicklingError)


class UnreadableCheckpointError(Exception):
    """One file of a checkpoint does not load (``path``: that file)."""

    def __init__(self, path: Path, error: BaseException) -> None:
        super().__init__(f"{path}: {type(error).__name__}: {error}")
        self.path = path


def _load_checkpoint(checkpoint: Path) -> tuple[dict, dict, dict]:
    """The model state, trainer state and log of a checkpoint, all read before any is applied."""
    path = checkpoint / "log.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        path = checkpoint / "model.safetensors"
        state = load_file(str(path))
        path = checkpoint / STATE_FILE
        trainer = torch.load(path, weights_only=True)
    except UNREADABLE as error:
        raise UnreadableCheckpointError(path, error) from error
    return state, trainer, info


def _resume(model: PreTrainedModel, optimizer, scheduler, config: TrainConfig,
            folder: Path) -> tuple[int, TrainLog]:
    """Restore the newest readable checkpoint of this same run; discard checkpoints of other runs.

    A checkpoint that does not load (a truncated file) is skipped with a warning naming it; the
    run resumes from the newest one before it that still has its trainer state, or from scratch.
    """
    candidates = [c for c in _checkpoints(folder) if (c / STATE_FILE).is_file()]
    for latest in reversed(candidates):
        try:
            state, trainer, info = _load_checkpoint(latest)
        except UnreadableCheckpointError as error:
            warnings.warn(f"checkpoint {latest} does not load ({error}); skipping it and resuming "
                          "from an earlier checkpoint or from scratch", stacklevel=2)
            continue
        if info.get("fingerprint") != config.fingerprint:
            break
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:  # tied head is stored once
            raise RuntimeError(f"{latest}: checkpoint does not match the model "
                               f"(missing {missing}, unexpected {unexpected})")
        model.tie_weights()
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        # tokens and seconds so far count towards the run's totals (older checkpoints lack them)
        return int(trainer["step"]), TrainLog(rows=info["rows"], tokens=int(info.get("tokens", 0)),
                                              seconds=float(info.get("seconds", 0.0)))
    if process_group.is_main():  # one rank clears another run's checkpoints (train() waits for it)
        shutil.rmtree(folder, ignore_errors=True)
    return 0, TrainLog()


def _autocast(config: TrainConfig) -> torch.autocast:
    device = torch.device(config.device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")


DEV_BATCH = 16  # dev blocks per forward pass on an accelerator (one block per pass on CPU)


@torch.no_grad()
def mean_loss(model: PreTrainedModel, batches: list[torch.Tensor],
              config: TrainConfig | None = None) -> float:
    """Mean loss over ``batches`` in eval mode (on ``config``'s device and precision).

    CPU in float32 (the embedded profile) scores one block per pass, as its committed results were
    made; elsewhere blocks of equal length are stacked :data:`DEV_BATCH` at a time. Each pass's
    loss is a mean over equally many tokens, so the mean of pass means is the same quantity.
    """
    model.eval()
    if config is None or (config.device == "cpu" and config.precision == "float32"):
        losses = [model(input_ids=b, labels=b).loss.item() for b in batches]
    else:
        groups = [batches[i : i + DEV_BATCH] for i in range(0, len(batches), DEV_BATCH)]
        with _autocast(config):
            losses = []
            for group in groups:
                stacked = torch.cat(group).to(config.device)
                losses.append(model(input_ids=stacked, labels=stacked).loss * len(group))
        losses = [float(torch.stack(losses).float().sum().cpu()) / len(batches)]
    model.train()
    return float(np.mean(losses))


SYNC_EVERY = 25  # steps between reads of the loss to the host (a read waits for the device)


class _PendingRows:
    """Log rows whose loss and gradient norm are still on the device.

    Reading a scalar to the host every step (``loss.item()``) stalls a GPU until the step is done, so
    the values are read in one transfer every :data:`SYNC_EVERY` steps and before every dev
    evaluation, checkpoint and exit; the divergence check runs then. The logged values are the same.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[dict, torch.Tensor, torch.Tensor, float]] = []

    def add(self, row: dict, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.rows.append((row, loss.detach(), grad_norm.detach(), row["lr"]))

    def flush(self) -> None:
        if not self.rows:
            return
        values = torch.stack([torch.stack([loss.float(), norm.float()])
                              for _, loss, norm, _ in self.rows]).cpu().tolist()
        pending, self.rows = self.rows, []
        for (row, _, _, lr), (loss, norm) in zip(pending, values, strict=True):
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"training loss is {loss} at step {row['step']} (lr {lr:.3g}); "
                    "lower train.learning_rate or raise train.warmup_steps")
            row["loss"], row["grad_norm"] = loss, norm


def train(model: PreTrainedModel, stream: torch.Tensor, config: TrainConfig, folder: Path,
          dev_batches: list[torch.Tensor] | None = None, stop_after: int | None = None,
          progress: bool = True) -> TrainLog:
    """Train ``model`` in place; checkpoints go to ``folder/step_NNNNNN`` (safetensors).

    ``stop_after`` ends the run early at that step, as an interruption would (for tests). With
    ``config.early_stopping_patience`` the run stops once the dev loss has not improved for that
    many evaluations, and the model is left holding the weights of its best dev loss.
    """
    world, rank = process_group.world_size(), process_group.rank()
    if config.batch_size % world:
        raise ValueError(f"train.batch_size ({config.batch_size}) must be divisible by the number of "
                         f"data-parallel ranks ({world})")
    device = torch.device(config.device)
    if device.type == "cuda" and device.index is None and process_group.active():
        device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU (setup chose it)
    model.to(device)
    optimizer = _optimizer(model, config)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.steps,
        min_lr_rate=config.min_lr_ratio)
    start, log = _resume(model, optimizer, scheduler, config, folder)
    _barrier()
    wrapped = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    forward = torch.compile(wrapped) if config.compile else wrapped
    saves, evals = config.checkpoint_steps(), config.eval_steps()
    best_loss, since_best, log.best_step = _early_stopping_state(log)
    best_state = _load_best(folder, log.best_step) if config.early_stopping_patience is not None else None
    if config.early_stopping_patience is not None and since_best >= config.early_stopping_patience:
        log.stopped_early = True  # the checkpoint is the step that stopped the run: nothing left to train
        start = config.steps
    model.train()
    bar = tqdm(range(start + 1, config.steps + 1), initial=start, total=config.steps,
               desc="train", disable=not progress or rank != 0, mininterval=2)
    pending = _PendingRows()
    step_seconds, clock = 0.0, time.perf_counter()
    for step in bar:
        batch = sample_batch(stream, config.batch_size, config.context_length, config.seed, step)
        batch = batch.chunk(world)[rank]  # this rank's rows (all of them in one process)
        if device.type == "cuda":
            batch = batch.pin_memory().to(device, non_blocking=True)
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout masks depend on the step only
        with _autocast(config):
            loss = forward(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        row = {"step": step, "loss": None, "lr": scheduler.get_last_lr()[0], "grad_norm": None}
        pending.add(row, _global_mean(loss.detach(), world), grad_norm)
        scheduler.step()
        log.tokens += batch.numel() * world
        log.rows.append(row)
        if step in evals or step in saves or step % SYNC_EVERY == 0:
            pending.flush()
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if step in evals and dev_batches:
            step_seconds += time.perf_counter() - clock
            row["dev_loss"] = mean_loss(model, dev_batches, config)
            if row["dev_loss"] < best_loss:
                best_loss, since_best, log.best_step = row["dev_loss"], 0, step
                if config.early_stopping_patience is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if rank == 0:
                        _save_best(model, step, folder)  # a resumed run needs them too
                    _barrier()
            else:
                since_best += 1
            clock = time.perf_counter()
        if step in saves:
            step_seconds += time.perf_counter() - clock
            if rank == 0:
                _save_checkpoint(model, optimizer, scheduler, step, log, config, folder)
            _barrier()
            clock = time.perf_counter()
        if stop_after is not None and step >= stop_after:
            break
        if config.early_stopping_patience is not None and since_best >= config.early_stopping_patience:
            log.stopped_early = True
            break
    pending.flush()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the clock stops when the device's work is done
    log.seconds += step_seconds + time.perf_counter() - clock
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)  # a saved state stores the tied head once
        model.tie_weights()
    model.eval()
    return log


def _global_mean(loss: torch.Tensor, world: int) -> torch.Tensor:
    """The loss over every rank's rows: the mean of the ranks' means (their shares are equal)."""
    if world == 1:
        return loss
    total = loss.float().clone()
    torch.distributed.all_reduce(total)  # a sum: gloo has no average
    return total / world


def _barrier() -> None:
    """Ranks wait for rank 0's checkpoint before reading or replacing anything beside it."""
    if process_group.active():
        torch.distributed.barrier()


BEST = "best"  # early stopping: the weights of the best dev loss so far, beside the checkpoints


def _early_stopping_state(log: TrainLog) -> tuple[float, int, int | None]:
    """Best dev loss, evaluations since it, and its step, from the log (so a resumed run continues
    the same count as an uninterrupted one)."""
    losses = [(row["step"], row["dev_loss"]) for row in log.rows if "dev_loss" in row]
    if not losses:
        return math.inf, 0, None
    best_index = min(range(len(losses)), key=lambda i: (losses[i][1], i))
    return losses[best_index][1], len(losses) - 1 - best_index, losses[best_index][0]


def _save_best(model: PreTrainedModel, step: int, folder: Path) -> None:
    target, tmp = folder / BEST, folder / f".{BEST}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    write_text(tmp / "step.json", json.dumps({"step": step}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _load_best(folder: Path, step: int | None) -> dict[str, torch.Tensor] | None:
    """The saved best-dev weights of ``step`` (None before the first dev loss)."""
    if step is None:
        return None
    path = folder / BEST
    try:
        saved = json.loads((path / "step.json").read_text(encoding="utf-8"))["step"]
        state = load_file(str(path / "model.safetensors"))
    except (*UNREADABLE, FileNotFoundError) as error:
        raise RuntimeError(f"{path}: the best-dev weights of step {step} do not load ({error}); "
                           f"delete {folder} to train from scratch") from error
    if saved != step:
        raise RuntimeError(f"{path} holds step {saved}, but the log's best dev loss is at step {step}; "
                           f"delete {folder} to train from scratch")
    return state


def write_log(log: TrainLog, folder: Path, summary_path: Path, parameters: int,
              extra: dict | None = None) -> None:
    """Training and dev loss curves as CSV (for ``dvc plots``) and a summary for ``dvc metrics``.

    ``extra`` (throughput, epochs, the early-stopping record) joins the summary.
    """
    frame = pd.DataFrame(log.rows)
    write_csv(folder / "train_loss.csv", frame[["step", "loss", "lr", "grad_norm"]])
    dev = frame.dropna(subset=["dev_loss"]) if "dev_loss" in frame else frame.iloc[:0]
    if len(dev):
        write_csv(folder / "dev_loss.csv", dev[["step", "dev_loss"]])
    last = log.rows[-1]
    write_json(summary_path, {"parameters": parameters, "steps": last["step"],
                              "final_train_loss": last["loss"],
                              "final_dev_loss": float(dev["dev_loss"].iloc[-1]) if len(dev) else None,
                              **(extra or {})})


def run_record(log: TrainLog, config: TrainConfig, parameters: int, stream_tokens: int,
               peak_flops: float | None) -> dict:
    """What a GPU run reports beside its curves: throughput, MFU, epochs and the train/dev gap.

    The train/dev gap is taken at the model's step (the best dev loss under early stopping): the
    mean training loss of the last ``eval_every`` steps up to it against its dev loss.
    """
    frame = pd.DataFrame(log.rows)
    step = log.best_step if config.early_stopping_patience is not None else int(frame["step"].iloc[-1])
    span = config.eval_every or config.checkpoint_every
    window = frame[(frame["step"] <= step) & (frame["step"] > step - span)]
    dev = frame.set_index("step")["dev_loss"].get(step) if "dev_loss" in frame else None
    tokens_per_second = log.tokens / log.seconds if log.seconds > 0 else None
    record = {
        "model_step": step, "stopped_early": log.stopped_early,
        "tokens_seen": log.tokens, "training_stream_tokens": stream_tokens,
        "epochs": log.tokens / stream_tokens,
        "epochs_at_model_step": step * config.batch_size * config.context_length / stream_tokens,
        "train_loss_at_model_step": float(window["loss"].mean()),
        "dev_loss_at_model_step": None if dev is None or pd.isna(dev) else float(dev),
        "train_seconds": log.seconds, "tokens_per_second": tokens_per_second,
        "device": config.device, "precision": config.precision, "compile": config.compile,
    }
    if record["dev_loss_at_model_step"] is not None:
        record["train_dev_gap"] = record["dev_loss_at_model_step"] - record["train_loss_at_model_step"]
    if peak_flops and tokens_per_second:
        from qfair.models.throughput import training_mfu

        record["peak_flops_measured"] = peak_flops
        record["mfu"] = training_mfu(parameters, log.tokens, log.seconds, peak_flops)
    return record


DEV_BLOCKS = 16  # dev loss: the mean over at most this many context-length blocks of the dev stream


def dev_blocks(dev: torch.Tensor, context_length: int, count: int = DEV_BLOCKS) -> list[torch.Tensor]:
    """Consecutive ``[1, context_length + 1]`` blocks from the start of the dev stream (at most ``count``)."""
    width = context_length + 1
    blocks = [dev[i * width : (i + 1) * width].unsqueeze(0) for i in range(min(count, len(dev) // width))]
    if not blocks:
        raise ValueError(f"data/corpus/dev holds {len(dev)} tokens, fewer than one block of "
                         f"train.context_length + 1 = {width}: no dev loss could be measured")
    return blocks


def train_config(params, tokenizer_file: Path, manifest_file: Path) -> TrainConfig:
    """params' train settings with a fingerprint of the data and settings (resuming needs a match)."""
    data_hash = sha256_text(json.dumps(
        [sha256_file(tokenizer_file), json.loads(Path(manifest_file).read_text())["files"]],
        sort_keys=True))
    return TrainConfig(**params.train.model_dump(exclude={"threads"}),
                       seed=params.seed,
                       fingerprint=sha256_text(json.dumps(
                           # without `source`, so the fingerprint (and resuming) is as before
                           [params.model.model_dump(exclude={"source"}), params.train.model_dump(),
                            params.seed, data_hash], sort_keys=True)))


def train_embedded(params, tokenizer_dir: Path, corpus: Path,
                   checkpoints: Path) -> tuple[PreTrainedModel, object, TrainLog, dict]:
    """The train_model stage's work for ``model.source: train``: a seeded BLOOM trained on the corpus.

    Checkpoints go to ``checkpoints``; a run interrupted after one resumes from it. Returns the
    trained model, the tokenizer (saved with it), the training log and the run record
    (:func:`run_record`; on CPU without its wall-time figures, which differ between machines).
    """
    from transformers import AutoTokenizer

    from qfair.corpus.store import split_texts
    from qfair.models.load import build_bloom, count_parameters

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    def tokenized(split: str) -> list[list[int]]:
        return tokenizer(split_texts(corpus, split), add_special_tokens=False)["input_ids"]

    stream = token_stream(tokenized("train"), bos, eos, params.seed)
    dev = token_stream(tokenized("dev"), bos, eos, params.seed)
    dev_batches = dev_blocks(dev, params.train.context_length, params.train.dev_blocks)
    config = train_config(params, Path(tokenizer_dir) / "tokenizer.json", Path(corpus) / "manifest.json")
    model = build_bloom(len(tokenizer), params.model.hidden_size, params.model.n_layer,
                        params.model.n_head, params.model.dropout, bos, eos,
                        tokenizer.pad_token_id, params.seed)
    print(f"BLOOM {count_parameters(model):,} parameters; {len(stream):,} training tokens; "
          f"{params.train.steps * params.train.batch_size * params.train.context_length:,} tokens seen")
    log = train(model, stream, config, checkpoints, dev_batches=dev_batches)
    if config.device == "cpu":  # no wall-time figures: metrics/train.json stays the same on every machine
        record = run_record(log, config, count_parameters(model), len(stream), None)
        return model, tokenizer, log, {k: v for k, v in record.items()
                                       if k not in ("train_seconds", "tokens_per_second")}
    from qfair.models.throughput import measure_peak

    # every rank's GPU counts: MFU is of the whole data-parallel job
    peak = measure_peak(torch.device(config.device)) * process_group.world_size()
    record = run_record(log, config, count_parameters(model), len(stream), peak)
    print(f"{record['tokens_per_second']:,.0f} tokens/s, MFU {record.get('mfu', float('nan')):.1%} "
          f"of a measured {peak / 1e12:.0f} TFLOP/s; model = step {record['model_step']} "
          f"({record['epochs_at_model_step']:.2f} epochs, train/dev gap {record.get('train_dev_gap')})")
    return model, tokenizer, log, record
