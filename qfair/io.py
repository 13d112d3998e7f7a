"""Atomic file output and NaN/Inf refusal.

Every file a stage writes goes through these helpers: the content is written to a temporary file
in the same directory and renamed over the target, so an interrupted or failed stage never leaves
a half-written output behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class NonFiniteResultError(ValueError):
    """A result that should be a finite number is NaN or infinite."""


def check_finite_nested(value: Any, where: str = "result") -> None:
    """Raise :class:`NonFiniteResultError` naming the first NaN/Inf float inside nested data
    (dicts, lists, tuples), the JSON a stage is about to write."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite_nested(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_finite_nested(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise NonFiniteResultError(f"{where} is {value}: refusing to write a non-finite result")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``target`` as a whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, data: Any) -> None:
    """Write JSON atomically after checking that every float in ``data`` is finite."""
    check_finite_nested(data, str(path))
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: Path | str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: Path | str, rows: list[dict[str, Any]]) -> None:
    write_text(path, jsonl_text(rows))


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_csv(path: Path | str, frame: pd.DataFrame, may_be_empty: Sequence[str] = ()) -> None:
    """Write a table atomically; float columns must be finite (nullable integers may be missing).

    ``may_be_empty`` names columns where a missing value is a fact, not a failure (the resource level
    of a language without a published share): their NaN is written as an empty cell.
    """
    for column in [c for c in frame.select_dtypes("floating").columns if c not in may_be_empty]:
        values = frame[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise NonFiniteResultError(
                f"{path}: column {column!r} row {int(bad.nonzero()[0][0])} is {values[bad][0]}")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
