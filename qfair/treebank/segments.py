"""Gold morpheme segmentations of surface words, for D-003's boundary scores (issue 16).

What counts as a gold boundary differs by treebank, and both are partial:

- **HTB (Hebrew)**: the boundaries between a multiword token's syntactic words (prefix particles
  such as the conjunction, prepositions and the article, and pronominal clitics). A token whose
  words do not spell it (the article dropped after a preposition, a clitic written in its full
  form) has no character-level segmentation; it is counted and left out, never guessed.
- **Turkish Web Treebank**: the boundaries between a word's inflectional groups. Every group but
  the last has the dependency ``ig`` and no space after it, and the groups spell the word.
  Inflectional suffixes inside a group are not segmented in the treebank, so recall against
  these boundaries measures derivational boundaries only.

Punctuation tokens are left out: they carry no morphology, and a tokenizer's split of ``...``
would read as a false boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qfair.treebank.conllu import Sentence
from qfair.treebank.words import surface_sentences


@dataclass(frozen=True)
class Segmented:
    """A surface word and its gold morphemes, which spell it exactly."""

    surface: str
    morphemes: tuple[str, ...]

    def __post_init__(self) -> None:
        if "".join(self.morphemes) != self.surface:
            raise ValueError(f"morphemes {self.morphemes} do not spell {self.surface!r}")


@dataclass(frozen=True)
class Segmentations:
    words: tuple[Segmented, ...]
    unaligned: int  # tokens left out because their morphemes do not spell them


def _segmentations(sentences: Iterable[Sentence], scheme: str) -> Segmentations:
    words, unaligned = [], 0
    for sentence in surface_sentences(sentences, scheme):
        for word in sentence.words:
            if word.morphemes is not None:
                words.append(Segmented(word.form, word.morphemes))
            elif word.upos != "PUNCT":
                unaligned += 1
    return Segmentations(tuple(words), unaligned)


def multiword_segmentations(sentences: Iterable[Sentence]) -> Segmentations:
    """HTB-style: each token's words as its morphemes (a single-word token: one morpheme)."""
    return _segmentations(sentences, "multiword")


def inflectional_group_segmentations(sentences: Iterable[Sentence]) -> Segmentations:
    """Turkish-style: runs of single-word tokens chained by ``ig`` with no space between them."""
    return _segmentations(sentences, "inflectional_groups")
