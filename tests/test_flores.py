"""FLORES+ as a corpus source, tested on a local parquet fixture with the hub dataset's columns.

The fixture is written by the tests themselves (a few invented sentences per language); no
FLORES+ text is committed or downloaded.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets.config
import huggingface_hub.constants
import pandas as pd
import pytest
import yaml

from qfair.corpus.build import CorpusError
from qfair.corpus.flores import (
    HUB_COLUMNS,
    FloresAccessError,
    FloresSource,
    build_flores_corpus,
    write_flores_corpus,
)
from qfair.corpus.sources import SOURCES, get_source
from qfair.corpus.store import read_manifest, read_split
from qfair.models.hub import HubError, preflight
from qfair.params import ParamsError, parse_params
from qfair.registry import flores_languages, script_of

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "profiles" / "paper.yaml"
CODES = ["eng_Latn", "yor_Latn", "cmn_Hans", "hin_Deva"]
# Invented sentences (not FLORES text), one template per language, numbered per item.
TEMPLATES = {"eng_Latn": "The river {} is long.", "yor_Latn": "Odò {} gùn.", "cmn_Hans": "第{}条河很长。",
             "hin_Deva": "नदी {} लंबी है।"}


def _rows(code: str, ids: list[int], split: str) -> pd.DataFrame:
    iso, script = code.split("_")
    return pd.DataFrame({
        "id": pd.array(ids, dtype="int32"), "iso_639_3": iso, "iso_15924": script, "glottocode": "xxxx1234",
        # dev sentence i carries the number i, devtest sentence i the number 100 + i
        "text": [TEMPLATES[code].format(i + (100 if split == "devtest" else 0)) for i in ids],
        "url": "https://example.org",
        "domain": "wikinews", "topic": "nature", "has_image": False, "has_hyperlink": False,
        "last_updated": "2.1"})


def write_fixture(folder: Path, n_dev: int = 5, n_devtest: int = 6, drop: dict | None = None) -> Path:
    """``<folder>/<split>/<code>.parquet`` with the hub's columns; ``drop`` removes ids per code."""
    drop = drop or {}
    for split, count in (("dev", n_dev), ("devtest", n_devtest)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for code in CODES:
            ids = [i for i in range(count) if i not in drop.get((code, split), ())]
            _rows(code, ids, split).to_parquet(folder / split / f"{code}.parquet", index=False)
    return folder


@pytest.fixture
def paper() -> dict:
    return yaml.safe_load(PAPER.read_text(encoding="utf-8"))


def _params(paper: dict, data_dir: Path | None, codes: list[str] = CODES):
    data = copy.deepcopy(paper)
    data["corpus"]["languages"] = codes
    data["corpus"]["flores"]["data_dir"] = None if data_dir is None else str(data_dir)
    return parse_params(data)


def test_fixture_has_the_hub_schema(tmp_path: Path) -> None:
    write_fixture(tmp_path)
    assert tuple(pd.read_parquet(tmp_path / "dev" / "eng_Latn.parquet").columns) == HUB_COLUMNS


def test_flores_is_a_registered_source(tmp_path: Path) -> None:
    assert "flores" in SOURCES
    source = get_source("flores", data_dir=write_fixture(tmp_path / "f"), cache_dir=tmp_path / "cache")
    assert isinstance(source, FloresSource)
    texts = source.load_split(["yor_Latn"], "devtest")
    assert texts["yor_Latn"]["0003"] == "Odò 103 gùn."


def test_corpus_is_parallel_and_maps_dev_and_devtest(tmp_path: Path, paper: dict) -> None:
    fixture = write_fixture(tmp_path / "f", drop={("hin_Deva", "devtest"): {2}})
    corpus, provenance = build_flores_corpus(_params(paper, fixture).corpus, cache_dir=tmp_path / "cache")
    assert [lang.locale for lang in corpus.languages] == CODES
    assert provenance["eval"]["source"] == "FLORES+ (local copy)"
    # devtest id 2 is missing in Hindi, so it is dropped in every language (parallel set).
    for code in CODES:
        assert list(corpus.splits["test"][code]) == ["0000", "0001", "0003", "0004", "0005"]
        assert list(corpus.splits["dev"][code]) == [f"{i:04d}" for i in range(5)]
        assert corpus.splits["train"][code] == {}
    assert corpus.splits["dev"]["cmn_Hans"]["0001"] == "第1条河很长。"
    assert corpus.dropped["eng_Latn"]["not_in_every_language"] == 1
    assert corpus.dropped["hin_Deva"]["not_in_every_language"] == 0

    info = write_flores_corpus(corpus, provenance, tmp_path / "corpus")
    assert read_split(tmp_path / "corpus", "test")["yor_Latn"]["0005"] == "Odò 105 gùn."
    assert read_split(tmp_path / "corpus", "train") == {code: {} for code in CODES}
    manifest = read_manifest(tmp_path / "corpus")
    assert manifest == json.loads(json.dumps(info))
    hindi = manifest["languages"]["hin_Deva"]
    assert (hindi["script"], hindi["family"], hindi["detected_script"]) == ("Deva", "Indo-European", "Deva")
    assert manifest["languages"]["cmn_Hans"]["detected_script"] == "Hani"
    assert hindi["test_items"] == 5 and hindi["train_items"] == 0
    assert set(manifest["files"]) == {f"{split}/{code}.jsonl" for split in ("train", "dev", "test")
                                      for code in CODES}


def test_unknown_flores_code_is_a_params_error(paper: dict) -> None:
    data = copy.deepcopy(paper)
    data["corpus"]["languages"] = ["eng_Latn", "xxx_Latn", "yor_Latn"]
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    assert "corpus.languages" in str(info.value) and "xxx_Latn" in str(info.value)


def test_udhr_split_needs_the_kolibri_corpus(paper: dict) -> None:
    data = copy.deepcopy(paper)
    data["eval"]["splits"] = ["dev", "test", "udhr"]
    with pytest.raises(ParamsError, match="udhr"):
        parse_params(data)


def test_wrong_language_rows_are_refused(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path / "f")
    _rows("yor_Latn", [0, 1], "dev").to_parquet(fixture / "dev" / "eng_Latn.parquet", index=False)
    with pytest.raises(FloresAccessError, match="other languages"):
        FloresSource(data_dir=fixture, cache_dir=tmp_path / "cache").load_split(["eng_Latn"], "dev")


def test_missing_columns_and_files_are_named(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path / "f")
    pd.DataFrame({"id": [0], "sentence": ["x"]}).to_parquet(fixture / "dev" / "eng_Latn.parquet")
    source = FloresSource(data_dir=fixture, cache_dir=tmp_path / "cache")
    with pytest.raises(FloresAccessError, match="iso_639_3"):
        source.load_split(["eng_Latn"], "dev")
    with pytest.raises(FloresAccessError, match=r"kor_Hang\.parquet"):
        source.load_split(["kor_Hang"], "dev")


def test_no_common_sentence_is_an_error(tmp_path: Path, paper: dict) -> None:
    fixture = write_fixture(tmp_path / "f", drop={("eng_Latn", "dev"): set(range(5))})
    with pytest.raises((CorpusError, FloresAccessError)):
        build_flores_corpus(_params(paper, fixture).corpus, cache_dir=tmp_path / "cache")


def test_offline_hub_failure_says_what_flores_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    source = FloresSource(revision="main", cache_dir=tmp_path / "empty-cache")
    with pytest.raises(FloresAccessError) as info:
        source.load_split(["eng_Latn"], "devtest")
    message = str(info.value)
    assert "openlanguagedata/flores_plus" in message and "HF_TOKEN" in message and "hub access" in message


def test_preflight_needs_a_token_or_a_local_copy(tmp_path: Path, paper: dict) -> None:
    hub_params = _params(paper, None)
    with pytest.raises(HubError, match=r"corpus\.flores"):
        preflight(hub_params, device=False, model=False, env={})
    preflight(hub_params, device=False, model=False, env={"HF_TOKEN": "hf_x"})
    preflight(_params(paper, tmp_path), device=False, model=False, env={})


def test_registry_codes_are_consistent() -> None:
    table = flores_languages()
    assert len(table) >= 40
    assert all(script_of(code) == code.split("_")[1] and entry.family for code, entry in table.items())


def test_prepare_corpus_stage_builds_flores(tmp_path: Path, paper: dict) -> None:
    """The stage itself (a subprocess in a scratch folder) on the paper profile with a local copy."""
    fixture = write_fixture(tmp_path / "f")
    data = copy.deepcopy(paper)
    data["corpus"]["languages"] = CODES
    data["corpus"]["flores"]["data_dir"] = str(fixture)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run([sys.executable, str(REPO / "stages" / "prepare_corpus.py")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(read_split(tmp_path / "data/corpus", "test")) == sorted(CODES)
    assert read_manifest(tmp_path / "data/corpus")["languages"]["eng_Latn"]["test_items"] == 6
