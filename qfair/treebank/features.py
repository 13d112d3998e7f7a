"""The Turkish Web Treebank's feature names mapped to Universal Dependencies features (Track D).

The treebank (PyPI ``turkish-treebanks`` 1.0.0) writes features in its own scheme
(``PersonNumber=A3sg``, ``Possessive=P3sg``, ``TenseAspectMood=Nar``, ...). D-001's probes read UD
features, so every name=value the treebank uses is either mapped here or listed in
:data:`TWT_UNMAPPED` (no UD inflectional counterpart); anything else stops with its name.

Choices (stated, since UD's Turkish treebanks differ in detail):
- ``Case=Bare`` (the unmarked form) and ``Case=Nom`` both become ``Case=Nom``.
- A word with nominal (``A3sg``) and verbal (``V1sg``) agreement is a nominal predicate; its
  ``Person``/``Number`` are the verbal ones (agreement with the subject), the nominal ones are dropped.
- ``Possessive=Pnon`` (no possessor) maps to nothing, as UD leaves it unmarked.
"""

from __future__ import annotations

from qfair.errors import QfairError

_NUMBER = {"sg": "Sing", "pl": "Plur"}

TWT_TO_UD: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    # nominal (A) and verbal (V) agreement map alike; twt_to_ud lets the verbal win
    **{("PersonNumber", f"{kind}{p}{n}"): (("Number", _NUMBER[n]), ("Person", p))
       for kind in "AV" for p in "123" for n in _NUMBER},
    **{("Possessive", f"P{p}{n}"): (("Number[psor]", _NUMBER[n]), ("Person[psor]", p))
       for p in "123" for n in _NUMBER},
    ("Possessive", "Pnon"): (),
    **{("Case", case): (("Case", case),) for case in ("Abl", "Acc", "Dat", "Gen", "Ins", "Loc", "Nom")},
    ("Case", "Bare"): (("Case", "Nom"),),
    **{("Polarity", value): (("Polarity", value),) for value in ("Pos", "Neg")},
    ("TenseAspectMood", "Past"): (("Tense", "Past"),),
    ("TenseAspectMood", "Nar"): (("Evident", "Nfh"), ("Tense", "Past")),
    ("TenseAspectMood", "Fut"): (("Tense", "Fut"),),
    ("TenseAspectMood", "Aor"): (("Aspect", "Hab"), ("Tense", "Pres")),
    ("TenseAspectMood", "Prog1"): (("Aspect", "Prog"), ("Tense", "Pres")),
    ("TenseAspectMood", "Prog2"): (("Aspect", "Prog"), ("Tense", "Pres")),
    ("TenseAspectMood", "Imp"): (("Mood", "Imp"),),
    ("TenseAspectMood", "Opt"): (("Mood", "Opt"),),
    ("TenseAspectMood", "Desr"): (("Mood", "Des"),),
    ("TenseAspectMood", "Nec"): (("Mood", "Nec"),),
    ("Copula", "CndCop"): (("Mood", "Cnd"),),
    ("Copula", "PastCop"): (("Tense", "Past"),),
    ("Copula", "EvCop"): (("Evident", "Nfh"),),
    ("Copula", "GenCop"): (("Mood", "Gen"),),
    ("Copula", "PresCop"): (),
    ("Derivation", "Pass"): (("Voice", "Pass"),),
    ("Derivation", "Cau"): (("Voice", "Cau"),),
    ("Derivation", "Rfx"): (("Voice", "Rfl"),),
    ("Derivation", "Rcp"): (("Voice", "Rcp"),),
    ("NumberType", "Ord"): (("NumType", "Ord"),),
    ("NumberType", "Dist"): (("NumType", "Dist"),),
}

# Names with no UD inflectional feature: lexical or derivational information the probes do not read.
TWT_UNMAPPED = frozenset({"Proper", "Apostrophe", "Temporal", "Contrast", "ConjunctionType",
                          "ComplementType", "DeterminerType", "Derivation"})


class FeatureMappingError(QfairError):
    """A treebank feature the mapping does not know; the message names it."""


def twt_to_ud(feats: tuple[tuple[str, str], ...], where: str = "") -> dict[str, str]:
    """UD features of one word from its Turkish Web Treebank features (in file order)."""
    nominal: dict[str, str] = {}
    verbal: dict[str, str] = {}
    other: dict[str, str] = {}
    for name, value in feats:
        mapped = TWT_TO_UD.get((name, value))
        if mapped is None:
            if name in TWT_UNMAPPED:
                continue
            raise FeatureMappingError(f"{where}: Turkish treebank feature {name}={value} has no UD mapping "
                                      "(qfair.treebank.features.TWT_TO_UD)")
        target = (verbal if value.startswith("V") else nominal) if name == "PersonNumber" else other
        target.update(mapped)
    return {**other, **nominal, **verbal}  # a predicate's verbal agreement wins (module docstring)
