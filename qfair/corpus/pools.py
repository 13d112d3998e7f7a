"""Training pools: seeded subsamples by item count or bytes, and joining extra text into a pool."""

from __future__ import annotations

import numpy as np

from qfair.errors import QfairError

Items = dict[str, str]  # item id -> text


class CorpusError(QfairError, ValueError):
    """The corpus cannot be built as configured; the message names the language or field."""


def utf8_bytes(items: Items) -> int:
    return sum(len(text.encode("utf-8")) for text in items.values())


def subsample(items: Items, count: int, seed: int) -> Items:
    keys = sorted(items)
    chosen = np.random.default_rng(seed).choice(len(keys), size=count, replace=False)
    return {keys[i]: items[keys[i]] for i in sorted(chosen)}


def subsample_bytes(items: Items, target: float, seed: int) -> Items:
    """A seeded subsample of ``items`` holding about ``target`` UTF-8 bytes.

    Items are taken in a seeded random order until their bytes reach ``target`` (so the last one
    may overshoot by less than one item); the result keeps the original id order.
    """
    keys = list(items)
    order = np.random.default_rng(seed).permutation(len(keys))
    chosen, total = set(), 0
    for index in order:
        if total >= target:
            break
        chosen.add(keys[index])
        total += len(items[keys[index]].encode("utf-8"))
    return {key: text for key, text in items.items() if key in chosen}


def add_to_pool(pool: Items, extra: Items, prefix: str, held_out: set[str] | None = None) -> int:
    """Add ``extra`` under ``<prefix>/<id>`` ids, skipping held-out ids and texts already in the
    pool; returns how many were skipped as duplicates."""
    seen = set(pool.values())
    duplicates = 0
    for key, text in extra.items():
        if held_out is not None and key in held_out:
            continue
        if text in seen:
            duplicates += 1
            continue
        pool[f"{prefix}/{key}"] = text
        seen.add(text)
    return duplicates
