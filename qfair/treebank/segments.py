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

IG = "ig"  # the Turkish Web Treebank's relation from an inflectional group to the next


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


def multiword_segmentations(sentences: Iterable[Sentence]) -> Segmentations:
    """HTB-style: each token's words as its morphemes (a single-word token: one morpheme)."""
    words, unaligned = [], 0
    for sentence in sentences:
        by_id = {word.id: word for word in sentence.words}
        for token in sentence.tokens:
            parts = [by_id[i] for i in token.word_ids]
            if all(part.upos == "PUNCT" for part in parts):
                continue
            forms = tuple(part.form for part in parts)
            if "".join(forms) != token.form:
                unaligned += 1
                continue
            words.append(Segmented(token.form, forms))
    return Segmentations(tuple(words), unaligned)


def inflectional_group_segmentations(sentences: Iterable[Sentence]) -> Segmentations:
    """Turkish-style: runs of single-word tokens chained by ``ig`` with no space between them."""
    words = []
    for sentence in sentences:
        by_id = {word.id: word for word in sentence.words}
        group: list[str] = []
        for token in sentence.tokens:
            word = by_id[token.word_ids[0]]
            if len(token.word_ids) != 1:
                raise ValueError(f"sentence {sentence.sent_id}: multiword token {token.form!r} in an "
                                 "inflectional-group treebank")
            if word.upos == "PUNCT" and not group:
                continue
            group.append(word.form)
            if word.deprel == IG and not token.space_after:
                continue  # the next token is this word's next inflectional group
            words.append(Segmented("".join(group), tuple(group)))
            group = []
        if group:  # a sentence cannot end inside a word; keep what was read as one word
            words.append(Segmented("".join(group), tuple(group)))
    return Segmentations(tuple(words), 0)
