"""D-003: do tokenizers split words at morpheme boundaries, and do misaligned words degrade more?

Boundaries are character offsets inside a word (qfair.analysis.morphology scores them). Gold
boundaries come from the treebanks' segmentations (qfair/treebank/segments.py); a tokenizer's are
where its tokens of the word start, the word tokenized alone after one space, as it appears in
running text. A byte-level token boundary inside a character is not a character boundary and is
not counted, for every tokenizer alike.

Per-word degradation uses the project's tokenizer in sentence context: a word with two or more
gold morphemes *aligns* when every gold boundary is a token boundary and *crosses* otherwise; its
degradation is the rise of its subword NLL under a quantized config, in bits per byte of the word
(an absolute change: a ratio would be unstable for words the model predicts almost for free).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

from qfair.analysis.morphology import BoundaryScore, boundary_score

Splitter = Callable[[str], list[str]]  # word -> its pieces under a tokenizer (they spell the word)


def pieces_at(word: str, cuts: set[int]) -> list[str]:
    """``word`` cut at the character offsets ``cuts`` (those inside it)."""
    edges = [0, *sorted(c for c in cuts if 0 < c < len(word)), len(word)]
    return [word[a:b] for a, b in pairwise(edges)]


def offset_cuts(offsets: Sequence[tuple[int, int]], start: int, end: int) -> set[int]:
    """Offsets inside the word ``[start, end)`` (relative to ``start``) where a token starts."""
    return {s - start for s, e in offsets if e > s and start < s < end}


def fast_tokenizer_splitter(tokenizer) -> Splitter:
    """For a transformers fast tokenizer or a ``tokenizers.Tokenizer`` (both give offsets)."""
    def split(word: str) -> list[str]:
        text = " " + word
        if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
            offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        else:
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return pieces_at(word, offset_cuts(offsets, 1, len(text)))
    return split


def tiktoken_splitter(encoding) -> Splitter:
    """For a tiktoken encoding: token byte lengths, cut where they end on a character boundary."""
    def split(word: str) -> list[str]:
        text = (" " + word).encode("utf-8")
        ends, position = set(), 0
        for token in encoding.encode_ordinary(" " + word):
            position += len(encoding.decode_single_token_bytes(token))
            ends.add(position)
        char_ends = {len(text[:end].decode("utf-8")) - 1 for end in ends
                     if _is_char_boundary(text, end)}
        return pieces_at(word, char_ends)
    return split


def _is_char_boundary(text: bytes, offset: int) -> bool:
    return offset >= len(text) or (text[offset] & 0xC0) != 0x80  # not a UTF-8 continuation byte


def boundary_scores(words: Sequence[tuple[str, Sequence[str]]], split: Splitter) -> dict[str, float]:
    """Micro-averaged boundary precision, recall and F1 of ``split`` on ``(form, morphemes)`` words."""
    score: BoundaryScore = boundary_score([(morphemes, split(form)) for form, morphemes in words])
    return {"words": len(words), "gold_boundaries": score.gold, "predicted_boundaries": score.predicted,
            "precision": score.precision, "recall": score.recall, "f1": score.f1}


def external_splitters(specs) -> dict[str, Splitter]:
    """Splitters of the external tokenizers of ``params.tokenizers`` (pinned registry files)."""
    from qfair.analysis.tokenization import load_external_tokenizer, tiktoken_encoding

    out = {}
    for spec in specs:
        param = f"tokenizers.{spec.name}"
        if spec.encoding is not None:
            out[spec.name] = tiktoken_splitter(tiktoken_encoding(spec.package, spec.version, spec.sha256,
                                                                 spec.member, spec.encoding, param))
        else:
            out[spec.name] = fast_tokenizer_splitter(load_external_tokenizer(
                spec.source, spec.package, spec.version, spec.sha256, spec.member, param))
    return out
