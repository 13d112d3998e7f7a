"""Read a prepared corpus folder (written by :func:`qfair.corpus.write_corpus`)."""

from __future__ import annotations

import json
from pathlib import Path

from qfair.io import read_jsonl

Items = dict[str, str]


def read_split(folder: Path | str, split: str) -> dict[str, Items]:
    """``{locale: {item id: text}}`` of one split, items in id order (aligned across languages)."""
    path = Path(folder) / split
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: split {split!r} not found in the corpus")
    return {file.stem: dict(sorted((row["id"], row["text"]) for row in read_jsonl(file)))
            for file in sorted(path.glob("*.jsonl"))}


def read_manifest(folder: Path | str) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
