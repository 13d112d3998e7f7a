"""Read a prepared corpus folder (written by :func:`qfair.corpus.write_corpus`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qfair.errors import QfairError
from qfair.io import read_jsonl

Items = dict[str, str]
REBUILD = "rebuild it with `dvc repro -f prepare_corpus`"


class CorpusFileError(QfairError, ValueError):
    """A corpus file is damaged (not UTF-8, not JSON lines); the message names file and line."""


def read_rows(path: Path | str, fix: str = REBUILD) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; a damaged file is an error naming the file, line and ``fix``."""
    path = Path(path)
    try:
        return read_jsonl(path)
    except UnicodeDecodeError as error:
        # The streaming decoder's offset is relative to its buffer: find the file offset again.
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            offset = error.start
        except UnicodeDecodeError as whole:
            offset = whole.start
        line = data[:offset].count(b"\n") + 1
        raise CorpusFileError(f"{path}: line {line} is not valid UTF-8 (byte {offset}: "
                              f"{data[offset:offset + 1]!r}); {fix}") from None
    except json.JSONDecodeError as error:
        raise CorpusFileError(f"{path}: a line is not valid JSON ({error.msg}, column "
                              f"{error.colno}); {fix}") from None


def read_split(folder: Path | str, split: str) -> dict[str, Items]:
    """``{locale: {item id: text}}`` of one split, items in id order (aligned across languages)."""
    path = Path(folder) / split
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: split {split!r} not found in the corpus")
    return {file.stem: dict(sorted((row["id"], row["text"]) for row in read_rows(file)))
            for file in sorted(path.glob("*.jsonl"))}


def split_texts(folder: Path | str, split: str) -> list[str]:
    """Every text of one split in file order (languages by file name, rows as stored)."""
    return [row["text"] for path in sorted((Path(folder) / split).glob("*.jsonl"))
            for row in read_rows(path)]


def read_manifest(folder: Path | str) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
