"""Training allocation: cited shares (CC100-XL, mode published) in UTF-8 bytes, and the zipf mode."""

from __future__ import annotations

import pytest

from qfair.corpus import CorpusError
from qfair.corpus.build import (
    published_allocation,
    published_shares,
    subsample_bytes,
    training_counts,
    utf8_bytes,
)
from qfair.corpus.languages import resolve_languages
from qfair.params import TrainingShareParams
from qfair.registry import share_tables

CC100XL = share_tables()["xglm"].corpus_shares
# en, ru, fr are in the table; pl and sw_TZ are not (sw's row was cut off in the copy we have).
LOCALES = ["en", "fr_FR", "pl", "ru", "sw_TZ"]


def _pool(locale: str, n: int, width: int = 100) -> dict[str, str]:
    return {f"{locale}{i:05d}": f"{locale} {i} " + "x" * width for i in range(n)}


def _pools() -> dict[str, dict[str, str]]:
    # en is the top language; ru's pool is smaller than its share asks, so it is capped.
    return {"en": _pool("en", 2000), "fr_FR": _pool("fr_FR", 2000), "pl": _pool("pl", 500),
            "ru": _pool("ru", 100), "sw_TZ": _pool("sw_TZ", 500)}


def test_published_shares_and_missing_rule() -> None:
    shares = published_shares(resolve_languages(LOCALES), "xglm", "corpus_shares", "smallest_listed")
    assert shares["en"] == {"share": CC100XL["eng_Latn"], "share_source": "xglm.corpus_shares:eng_Latn"}
    smallest = min(CC100XL[code] for code in ("eng_Latn", "fra_Latn", "rus_Cyrl"))
    assert shares["pl"] == shares["sw_TZ"] == {"share": smallest, "share_source": "rule:smallest_listed"}
    with pytest.raises(CorpusError, match=r"no share for \['sw_TZ', 'pl'\]"):
        published_shares(resolve_languages(LOCALES), "xglm", "corpus_shares", "error")


def test_published_shares_map_regional_codes() -> None:
    shares = published_shares(resolve_languages(["pt_BR", "es_ES"]), "xglm", "corpus_shares", "error")
    assert shares["pt_BR"]["share"] == CC100XL["por_Latn"]


def test_published_allocation_bytes_proportional_top_uncapped() -> None:
    pools = _pools()
    train, info = published_allocation(pools, resolve_languages(LOCALES), "xglm", "corpus_shares",
                                       "smallest_listed", None, seed=5)
    assert info["en"]["top_language"] == "en"
    assert train["en"] == pools["en"] and not info["en"]["capped"]  # the top keeps its whole pool
    top_bytes = utf8_bytes(pools["en"])
    item = max(len(t.encode()) for t in pools["fr_FR"].values())
    for loc in ("fr_FR", "pl", "sw_TZ"):
        target = info[loc]["share"] / info["en"]["share"] * top_bytes
        assert target <= utf8_bytes(train[loc]) < target + item, loc  # within one item of the share
        assert not info[loc]["capped"]
        assert set(train[loc]) <= set(pools[loc])
    assert info["ru"]["capped"] and train["ru"] == pools["ru"]
    assert info["pl"]["share_source"] == "rule:smallest_listed"
    # not capped by the smallest language: en keeps 20x the whole pool of ru
    assert utf8_bytes(train["en"]) > 20 * utf8_bytes(pools["ru"])
    again, _ = published_allocation(pools, resolve_languages(LOCALES), "xglm", "corpus_shares",
                                    "smallest_listed", None, seed=5)
    assert again == train


def test_published_allocation_floor() -> None:
    pools = _pools()
    _, info = published_allocation(pools, resolve_languages(LOCALES), "xglm", "corpus_shares",
                                   "smallest_listed", 0.2, seed=5)
    assert info["pl"]["target_bytes"] == round(0.2 * utf8_bytes(pools["en"]))


def test_subsample_bytes_reaches_target() -> None:
    items = _pool("en", 300)
    chosen = subsample_bytes(items, 5000, seed=1)
    assert 5000 <= utf8_bytes(chosen) < 5000 + 120
    assert list(chosen) == [key for key in items if key in chosen]  # original order kept
    assert subsample_bytes(items, 0, seed=1) == {}


def test_zipf_still_works() -> None:
    counts = training_counts(["a", "b", "c"], {"a": 100, "b": 100, "c": 100}, "zipf", 1.0, 0.05, 7, {})
    assert sorted(counts.values()) == [33, 50, 100]


def test_published_params() -> None:
    share = TrainingShareParams.model_validate(
        {"mode": "published", "published": {"table": "xglm", "missing": "smallest_listed"}})
    assert share.published.column == "corpus_shares"
    with pytest.raises(ValueError, match=r"needs \['published'\]"):
        TrainingShareParams.model_validate({"mode": "published"})
    with pytest.raises(ValueError, match=r"not in qfair/registry/pretraining_shares\.yaml"):
        TrainingShareParams.model_validate(
            {"mode": "published", "published": {"table": "nope", "missing": "error"}})
    with pytest.raises(ValueError, match=r"needs \['zipf_exponent', 'permutation_seed'\]"):
        TrainingShareParams.model_validate({"mode": "zipf", "min_fraction": 0.1})
