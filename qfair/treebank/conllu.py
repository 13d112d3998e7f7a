"""CoNLL-U treebanks for Track D (issue 16): a strict check, then the ``conllu`` library.

The ``conllu`` library parses, but it accepts a line with too few columns and keeps only the last
of two features with one name (the Turkish Web Treebank writes a nominal predicate's nominal and
verbal agreement as two ``PersonNumber`` features). So :func:`check_conllu` first checks every
line and names the file and line of the first fault, and features are read as ordered
(name, value) pairs. Multiword tokens (HTB's prefixes and clitics) become :class:`Token` s over
their syntactic words; empty nodes (``n.m``, enhanced graphs only) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import conllu

from qfair.errors import QfairError

COLUMNS = 10  # ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC
_WORD = re.compile(r"[1-9]\d*$")
_RANGE = re.compile(r"([1-9]\d*)-([1-9]\d*)$")
_EMPTY = re.compile(r"\d+\.[1-9]\d*$")


class ConlluError(QfairError):
    """A malformed CoNLL-U file; the message names the file and line."""


@dataclass(frozen=True)
class Word:
    """A syntactic word (an integer ID line)."""

    id: int
    form: str
    lemma: str
    upos: str
    feats: tuple[tuple[str, str], ...]  # in file order; one name may repeat
    head: int  # 0: the root
    deprel: str


@dataclass(frozen=True)
class Token:
    """A surface token: one word, or a multiword token spanning several."""

    form: str
    word_ids: tuple[int, ...]
    space_after: bool


@dataclass(frozen=True)
class Sentence:
    sent_id: str
    text: str
    words: tuple[Word, ...]
    tokens: tuple[Token, ...]


def _fail(path: Path | str, line: int, message: str) -> ConlluError:
    return ConlluError(f"{path}:{line}: {message}")


def _check_sentence(path: Path | str, words: list[tuple[int, int, str]],
                    ranges: list[tuple[int, int, int]]) -> None:
    """Word IDs run 1..n, heads point inside the sentence and not at the word itself."""
    for expected, (word_id, line, _) in enumerate(words, start=1):
        if word_id != expected:
            raise _fail(path, line, f"word ID {word_id} where {expected} was expected (IDs run 1, 2, ...)")
    n = len(words)
    for word_id, line, head in words:
        if not re.fullmatch(r"\d+", head) or not 0 <= int(head) <= n:
            raise _fail(path, line, f"HEAD {head!r} of word {word_id} is not in this sentence (0..{n})")
        if int(head) == word_id:
            raise _fail(path, line, f"word {word_id} is its own HEAD")
    for first, last, line in ranges:
        if not first < last <= n:
            raise _fail(path, line, f"multiword token {first}-{last} does not span words of this sentence")


def check_conllu(text: str, path: Path | str = "<string>") -> None:
    """Raise :class:`ConlluError` at the first malformed line: a column count other than ten,
    an ID that is neither ``n``, ``n-m`` nor ``n.m``, or a sentence whose IDs or heads are off."""
    words: list[tuple[int, int, str]] = []
    ranges: list[tuple[int, int, int]] = []
    for number, line in enumerate([*text.split("\n"), ""], start=1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if words or ranges:
                _check_sentence(path, words, ranges)
            words, ranges = [], []
            continue
        columns = line.split("\t")
        if len(columns) != COLUMNS:
            raise _fail(path, number, f"{len(columns)} tab-separated columns; CoNLL-U has {COLUMNS}")
        token_id, head = columns[0], columns[6]
        if _WORD.match(token_id):
            words.append((int(token_id), number, head))
        elif match := _RANGE.match(token_id):
            ranges.append((int(match.group(1)), int(match.group(2)), number))
        elif not _EMPTY.match(token_id):
            raise _fail(path, number, f"ID {token_id!r} is not n, n-m or n.m")


def _feats(line: list[str], index: int) -> tuple[tuple[str, str], ...]:
    value = line[index]
    if value == "_":
        return ()
    return tuple(tuple(pair.split("=", 1)) for pair in value.split("|"))  # type: ignore[misc]


def _space_after(misc: dict | None) -> bool:
    return not (misc and misc.get("SpaceAfter") == "No")


def parse_conllu(text: str, path: Path | str = "<string>") -> list[Sentence]:
    """Every sentence of a CoNLL-U text, checked first (:func:`check_conllu`)."""
    check_conllu(text, path)
    sentences = []
    for index, parsed in enumerate(conllu.parse(text, field_parsers={"feats": _feats})):
        words, tokens, covered = [], [], set()
        for token in parsed:
            token_id = token["id"]
            if isinstance(token_id, tuple) and token_id[1] == "-":
                ids = tuple(range(token_id[0], token_id[2] + 1))
                covered.update(ids)
                tokens.append(Token(token["form"], ids, _space_after(token["misc"])))
            elif isinstance(token_id, int):
                words.append(Word(token_id, token["form"], token["lemma"], token["upos"],
                                  token["feats"] or (), token["head"], token["deprel"]))
                if token_id not in covered:
                    tokens.append(Token(token["form"], (token_id,), _space_after(token["misc"])))
        meta = parsed.metadata
        sentences.append(Sentence(meta.get("sent_id", f"{path}#{index + 1}"), meta.get("text", ""),
                                  tuple(words), tuple(tokens)))
    return sentences


def read_conllu(path: Path | str) -> list[Sentence]:
    """:func:`parse_conllu` of a file (UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise ConlluError(f"{path}: CoNLL-U file not found")
    return parse_conllu(path.read_text(encoding="utf-8"), path)
