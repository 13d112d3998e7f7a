"""Each language's resource level: ln of its share of the model's training data.

The embedded profile trains its own model, so the corpus manifest holds each language's
training share and its log (``train_share``, ``resource_level``). A hub checkpoint (the paper
profile) was trained elsewhere: its shares are the published ones in
``qfair/registry/pretraining_shares.yaml``, converted to fractions. A language the source gives
no number for has no resource level. It is *left out* of resource-based statistics (disparity
terciles, resource correlations, LA-ACIQ's resource weighting). It is never filled in with a guess;
its CSV cell is left empty (``qfair.io.write_csv(..., may_be_empty=["resource_level"])``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from qfair.errors import QfairError


class ResourceLevelError(QfairError, ValueError):
    """A computation needs a resource level (or share) that a language does not have."""


@dataclass(frozen=True)
class ResourceLevels:
    """Shares and levels of the languages that have one, and where they come from."""

    source: str
    languages: list[str]
    share: dict[str, float] = field(default_factory=dict)  # fraction of training data
    level: dict[str, float] = field(default_factory=dict)  # ln(share)

    @property
    def missing(self) -> list[str]:
        """Languages without a resource level, in the order given."""
        return [lang for lang in self.languages if lang not in self.level]

    @property
    def complete(self) -> bool:
        return not self.missing

    def known(self, languages: Iterable[str]) -> list[str]:
        """The languages of ``languages`` that have a resource level, order kept."""
        return [lang for lang in languages if lang in self.level]

    def level_or_nan(self, lang: str) -> float:
        return self.level.get(lang, math.nan)

    def require_shares(self, languages: Iterable[str], what: str) -> dict[str, float]:
        """The shares of ``languages``; a ResourceLevelError naming ``what`` if one has none."""
        languages = list(languages)
        lacking = [lang for lang in languages if lang not in self.share]
        if lacking:
            raise ResourceLevelError(f"{what} needs every language's training share, but {self.source} "
                                     f"gives none for {lacking}")
        return {lang: self.share[lang] for lang in languages}

    def describe(self) -> dict[str, object]:
        """A record for a stage's metrics: the source and which languages were left out."""
        return {"source": self.source, "languages_with_level": len(self.level),
                "languages_without_level": self.missing}


def from_manifest(manifest: Mapping[str, Mapping]) -> ResourceLevels:
    """The embedded corpus's training shares and levels, exactly as the manifest stores them."""
    return ResourceLevels(source="training share of the corpus manifest", languages=list(manifest),
                          share={lang: entry["train_share"] for lang, entry in manifest.items()},
                          level={lang: entry["resource_level"] for lang, entry in manifest.items()})


def from_published(model_name: str, languages: Iterable[str]) -> ResourceLevels:
    """Published pretraining shares of a registry model (percentages converted to fractions)."""
    from qfair.registry import share_tables

    languages = list(languages)
    for key, table in share_tables().items():
        if model_name in table.models:
            scale = 0.01 if table.unit.lower().startswith("percent") else 1.0
            share = {lang: table.shares[lang] * scale for lang in languages if lang in table.shares}
            return ResourceLevels(source=f"published pretraining shares of {model_name} ({key}: "
                                         f"{table.citation}, {table.unit})", languages=languages,
                                  share=share, level={lang: math.log(s) for lang, s in share.items()})
    return ResourceLevels(source=f"published pretraining shares of {model_name} (none in "
                                 "qfair/registry/pretraining_shares.yaml)", languages=languages)


def resource_levels(params, manifest: Mapping[str, Mapping]) -> ResourceLevels:
    """The resource levels of a run: from the manifest when the corpus has training shares (the
    model is trained on it), else the hub model's published shares."""
    if getattr(params.model, "source", "train") == "hub":
        return from_published(params.model.name, manifest)
    return from_manifest(manifest)
