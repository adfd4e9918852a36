"""Browser-bound state between pages: the CSRF token (signed double-submit) and the sealed
in-flight request (AES-GCM under a server secret, bound to the browser's CSRF cookie).

The browser holds a random CSRF cookie (``HttpOnly``, ``SameSite=Lax``). Every form carries
``HMAC(key, cookie)``; a POST is accepted only when the two agree (constant-time compare), so a
page of another site, which can neither read our cookie nor compute the HMAC, cannot forge one.
The in-flight authorization (or logout) request travels as a *ticket*: its parameters sealed with
AES-GCM, the CSRF cookie as associated data and an expiry inside, so a ticket is useless in
another browser, cannot be altered, and dies after ``TICKET_TTL`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TICKET_TTL = 900
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"issuer-pages:" + label, hashlib.sha256).digest()


def new_browser_token() -> str:
    return secrets.token_urlsafe(32)


class Seal:
    def __init__(self, key: bytes, clock: Callable[[], float], ttl: int = TICKET_TTL) -> None:
        self._aead = AESGCM(_derive(key, b"ticket"))
        self._mac_key = _derive(key, b"csrf")
        self._clock = clock
        self._ttl = ttl

    def csrf_token(self, browser: str) -> str:
        return _b64(hmac.new(self._mac_key, browser.encode(), hashlib.sha256).digest())

    def csrf_ok(self, browser: str | None, given: str | None) -> bool:
        if not browser or not given or len(given) > 100:
            return False
        return hmac.compare_digest(self.csrf_token(browser).encode(), given.encode())

    def seal(self, payload: dict[str, Any], browser: str) -> str:
        body = json.dumps({"exp": int(self._clock()) + self._ttl, "p": payload}, separators=(",", ":")).encode()
        nonce = secrets.token_bytes(_NONCE)
        return _b64(nonce + self._aead.encrypt(nonce, body, b"ticket:" + browser.encode()))

    def open(self, ticket: str | None, browser: str | None) -> dict[str, Any] | None:
        """The payload, or None if the ticket is missing, altered, from another browser or expired."""
        if not ticket or not browser or len(ticket) > 8192:
            return None
        raw = _unb64(ticket)
        if raw is None or len(raw) <= _NONCE:
            return None
        try:
            body = json.loads(self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], b"ticket:" + browser.encode()))
        except (InvalidTag, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("p"), dict) or body.get("exp", 0) < self._clock():
            return None
        payload: dict[str, Any] = body["p"]
        return payload
