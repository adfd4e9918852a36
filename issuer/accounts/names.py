"""Usernames and emails, normalised in one place so registration, login, the CLI and storage
agree: a username's key is NFKC + casefold (Unicode's identifier caseless match, UTS #39), so
``Kass`` written with a Kelvin sign (U+212A) and ``kass`` are one account."""

from __future__ import annotations

import unicodedata

# Control characters, and the bidi embeddings, overrides and isolates that make a name
# display as something else (CVE-2021-42574 "Trojan Source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def has_unsafe_characters(value: str) -> bool:
    return any(c in _BIDI or unicodedata.category(c) in ("Cc", "Cf") for c in value)


def display_username(value: str) -> str:
    """The form we store and show: NFKC (compatibility characters folded to their plain form)."""
    return unicodedata.normalize("NFKC", value)


def username_key(value: str) -> str:
    """The form we compare: NFKC, casefolded, NFKC again (casefolding can denormalise). For ASCII
    this is ``str.lower()``, so keys stored before this rule are unchanged."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def email_key(value: str) -> str:
    return value.casefold()
