"""AES-256-GCM envelope encryption of secrets at rest under a list of key-encryption keys.

The first key encrypts, every key decrypts, so key-encryption keys rotate without downtime
(``issuer keys rewrap``). Each blob names its key by an 8-byte fingerprint and is bound to
its purpose by associated data, so a ciphertext cannot be moved to another row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_VERSION = b"\x01"
_FP_LEN = 8
_NONCE_LEN = 12


class EnvelopeError(Exception):
    pass


def new_kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def parse_keks(value: str) -> list[bytes]:
    keks: list[bytes] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if not _B64URL.match(item):
            raise EnvelopeError("a key-encryption key is not valid base64url")
        try:
            raw = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except (binascii.Error, ValueError):
            raise EnvelopeError("a key-encryption key is not valid base64url") from None
        if len(raw) != 32:
            raise EnvelopeError(f"a key-encryption key must be 32 bytes, got {len(raw)}")
        keks.append(raw)
    return keks


def _fingerprint(kek: bytes) -> bytes:
    return hashlib.sha256(b"issuer-kek-id" + kek).digest()[:_FP_LEN]


class Envelope:
    def __init__(self, keks: Sequence[bytes]) -> None:
        if not keks:
            raise EnvelopeError("at least one key-encryption key is required")
        self._by_fp = {_fingerprint(k): AESGCM(k) for k in keks}
        self._primary_fp = _fingerprint(keks[0])

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_LEN)
        sealed = self._by_fp[self._primary_fp].encrypt(nonce, plaintext, aad)
        return _VERSION + self._primary_fp + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + _FP_LEN + _NONCE_LEN + 16 or blob[:1] != _VERSION:
            raise EnvelopeError("not an envelope of a known version")
        fp = blob[1 : 1 + _FP_LEN]
        aead = self._by_fp.get(fp)
        if aead is None:
            raise EnvelopeError("encrypted under a key-encryption key that is not configured")
        nonce = blob[1 + _FP_LEN : 1 + _FP_LEN + _NONCE_LEN]
        try:
            return aead.decrypt(nonce, blob[1 + _FP_LEN + _NONCE_LEN :], aad)
        except InvalidTag:
            raise EnvelopeError("ciphertext failed authentication") from None

    def is_current(self, blob: bytes) -> bool:
        return blob[1 : 1 + _FP_LEN] == self._primary_fp

    def rewrap(self, blob: bytes, aad: bytes) -> bytes:
        return blob if self.is_current(blob) else self.encrypt(self.decrypt(blob, aad), aad)
