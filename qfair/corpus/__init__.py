"""Corpus: sources (a registry), cleaning, parallel splits, training shares, manifest."""

from qfair.corpus.build import Corpus, CorpusError, build_corpus, write_corpus
from qfair.corpus.fetch import FetchError
from qfair.corpus.languages import LANGUAGES, Language, resolve_languages
from qfair.corpus.sources import SOURCES, get_source, register_source

__all__ = [
    "LANGUAGES", "SOURCES", "Corpus", "CorpusError", "FetchError", "Language", "build_corpus",
    "get_source", "register_source", "resolve_languages", "write_corpus",
]
