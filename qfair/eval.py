"""Per-item and per-language likelihood evaluation: the one scoring path of qfair.

Every model qfair scores, full precision or compressed, goes through :func:`score_items`.
Definitions follow EXPERIMENTS.md: an item's NLL is the sum over its tokens (each predicted from
BOS and the item's earlier tokens) in nats; bits per byte divides a language's summed NLL by
``ln 2`` times its UTF-8 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """Group item indices, longest first, so each padded batch holds <= ``batch_tokens`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, current, width = [], [], 0
    for index in order:
        new_width = max(width, lengths[index])
        if current and new_width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, new_width = [], lengths[index]
        current.append(index)
        width = new_width
    if current:
        batches.append(current)
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


def padded_batches(tokenizer, texts: Sequence[str], batch_tokens: int, max_tokens: int,
                   device: torch.device | str = "cpu"):
    """Yield ``(indices, input_ids, attention_mask)`` of length-sorted, right-padded batches."""
    items = encode_items(tokenizer, texts, max_tokens)
    lengths = [len(ids) for ids in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for batch in length_sorted_batches(lengths, batch_tokens):
        width = max(lengths[i] for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            input_ids[row, : lengths[index]] = torch.tensor(items[index])
            mask[row, : lengths[index]] = 1
        yield batch, input_ids.to(device), mask.to(device)


@torch.no_grad()
def score_items(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch_tokens: int = 4096,
                max_tokens: int = 1024, progress: bool = False) -> ItemScores:
    """NLL of every item, batched by length (padding is masked and never scored)."""
    device = next(model.parameters()).device
    nll = np.zeros(len(texts), dtype=np.float64)
    n_tokens = np.zeros(len(texts), dtype=np.int64)
    batches = padded_batches(tokenizer, texts, batch_tokens, max_tokens, device)
    for batch, input_ids, mask in tqdm(batches, desc="score", disable=not progress, mininterval=2):
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        targets = input_ids[:, 1:]
        token_nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, reduction="none") * mask[:, 1:]
        nll[batch] = token_nll.double().sum(dim=1).cpu().numpy()
        n_tokens[batch] = mask[:, 1:].sum(dim=1).cpu().numpy()
    if not np.all(np.isfinite(nll)):
        raise FloatingPointError("score_items: the model produced a non-finite NLL")
    return ItemScores(nll=nll, n_tokens=n_tokens, n_bytes=utf8_lengths(texts))


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
                 batch_tokens: int, max_tokens: int, progress: bool = True) -> pd.DataFrame:
    """Score every item of every split and language in one batched pass.

    Returns a tidy table: split, language, item_id, nll, n_tokens, n_bytes.
    """
    keys = [(split, lang, item_id) for split, per_lang in splits.items()
            for lang, items in per_lang.items() for item_id in items]
    texts = [splits[s][lang][i] for s, lang, i in keys]
    scores = score_items(model, tokenizer, texts, batch_tokens, max_tokens, progress=progress)
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
