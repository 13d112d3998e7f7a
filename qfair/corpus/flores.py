"""FLORES+ (openlanguagedata/flores_plus): the paper profile's parallel evaluation corpus.

FLORES+ holds the same 997 (dev) and 1,012 (devtest) sentences in 200+ languages. It is a gated
hub dataset, read through ``datasets.load_dataset`` one language config at a time; a local folder
of ``<split>/<code>.parquet`` files with the hub's columns can stand in for it (``data_dir``), which
is how the tests run without hub access. Its text is never committed.

The corpus written here has the layout of the embedded one (``<split>/<code>.jsonl`` + manifest)
with FLORES dev as ``dev`` and devtest as ``test``. Hub checkpoints need no training split, so
``train/`` holds one empty file per language: the stages' DVC dependencies on data/corpus/train
stay valid and no stage can train on it by mistake.
"""

from __future__ import annotations

from pathlib import Path

from qfair.corpus.build import Corpus, CorpusError, utf8_bytes
from qfair.corpus.clean import clean_text
from qfair.corpus.languages import Language, dominant_script
from qfair.corpus.sources import RawTexts, get_source
from qfair.errors import QfairError
from qfair.io import jsonl_text, sha256_text, write_json, write_jsonl

# Columns of openlanguagedata/flores_plus, in the dataset card's order; the loader needs four of them.
HUB_COLUMNS = ("id", "iso_639_3", "iso_15924", "glottocode", "text", "url", "domain", "topic", "has_image",
               "has_hyperlink", "last_updated")
REQUIRED_COLUMNS = ("id", "iso_639_3", "iso_15924", "text")
SPLITS = {"dev": "dev", "test": "devtest"}  # corpus split -> FLORES+ split
LICENCE = "CC BY-SA 4.0"


class FloresAccessError(QfairError, RuntimeError):
    """FLORES+ could not be read (no hub access, no token, or a malformed local copy)."""


def flores_language(code: str) -> Language:
    """A corpus Language for a FLORES+ code; unknown codes are errors naming them."""
    from qfair.registry import flores_languages, script_of

    table = flores_languages()
    if code not in table:
        raise CorpusError(f"corpus.languages: unknown FLORES+ code {code!r}")
    return Language(locale=code, code=code, name=table[code].name, script=script_of(code), udhr=None)


def item_id(number: int) -> str:
    """Zero-padded so the corpus' string order is the sentence order."""
    return f"{int(number):04d}"


class FloresSource:
    """FLORES+ from the hub at a pinned revision, or from ``data_dir`` (same schema, parquet)."""

    name = "flores"

    def __init__(self, dataset: str = "openlanguagedata/flores_plus", revision: str = "main",
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> None:
        self.dataset, self.revision = dataset, revision
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.cache_dir = None if cache_dir is None else str(cache_dir)

    def _rows(self, code: str, split: str) -> list[dict]:
        from datasets import load_dataset

        try:
            if self.data_dir is not None:
                path = self.data_dir / split / f"{code}.parquet"
                if not path.is_file():
                    raise FloresAccessError(f"corpus.flores.data_dir: {path} not found "
                                            f"(expected <data_dir>/<split>/<code>.parquet)")
                table = load_dataset("parquet", data_files=str(path), split="train", cache_dir=self.cache_dir)
            else:
                from qfair.models.hub import hub_token

                table = load_dataset(self.dataset, name=code, split=split, revision=self.revision,
                                     cache_dir=self.cache_dir, token=hub_token())
        except FloresAccessError:
            raise
        except Exception as error:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ...)
            where = self.data_dir if self.data_dir is not None else f"{self.dataset}@{self.revision}"
            raise FloresAccessError(
                f"FLORES+ {code} ({split}) could not be loaded from {where}: {type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}. FLORES+ needs hub access and an "
                "HF_TOKEN of an account that accepted the dataset's terms (it is gated), or "
                "corpus.flores.data_dir pointing at a local copy") from error
        missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
        if missing:
            raise FloresAccessError(f"FLORES+ {code} ({split}): columns {missing} missing; "
                                    f"found {table.column_names}")
        return table.select_columns(list(REQUIRED_COLUMNS)).to_list()

    def load_split(self, codes: list[str], split: str) -> RawTexts:
        """``{code: {item id: text}}`` of one FLORES+ split (``dev`` or ``devtest``)."""
        texts: RawTexts = {}
        for code in codes:
            iso, script = code.split("_", 1)
            rows = self._rows(code, split)
            wrong = {(row["iso_639_3"], row["iso_15924"]) for row in rows} - {(iso, script)}
            if wrong:
                raise FloresAccessError(f"FLORES+ {code} ({split}): rows of other languages {sorted(wrong)}")
            texts[code] = {item_id(row["id"]): row["text"] for row in rows}
        return texts

    def load(self, languages: list[Language]) -> RawTexts:
        """The devtest split (the Source interface; the corpus build reads both splits)."""
        return self.load_split([lang.locale for lang in languages], "devtest")

    def describe(self) -> dict[str, str]:
        if self.data_dir is not None:
            return {"source": "FLORES+ (local copy)", "path": str(self.data_dir), "licence": LICENCE}
        return {"source": f"Hugging Face dataset {self.dataset}", "revision": self.revision,
                "licence": LICENCE}


def build_flores_corpus(params, cache_dir: str | Path | None = None
                        ) -> tuple[Corpus, dict[str, dict[str, str]]]:
    """FLORES+ dev/devtest of ``params.languages`` (a FloresCorpusParams), cleaned and aligned by id."""
    languages = [flores_language(code) for code in params.languages]
    source = get_source("flores", dataset=params.flores.dataset, revision=params.flores.revision,
                        data_dir=params.flores.data_dir, cache_dir=cache_dir)
    splits: dict[str, dict[str, dict[str, str]]] = {}
    dropped: dict[str, dict[str, int]] = {lang.locale: {"empty": 0, "not_in_every_language": 0}
                                          for lang in languages}
    for split, flores_split in SPLITS.items():
        raw = source.load_split([lang.locale for lang in languages], flores_split)
        cleaned = {}
        for code, items in raw.items():
            kept = {key: text for key, value in items.items() if (text := clean_text(value, "keep"))}
            dropped[code]["empty"] += len(items) - len(kept)
            cleaned[code] = kept
        common = set.intersection(*(set(items) for items in cleaned.values()))
        if not common:
            raise CorpusError(f"FLORES+ {flores_split}: no sentence id is present in every language")
        for code, items in cleaned.items():
            dropped[code]["not_in_every_language"] += len(items) - len(common)
        splits[split] = {code: {key: items[key] for key in sorted(common)} for code, items in cleaned.items()}
    splits["train"] = {lang.locale: {} for lang in languages}
    return Corpus(languages=languages, splits=splits, dropped=dropped), {"eval": source.describe()}


def write_flores_corpus(corpus: Corpus, provenance: dict[str, dict[str, str]], folder: Path) -> dict:
    """Write ``<split>/<code>.jsonl`` and a manifest with each language's script, family and sizes.

    No training split, so no training share: ``resource_level`` is left to the analysis, which
    takes it from the model's published pretraining shares (qfair.registry.pretraining_shares).
    """
    from qfair.registry import flores_languages

    table = flores_languages()
    files, languages = {}, {}
    for split, per_lang in corpus.splits.items():
        for code, items in per_lang.items():
            rows = [{"id": key, "text": text} for key, text in items.items()]
            write_jsonl(folder / split / f"{code}.jsonl", rows)
            files[f"{split}/{code}.jsonl"] = sha256_text(jsonl_text(rows))
    for lang in corpus.languages:
        test = corpus.splits["test"][lang.locale]
        entry = {"code": lang.code, "name": lang.name, "script": lang.script,
                 "family": table[lang.code].family,
                 "detected_script": dominant_script(" ".join(test.values())),
                 "dropped": corpus.dropped.get(lang.locale, {})}
        for split, per_lang in corpus.splits.items():
            entry[f"{split}_items"] = len(per_lang[lang.locale])
            entry[f"{split}_bytes"] = utf8_bytes(per_lang[lang.locale])
        languages[lang.locale] = entry
    info = {"sources": provenance, "splits": sorted(corpus.splits), "languages": languages, "files": files}
    write_json(folder / "manifest.json", info)
    return info
