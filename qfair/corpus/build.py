"""Build the embedded corpus: clean, split into a parallel train/dev/test, allocate training shares.

Invariants (tested in tests/test_corpus.py):
- dev and test hold the same item ids in every language (a parallel set);
- no item id, and no reference-language source string, is in two splits;
- every language keeps at least one string in every split, or the build stops naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qfair.corpus.clean import clean_text
from qfair.corpus.languages import LANGUAGES, Language, dominant_script, resolve_languages
from qfair.corpus.pools import CorpusError, Items, add_to_pool, subsample, subsample_bytes, utf8_bytes
from qfair.corpus.sources import BibleSource, RawTexts, get_source
from qfair.corpus.treebanks import TreebankSplit, add_treebanks, join_treebanks, treebank_sources
from qfair.io import jsonl_text, sha256_text, write_json, write_jsonl, write_text
from qfair.params import CorpusParams

SPLITS = ("train", "dev", "test")


@dataclass
class Corpus:
    languages: list[Language]
    splits: dict[str, dict[str, Items]]  # split -> locale -> items
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # locale -> reason -> count
    allocation: dict[str, dict] = field(default_factory=dict)  # locale -> share used, source, capped
    # Track D: languages that only train (a treebank's language the corpus does not evaluate),
    # and every treebank's held-out dev/test sentences (locale -> split -> sentences)
    train_only: list[Language] = field(default_factory=list)
    treebanks: dict[str, dict[str, TreebankSplit]] = field(default_factory=dict)


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


def published_shares(languages: list[Language], table: str, column: str,
                     missing: str) -> dict[str, dict]:
    """Locale -> {share, share_source} from a cited table of qfair/registry/pretraining_shares.yaml.

    A locale is looked up by the first two parts of its code (``por_Latn_BR`` -> ``por_Latn``).
    A language the table lacks gets the rule's share (``smallest_listed``: the smallest share
    among the table's languages that are in this corpus) or stops the build (``error``).
    """
    from qfair.registry import share_tables

    shares = getattr(share_tables()[table], column)
    out: dict[str, dict] = {}
    for lang in languages:
        key = "_".join(lang.code.split("_")[:2])
        if key in shares:
            out[lang.locale] = {"share": shares[key], "share_source": f"{table}.{column}:{key}"}
    lacking = [lang.locale for lang in languages if lang.locale not in out]
    if lacking and missing == "error":
        raise CorpusError(f"corpus.training_share.published: table {table}.{column} has no share for "
                          f"{lacking} (set missing: smallest_listed, or drop them)")
    if lacking:
        if not out:
            raise CorpusError(f"corpus.training_share.published: table {table}.{column} lists none "
                              "of the corpus languages, so smallest_listed has nothing to take")
        smallest = min(entry["share"] for entry in out.values())
        for loc in lacking:
            out[loc] = {"share": smallest, "share_source": "rule:smallest_listed"}
    return out


def published_allocation(pools: dict[str, Items], languages: list[Language], table: str,
                         column: str, missing: str, floor_fraction: float | None,
                         seed: int) -> tuple[dict[str, Items], dict[str, dict]]:
    """Training bytes proportional to cited shares: the top-share language keeps its whole pool;
    every other language gets share / top_share of the top pool's bytes (at least
    ``floor_fraction`` of it when set), a seeded subsample of its own pool, capped at that pool."""
    shares = published_shares(languages, table, column, missing)
    top = max(shares, key=lambda loc: (shares[loc]["share"], loc))
    top_bytes = utf8_bytes(pools[top])
    train, info = {}, {}
    for i, lang in enumerate(languages):
        loc = lang.locale
        ratio = shares[loc]["share"] / shares[top]["share"]
        if floor_fraction is not None:
            ratio = max(ratio, floor_fraction)
        pool_bytes = utf8_bytes(pools[loc])
        target = ratio * top_bytes
        capped = loc != top and target >= pool_bytes
        train[loc] = pools[loc] if loc == top or capped else subsample_bytes(pools[loc], target, seed + i)
        info[loc] = {**shares[loc], "mode": "published", "top_language": top,
                     "target_bytes": round(target), "pool_bytes": pool_bytes, "capped": capped}
    return train, info


def allocate(pools: dict[str, Items], languages: list[Language],
             params: CorpusParams) -> tuple[dict[str, Items], dict[str, dict]]:
    """The training split: each language's pool cut to its share (``corpus.training_share``)."""
    share, seed = params.training_share, params.split.seed
    locales = [lang.locale for lang in languages]
    if share.mode == "published":
        pub = share.published
        return published_allocation(pools, languages, pub.table, pub.column, pub.missing,
                                    pub.floor_fraction, seed)
    available = {loc: len(pools[loc]) for loc in locales}
    counts = training_counts(locales, available, share.mode, share.zipf_exponent,
                             share.min_fraction, share.permutation_seed, share.explicit)
    return {loc: subsample(pools[loc], counts[loc], seed + i) for i, loc in enumerate(locales)}, {}


_ADDED_WORDS = re.compile(r"[\[\]]")


def clean_verse(text: str, placeholders: str) -> str | None:
    """A Bible verse cleaned like any string, ``[added words]`` kept without their brackets;
    None when nothing with a letter or digit is left (bn marks merged verses with "-")."""
    cleaned = clean_text(_ADDED_WORDS.sub("", text), placeholders)
    if cleaned is None or not any(char.isalnum() for char in cleaned):
        return None
    return cleaned


def clean_verses(raw: dict[str, str], placeholders: str) -> tuple[Items, int]:
    kept, empty = {}, 0
    for key, text in raw.items():
        cleaned = clean_verse(text, placeholders)
        if cleaned is None:
            empty += 1
        else:
            kept[key] = cleaned
    return kept, empty


def split_verses(cleaned: dict[str, Items], dev_items: int, test_items: int,
                 seed: int) -> dict[str, dict[str, Items]]:
    """Verse-parallel splits: dev and test are seeded draws from the verses non-empty in every
    language (the same ids everywhere); training is every other verse of each language."""
    common = sorted(set.intersection(*(set(items) for items in cleaned.values())))
    if len(common) < dev_items + test_items + 1:
        raise CorpusError(f"corpus.split: dev_items {dev_items} + test_items {test_items} need more "
                          f"verses than the {len(common)} non-empty in every language")
    order = np.random.default_rng(seed).permutation(len(common))
    test = {common[i] for i in order[:test_items]}
    dev = {common[i] for i in order[test_items:test_items + dev_items]}
    splits: dict[str, dict[str, Items]] = {name: {} for name in SPLITS}
    for loc, items in cleaned.items():
        splits["test"][loc] = {key: text for key, text in items.items() if key in test}
        splits["dev"][loc] = {key: text for key, text in items.items() if key in dev}
        splits["train"][loc] = {key: text for key, text in items.items()
                                if key not in test and key not in dev}
    return splits


def build_bible_corpus(params: CorpusParams) -> tuple[Corpus, dict[str, dict[str, str]]]:
    """The scale corpus: Bible verses (verse-parallel dev/test), extra translations and the
    ``extra_train_sources`` in the training pool only, UDHR as the out-of-domain split."""
    languages = resolve_languages(params.languages)
    locales = [lang.locale for lang in languages]
    bible = params.bible
    source = BibleSource(bible.version, bible.sha256,
                         {loc: bible.translations[loc] for loc in locales},
                         {loc: bible.extra_translations[loc] for loc in locales
                          if loc in bible.extra_translations})
    extra_sources = {name: get_source(name, **getattr(params, name).model_dump())
                     for name in params.extra_train_sources}
    udhr_source = get_source("udhr", **params.udhr.model_dump())
    treebanks = treebank_sources(params)
    # Fetch everything (and fail on a bad hash or a missing package) before the heavy work.
    for each in (source, *extra_sources.values(), *treebanks.values(), udhr_source):
        each.fetch()
    try:
        raw = source.load(languages)
    except ValueError as error:
        raise CorpusError(str(error)) from error
    cleaned: dict[str, Items] = {}
    dropped: dict[str, dict[str, int]] = {}
    for loc in locales:
        cleaned[loc], empty = clean_verses(raw[loc], params.placeholders)
        dropped[loc] = {"empty_verse": empty}
        if not cleaned[loc]:
            code = bible.translations[loc]
            raise CorpusError(f"language {loc}: translation {code!r} has no verses left after cleaning")
    split = params.split
    splits = split_verses(cleaned, split.dev_items, split.test_items, split.seed)
    held_out = set(next(iter(splits["dev"].values()))) | set(next(iter(splits["test"].values())))
    for loc, per_code in source.extras.items():
        for code, verses in per_code.items():
            extra, empty = clean_verses(verses, params.placeholders)
            dropped[loc][f"empty_verse_{code}"] = empty
            dropped[loc][f"duplicate_{code}"] = add_to_pool(splits["train"][loc], extra, code, held_out)
    for name, extra_source in extra_sources.items():
        reference = LANGUAGES[params.reference_language]
        wanted = [*languages, *([] if reference in languages else [reference])]
        texts = extra_source.load(wanted)
        reference_clean = {k: clean_text(v, params.placeholders)
                           for k, v in texts.get(reference.locale, {}).items()}
        for loc in locales:
            kept = {}
            for key, value in texts.get(loc, {}).items():
                text = clean_text(value, params.placeholders)
                if text is not None and (loc == reference.locale or text != reference_clean.get(key)):
                    kept[key] = text
            dropped[loc][f"duplicate_{name}"] = add_to_pool(splits["train"][loc], kept, name)
    train_only, held_out = join_treebanks(treebanks, splits["train"], dropped)
    splits["train"], allocation = allocate(splits["train"], languages, params)
    udhr = align_articles(udhr_source.load(languages), params.placeholders)
    if udhr:
        splits["udhr"] = udhr
    corpus = Corpus(languages=languages, splits=splits, dropped=dropped, allocation=allocation)
    add_treebanks(corpus, treebanks, train_only, held_out, params)
    provenance = {"train": source.describe(), "udhr": udhr_source.describe(),
                  **{name: each.describe() for name, each in [*extra_sources.items(), *treebanks.items()]}}
    return corpus, provenance


def align_articles(udhr: dict[str, Items], placeholders: str) -> dict[str, Items]:
    """Cleaned UDHR articles, restricted to the articles every language has."""
    cleaned = {loc: {k: t for k, v in arts.items() if (t := clean_text(v, placeholders))}
               for loc, arts in udhr.items()}
    if not cleaned:
        return {}
    common = set.intersection(*(set(arts) for arts in cleaned.values()))
    return {loc: {k: arts[k] for k in sorted(common)} for loc, arts in cleaned.items()}


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
        if loc in corpus.allocation:
            entry["allocation"] = corpus.allocation[loc]
        languages[loc] = entry
    train_only = {lang.locale: {"code": lang.code, "name": lang.name, "script": lang.script,
                                "train_share": train_bytes[lang.locale] / total,
                                "train_items": len(corpus.splits["train"][lang.locale]),
                                "train_bytes": train_bytes[lang.locale],
                                "dropped": corpus.dropped.get(lang.locale, {}),
                                "allocation": corpus.allocation[lang.locale]}
                  for lang in corpus.train_only}
    treebanks = {loc: {split: {"sentences": len(part.sentences),
                               "words": sum(len(s.words) for s in part.sentences)}
                       for split, part in per_split.items()}
                 for loc, per_split in corpus.treebanks.items()}
    files = {f"{split}/{loc}.jsonl": sha256_text(jsonl_text(_rows(items)))
             for split, per_lang in corpus.splits.items() for loc, items in per_lang.items()}
    files.update({treebank_file(loc, split): sha256_text(part.conllu())
                  for loc, per_split in corpus.treebanks.items() for split, part in per_split.items()})
    return {"sources": provenance, "splits": sorted(corpus.splits), "languages": languages,
            "train_only_languages": train_only, "treebanks": treebanks, "files": files}


def treebank_file(locale: str, split: str) -> str:
    """A held-out treebank split's path inside the corpus folder."""
    return f"treebank/{locale}/{split}.conllu"


def _rows(items: Items) -> list[dict[str, str]]:
    return [{"id": key, "text": text} for key, text in items.items()]


def write_corpus(corpus: Corpus, provenance: dict[str, dict[str, str]], folder: Path) -> dict:
    """Write ``<split>/<locale>.jsonl`` files and ``manifest.json`` into ``folder``."""
    for split, per_lang in corpus.splits.items():
        for loc, items in per_lang.items():
            write_jsonl(folder / split / f"{loc}.jsonl", _rows(items))
    for loc, per_split in corpus.treebanks.items():
        for split, part in per_split.items():
            write_text(folder / treebank_file(loc, split), part.conllu())
    info = manifest(corpus, provenance)
    write_json(folder / "manifest.json", info)
    return info


def build_corpus(params: CorpusParams) -> tuple[Corpus, dict[str, dict[str, str]]]:
    """Fetch, clean, split and allocate the corpus as ``params`` describe it."""
    if params.train_source == "bible":
        return build_bible_corpus(params)
    languages = resolve_languages(params.languages)
    locales = [lang.locale for lang in languages]
    train_source = get_source(params.train_source, **params.kolibri.model_dump())
    udhr_source = get_source("udhr", **params.udhr.model_dump())
    reference = LANGUAGES.get(params.reference_language)
    if reference is None:
        raise CorpusError(f"corpus.reference_language: unknown locale {params.reference_language!r}")
    treebanks = treebank_sources(params)
    # Fetch everything (and fail on a bad hash or a missing package) before the heavy work.
    for each in (train_source, udhr_source, *treebanks.values()):
        each.fetch()
    raw = train_source.load([*languages, reference])
    udhr_raw = udhr_source.load(languages)
    cleaned, dropped = clean_all(raw, [*languages, reference], reference.locale, params.placeholders)
    reference_texts = cleaned[reference.locale]
    cleaned = {loc: cleaned[loc] for loc in locales}
    split = params.split
    splits = split_parallel(cleaned, reference_texts, split.dev_fraction, split.test_fraction,
                            split.seed)
    train_only, held_out = join_treebanks(treebanks, splits["train"], dropped)
    splits["train"], allocation = allocate(splits["train"], languages, params)
    udhr = align_articles(udhr_raw, params.placeholders)
    if udhr:
        splits["udhr"] = udhr
    corpus = Corpus(languages=languages, splits=splits, dropped=dropped, allocation=allocation)
    add_treebanks(corpus, treebanks, train_only, held_out, params)
    provenance = {"train": train_source.describe(), "udhr": udhr_source.describe(),
                  **{name: each.describe() for name, each in treebanks.items()}}
    return corpus, provenance
