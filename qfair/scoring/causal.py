"""Per-item and per-language likelihood evaluation: the one scoring path of qfair.

Every model qfair scores, full precision or compressed, goes through :func:`score_items`.
Definitions follow docs/definitions.md: an item's NLL is the sum over its tokens (each predicted from
BOS and the item's earlier tokens) in nats; bits per byte divides a language's summed NLL by
``ln 2`` times its UTF-8 bytes.

The per-token NLL has three forms, one per pipeline path, all the same quantity up to float32
rounding: on CPU, ``cross_entropy`` with the class axis second (every committed output; the other
forms differ from it in the last bits of most tokens, so it stays); on a GPU, a log-softmax along
the contiguous vocabulary axis (the strided form is slow there); under ``eval.compile``, the fused
``logsumexp - logit`` (:func:`fused_token_nll_sums`), one graph with the forward pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

LN2 = math.log(2)


@dataclass
class ItemScores:
    """Per-item results, in the order the items were given."""

    nll: np.ndarray  # nats, float64
    n_tokens: np.ndarray
    n_bytes: np.ndarray


def utf8_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)


def bits_per_byte(nll: np.ndarray, n_bytes: np.ndarray) -> float:
    """Summed NLL (nats) over summed UTF-8 bytes, in bits: the lm-evaluation-harness convention."""
    total_bytes = int(np.sum(n_bytes))
    if total_bytes <= 0:
        raise ValueError("bits_per_byte: no bytes to normalise by")
    return float(np.sum(nll)) / (LN2 * total_bytes)


def length_sorted_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group item indices, longest first, so each padded batch holds <= ``batch_tokens`` tokens.

    Items are sorted by decreasing length (ties by index), so a batch's width is its first item's
    length and each batch is the longest run of consecutive items that fits: one step per batch.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    order = np.lexsort((np.arange(len(lengths)), -lengths))
    batches, start = [], 0
    while start < len(order):
        width = int(lengths[order[start]])
        size = max(1, batch_tokens // width) if width > 0 else len(order) - start
        batches.append(order[start : start + size].tolist())
        start += size
    return batches


def encode_items(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """``[BOS] + tokens`` per item; an item longer than ``max_tokens`` is an error."""
    bos = tokenizer.bos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    items = [([bos] if bos is not None else []) + ids for ids in encoded]
    for index, ids in enumerate(items):
        if len(ids) > max_tokens:
            raise ValueError(f"item {index} has {len(ids)} tokens > eval.max_tokens {max_tokens}")
        if len(ids) < 2:
            raise ValueError(f"item {index} ({texts[index]!r}) has no token to score")
    return items


def pad_token_id(tokenizer) -> int:
    """The id padding is filled with (never scored: masked out); 0 if the tokenizer has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


@dataclass(frozen=True)
class TokenItems:
    """Token-id items stored end to end, so padded batches are built by array indexing."""

    flat: np.ndarray  # int64, every item's ids one after another
    offsets: np.ndarray  # int64, where each item starts in ``flat``
    lengths: np.ndarray  # int64, tokens per item

    @classmethod
    def from_lists(cls, items: Sequence[Sequence[int]]) -> TokenItems:
        lengths = np.fromiter((len(ids) for ids in items), dtype=np.int64, count=len(items))
        flat = np.fromiter(itertools.chain.from_iterable(items), dtype=np.int64,
                           count=int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(flat=flat, offsets=offsets, lengths=lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def padded(self, batch: Sequence[int], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, both ``[len(batch), width]`` int64, right-padded."""
        rows = np.asarray(batch, dtype=np.int64)
        lengths = self.lengths[rows]
        positions = np.arange(int(lengths.max()), dtype=np.int64)
        mask = positions < lengths[:, None]
        # Padding positions read some valid id (clamped index) and are then overwritten.
        index = np.minimum(self.offsets[rows, None] + positions, max(len(self.flat) - 1, 0))
        input_ids = np.where(mask, self.flat[index], pad_id)
        return input_ids, mask.astype(np.int64)


def to_device(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A host array on ``device``: through pinned memory and an asynchronous copy on CUDA."""
    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def padded_batches(tokenizer, texts: Sequence[str], batch_tokens: int, max_tokens: int,
                   device: torch.device | str = "cpu"):
    """Yield ``(indices, input_ids, attention_mask)`` of length-sorted, right-padded batches."""
    tokens = TokenItems.from_lists(encode_items(tokenizer, texts, max_tokens))
    pad = pad_token_id(tokenizer)
    for batch in length_sorted_batches(tokens.lengths, batch_tokens):
        input_ids, mask = tokens.padded(batch, pad)
        yield batch, to_device(input_ids, device), to_device(mask, device)


def token_nll_sums(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row, the summed NLL (nats, float64) of tokens 1.. given the earlier ones; padding adds 0.

    Log-softmax always runs in float32, whatever the logits' dtype. On CPU the formula is the one
    every pipeline output was computed with (class axis second), kept so CPU results stay
    bit-identical; elsewhere the log-softmax runs along the contiguous last axis (the strided
    form is slow on GPUs), which is the same quantity up to float32 rounding.
    """
    targets = input_ids[:, 1:]
    if logits.device.type == "cpu":
        token_nll = _nll_class_axis_second(logits[:, :-1], targets)
    else:
        # The whole (contiguous) logits go in: slicing off the last position first would copy them.
        token_nll = _nll_last_axis(logits, targets)
    return (token_nll * mask[:, 1:]).double().sum(dim=1)


def _nll_class_axis_second(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token NLL, float32, through ``cross_entropy`` on ``[batch, vocab, positions]``."""
    return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")


def _nll_last_axis(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token NLL, float32, through a log-softmax along the vocabulary (the contiguous axis).

    ``logits`` has one position more than ``targets`` (``[batch, T + 1, vocab]`` against
    ``[batch, T]``); the last position's log-probabilities are computed and not read.
    """
    log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
    return -log_probs[:, : targets.shape[1]].gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def fused_token_nll_sums(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`token_nll_sums` as ``logsumexp(logits) - logit[target]``, with no log-softmax tensor.

    Every token's NLL is the same quantity (float32 arithmetic on the logits as given), up to float32
    rounding. Under ``torch.compile`` the float32 upcast fuses into the logsumexp reduction, so the
    logits are read once and nothing of ``[batch, positions, vocab]`` size is written; run eagerly,
    ``.float()`` materialises a float32 copy (use :func:`token_nll_sums` there).
    """
    targets = input_ids[:, 1:]
    scored = logits[:, : targets.shape[1]]  # a view: the last position is never read
    target_logits = scored.gather(-1, targets.unsqueeze(-1)).squeeze(-1).float()
    token_nll = torch.logsumexp(scored.float(), dim=-1) - target_logits
    return (token_nll * mask[:, 1:]).double().sum(dim=1)


def _forward_nll_sums(model: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One batch's summed NLL per row: the forward pass and :func:`fused_token_nll_sums`, one graph."""
    logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
    return fused_token_nll_sums(logits, input_ids, mask)


# The backend torch.compile uses for ``score_items(..., compile=True)``; tests swap in a cheaper one.
COMPILE_BACKEND = "inductor"
_compiled: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_forward_nll_sums() -> Callable[..., torch.Tensor]:
    """:func:`_forward_nll_sums` under ``torch.compile`` (dynamic shapes), built once per backend.

    The model is an argument, not a constant of the graph, so models of the same architecture and
    dtype share one compilation (their weights are graph inputs); dynamic shapes let every batch
    width and row count use it too, apart from sizes 0 and 1, which torch.compile specialises on
    (:func:`_pad_for_compile` avoids them).
    """
    if COMPILE_BACKEND not in _compiled:
        _compiled[COMPILE_BACKEND] = torch.compile(_forward_nll_sums, dynamic=True, backend=COMPILE_BACKEND)
    return _compiled[COMPILE_BACKEND]


def _pad_for_compile(input_ids: np.ndarray, mask: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """At least 2 rows (the first repeated) and 3 columns (masked padding), so no dimension is 1.

    A size-1 dimension would make torch.compile specialise and compile the model again. The extra
    row's result is dropped; extra columns are padding, which is never scored and, the attention
    being causal, changes no earlier position.
    """
    if input_ids.shape[0] < 2:
        input_ids, mask = np.concatenate([input_ids, input_ids[:1]]), np.concatenate([mask, mask[:1]])
    if input_ids.shape[1] < 3:
        extra = 3 - input_ids.shape[1]
        input_ids = np.pad(input_ids, ((0, 0), (0, extra)), constant_values=pad_id)
        mask = np.pad(mask, ((0, 0), (0, extra)), constant_values=0)
    return input_ids, mask


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's inputs go: its input embeddings' device (the first shard under a device_map)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None:
        return embeddings.weight.device
    return next(model.parameters()).device


@torch.no_grad()
def score_token_batches(model: torch.nn.Module, tokens: TokenItems, batches: Sequence[Sequence[int]],
                        pad_id: int, progress: bool = False, compile: bool = False) -> np.ndarray:
    """NLL (nats, float64) of the items in ``batches``; NaN for items in no batch.

    Batches are built by array indexing, copied asynchronously, and their NLLs stay on the device
    until one transfer at the end, so the host never waits for the device between batches.
    ``compile``: the forward pass and a fused NLL (:func:`fused_token_nll_sums`) run as one
    ``torch.compile``d graph (:func:`compiled_forward_nll_sums`) instead of eagerly.
    """
    device = model_device(model)
    nll = torch.full((len(tokens),), math.nan, dtype=torch.float64, device=device)
    forward_nll = compiled_forward_nll_sums() if compile else None
    for batch in tqdm(batches, desc="score", disable=not progress, mininterval=2):
        input_ids, mask = tokens.padded(batch, pad_id)
        rows = to_device(np.asarray(batch, dtype=np.int64), device)
        if forward_nll is not None:
            input_ids, mask = (to_device(a, device) for a in _pad_for_compile(input_ids, mask, pad_id))
            nll[rows] = forward_nll(model, input_ids, mask)[: len(batch)]
            continue
        input_ids, mask = to_device(input_ids, device), to_device(mask, device)
        # use_cache=False: no key/value cache is built (it costs a copy per layer and is never used).
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        nll[rows] = token_nll_sums(logits, input_ids, mask)
    return nll.cpu().numpy()


def check_finite_nll(nll: np.ndarray, scorer: str = "score_items") -> None:
    """Raise ``FloatingPointError`` if the model gave any item a NaN or infinite NLL."""
    if not np.all(np.isfinite(nll)):
        raise FloatingPointError(f"{scorer}: the model produced a non-finite NLL")


def score_items(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch_tokens: int = 4096,
                max_tokens: int = 1024, progress: bool = False, compile: bool = False) -> ItemScores:
    """NLL of every item, batched by length (padding is masked and never scored).

    Runs where the model is: float32 on CPU, or bf16/fp16/bitsandbytes on a GPU.
    ``compile=True`` (opt-in, default off) runs each batch through ``torch.compile`` with a fused
    NLL: faster on a GPU once compiled (the first call compiles, which takes a while), and the same
    NLLs up to floating-point rounding, not bit for bit. The default path is the reference.
    """
    tokens = TokenItems.from_lists(encode_items(tokenizer, texts, max_tokens))
    batches = length_sorted_batches(tokens.lengths, batch_tokens)
    nll = score_token_batches(model, tokens, batches, pad_token_id(tokenizer), progress, compile=compile)
    check_finite_nll(nll)
    return ItemScores(nll=nll, n_tokens=tokens.lengths - 1, n_bytes=utf8_lengths(texts))


def score_items_one_by_one(model: torch.nn.Module, tokenizer, texts: Sequence[str],
                           max_tokens: int = 1024) -> ItemScores:
    """The naive loop (one forward pass per item), kept as the benchmark's and tests' reference."""
    return score_items(model, tokenizer, texts, batch_tokens=1, max_tokens=max_tokens)


def unigram_byte_nll(train_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Per-item NLL (nats) under an add-one-smoothed byte unigram fitted on ``train_texts``."""
    counts = np.ones(256, dtype=np.float64)
    for text in train_texts:
        counts += np.bincount(np.frombuffer(text.encode("utf-8"), dtype=np.uint8), minlength=256)
    log_prob = np.log(counts / counts.sum())
    return np.array([-log_prob[np.frombuffer(t.encode("utf-8"), dtype=np.uint8)].sum()
                     for t in texts], dtype=np.float64)


def bits_per_byte_ci(nll: np.ndarray, n_bytes: np.ndarray, resamples: int, confidence: float,
                     method: str, seed: int) -> tuple[float, float]:
    """Bootstrap CI of bits per byte over items (``scipy.stats.bootstrap``, paired resampling).

    The same ``seed`` and item count draw the same item indices for every language, so the
    intervals of a parallel test set are paired across languages.
    """
    if len(nll) < 2:
        return (math.nan, math.nan)

    def statistic(n: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return n.sum(axis=axis) / (LN2 * b.sum(axis=axis))

    result = stats.bootstrap((nll, n_bytes.astype(np.float64)), statistic, paired=True,
                             vectorized=True, n_resamples=resamples, confidence_level=confidence,
                             method=method, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def score_corpus(model: torch.nn.Module, tokenizer, splits: dict[str, dict[str, dict[str, str]]],
                 batch_tokens: int, max_tokens: int, progress: bool = True,
                 scorer: Callable[..., ItemScores] | None = None) -> pd.DataFrame:
    """Score every item of every split and language in one batched pass.

    ``scorer`` replaces :func:`score_items` (same arguments), e.g. with
    ``qfair.scoring.distributed.score_items`` to share the work among ``torchrun`` ranks.
    Returns a tidy table: split, language, item_id, nll, n_tokens, n_bytes.
    """
    keys = [(split, lang, item_id) for split, per_lang in splits.items()
            for lang, items in per_lang.items() for item_id in items]
    texts = [splits[s][lang][i] for s, lang, i in keys]
    scores = (scorer or score_items)(model, tokenizer, texts, batch_tokens, max_tokens, progress=progress)
    frame = pd.DataFrame(keys, columns=["split", "language", "item_id"])
    frame["nll"], frame["n_tokens"], frame["n_bytes"] = scores.nll, scores.n_tokens, scores.n_bytes
    return frame


def summarize_languages(items: pd.DataFrame, resamples: int, confidence: float, method: str,
                        seed: int, value: str = "nll") -> pd.DataFrame:
    """Per split and language: items, bytes, tokens, NLL, bits per byte with a bootstrap CI."""
    rows = []
    for (split, language), group in items.groupby(["split", "language"], sort=True):
        group = group.sort_values("item_id")  # same order, hence same resamples, in every language
        nll, n_bytes = group[value].to_numpy(), group["n_bytes"].to_numpy()
        low, high = bits_per_byte_ci(nll, n_bytes, resamples, confidence, method, seed)
        rows.append({
            "split": split, "language": language, "items": len(group),
            "bytes": int(n_bytes.sum()), "tokens": int(group["n_tokens"].sum()),
            "nll": float(nll.sum()), "nats_per_item": float(nll.mean()),
            "bits_per_byte": bits_per_byte(nll, n_bytes), "bpb_ci_low": low, "bpb_ci_high": high,
            "tokens_per_byte": float(group["n_tokens"].sum() / n_bytes.sum()),
        })
    return pd.DataFrame(rows)
