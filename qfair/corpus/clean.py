"""Text cleaning shared by every corpus source."""

from __future__ import annotations

import re
import unicodedata

# Bidirectional control marks carry no content and differ between translators.
BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"))
PLACEHOLDER_MARKER = "{x}"
_CROWDIN_PSEUDO = re.compile(r"crwdns\d+:\d+")
_WHITESPACE = re.compile(r"\s+")


def _top_level_braces(text: str) -> list[tuple[int, int]]:
    """Spans of balanced top-level ``{...}`` groups (ICU arguments, possibly nested)."""
    spans, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append((start, index + 1))
    return spans


def replace_placeholders(text: str, marker: str = PLACEHOLDER_MARKER) -> str:
    """Replace every top-level ICU argument (``{n}``, ``{count, plural, ...}``) by one marker.

    One consistent treatment for all languages: plural/select branches hold translated text
    whose shape differs by language, so the whole argument becomes the same marker everywhere.
    """
    out, last = [], 0
    for start, end in _top_level_braces(text):
        out.append(text[last:start])
        out.append(marker)
        last = end
    out.append(text[last:])
    return "".join(out)


def has_placeholder(text: str) -> bool:
    return bool(_top_level_braces(text))


def clean_text(text: str, placeholders: str = "token") -> str | None:
    """NFC, no bidi controls, single spaces; ICU placeholders per ``placeholders``.

    Returns None when the string should be dropped (empty, pseudo-translation, or a placeholder
    string under ``drop_item``).
    """
    text = unicodedata.normalize("NFC", text.translate(BIDI_CONTROLS))  # marks can split sequences
    text = _WHITESPACE.sub(" ", text).strip()
    if not text or _CROWDIN_PSEUDO.search(text):
        return None
    if placeholders == "token":
        text = replace_placeholders(text)
    elif placeholders == "drop_item" and has_placeholder(text):
        return None
    elif placeholders not in {"keep", "drop_item"}:
        raise ValueError(f"corpus.placeholders: unknown treatment {placeholders!r}")
    if not text.replace(PLACEHOLDER_MARKER, "").strip():
        return None  # nothing but placeholders: no language content
    return text
