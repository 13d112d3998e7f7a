"""Track D's word-level pieces (issue 16): subword states pooled per word, and how well a
tokenizer's boundaries match gold morpheme boundaries (D-003)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

Pooling = Literal["first", "last", "mean"]


def pool_words(states: torch.Tensor, tokens_of_word: Sequence[Sequence[int]],
               pooling: Pooling) -> torch.Tensor:
    """One vector per word from subword states ``[tokens, width]``.

    ``tokens_of_word[w]`` lists the positions of word ``w``'s tokens in ascending order (a token
    that spans two words, such as ``).`` for the words ``)`` and ``.``, may be listed by both).
    ``first``/``last`` take the word's first or last subword, ``mean`` their average. Returns
    ``[words, width]``.
    """
    if states.dim() != 2:
        raise ValueError(f"states must be [tokens, width], got {tuple(states.shape)}")
    rows = []
    for word, tokens in enumerate(tokens_of_word):
        if not tokens:
            raise ValueError(f"word {word} has no token")
        if list(tokens) != sorted(set(tokens)) or not 0 <= tokens[0] <= tokens[-1] < states.shape[0]:
            raise ValueError(f"tokens {list(tokens)} of word {word} are not ascending positions "
                             f"of the {states.shape[0]} states")
        if pooling == "first":
            rows.append(states[tokens[0]])
        elif pooling == "last":
            rows.append(states[tokens[-1]])
        elif pooling == "mean":
            rows.append(states[list(tokens)].mean(dim=0))
        else:
            raise ValueError(f"pooling {pooling!r} is not first, last or mean")
    return torch.stack(rows) if rows else states.new_zeros((0, states.shape[1]))


def internal_boundaries(pieces: Sequence[str]) -> set[int]:
    """Character offsets inside a word where one piece ends and the next begins."""
    offsets, position = set(), 0
    for piece in pieces[:-1]:
        position += len(piece)
        offsets.add(position)
    return offsets


@dataclass(frozen=True)
class BoundaryScore:
    """Counts of internal boundaries over words; precision, recall and F1 derived from them."""

    true_positive: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positive / self.gold if self.gold else float("nan")

    @property
    def f1(self) -> float:
        total = self.predicted + self.gold
        return 2 * self.true_positive / total if total else float("nan")


def boundary_score(words: Sequence[tuple[Sequence[str], Sequence[str]]]) -> BoundaryScore:
    """Micro-averaged boundary precision/recall/F1 of (gold morphemes, tokenizer pieces) per word.

    Both segmentations must spell the same word (a tokenizer's pieces with its markers, such as a
    leading space or ``##``, removed first); a word with no internal boundary on either side adds
    nothing. Precision or recall with nothing to count is NaN, not 0 or 1.
    """
    true_positive = predicted = gold = 0
    for morphemes, pieces in words:
        if "".join(morphemes) != "".join(pieces):
            raise ValueError(f"segmentations {list(morphemes)} and {list(pieces)} spell different words")
        gold_cuts, predicted_cuts = internal_boundaries(morphemes), internal_boundaries(pieces)
        true_positive += len(gold_cuts & predicted_cuts)
        predicted += len(predicted_cuts)
        gold += len(gold_cuts)
    return BoundaryScore(true_positive, predicted, gold)
