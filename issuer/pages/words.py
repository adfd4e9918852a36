"""What the consent page says each scope allows, in words."""

from __future__ import annotations

_WORDS = {
    "openid": "Confirm who you are (your user ID)",
    "profile": "See your username",
    "email": "See your email address",
}


def scope_words(scope: tuple[str, ...], offline: bool) -> list[str]:
    words = [_WORDS.get(s, f"Use the “{s}” permission on your behalf") for s in scope]
    if offline:
        words.append("Keep access while you are away (until you sign out)")
    return words
