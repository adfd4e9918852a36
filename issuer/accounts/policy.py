"""The password rules of NIST SP 800-63B §5.1.1.2: at least 8 characters (and at most 128, so a
hash is never asked to digest megabytes), no composition rules, and none of: the username itself,
only whitespace, or a password from a list of common and breached ones (11,611 entries bundled
with the package; nothing is fetched at run time)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from issuer.accounts.names import username_key

PASSWORD_MIN, PASSWORD_MAX = 8, 128


@cache
def common_passwords() -> frozenset[str]:
    text = (resources.files("issuer.accounts") / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_password(value: object, username: str | None = None) -> str | None:
    """None if acceptable, else the message for the field."""
    if not isinstance(value, str) or not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        return f"{PASSWORD_MIN} to {PASSWORD_MAX} characters"
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isprintable() and not _encodable(value):
        return "must be valid Unicode text"
    if not value.strip():
        return "must not be only whitespace"
    if len(set(value)) < 3:
        return "is too repetitive (use at least three different characters)"
    if username and username_key(value) == username_key(username):
        return "must not be the username"
    if value.casefold() in common_passwords():
        return "is too common (it appears in lists of breached passwords); choose another"
    return None


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, e.g. from undecodable bytes on standard input
        return False
    return True
