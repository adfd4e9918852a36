"""The lean JWS signer of the token path: the protected header is encoded once per key, and the
signature comes straight from the loaded ``cryptography`` key object; and its counterpart, the
lean verifier of our own tokens (introspection, userinfo, the admin API).

The output is the same compact JWS joserfc would produce (RFC 7515 §7.1): for RS256 byte for byte
(PKCS#1 v1.5 is deterministic), for ES256 the same header and payload segments and a raw R||S
signature (RFC 7518 §3.4) that joserfc verifies. ``Verifier`` checks exactly what we sign: the
segments in the base64url alphabet only (no padding), the key's own algorithm (one per key, from
the allowlist), then the signature with the ``cryptography`` public key. Only we sign with these
keys, so a verified header is one we wrote (never ``crit``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc.jwk import ECKey, RSAKey

_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()
_ECDSA = ec.ECDSA(_SHA256)
_P256_BYTES = 32


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _rs256(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:
        return key.sign(data, _PKCS1, _SHA256)

    return sign


def _es256(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a P-256 key")

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, _ECDSA))
        return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")

    return sign


@dataclass(frozen=True)
class Signer:
    """Signs compact JWS with one key and one fixed protected header (``alg``, ``typ``, ``kid``)."""

    kid: str
    alg: str
    key: RSAKey | ECKey
    header: dict[str, str]
    _prefix: bytes = field(init=False, repr=False)
    _raw_sign: Callable[[bytes], bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.header.get("alg") != self.alg:
            raise ValueError("the header's alg differs from the key's")
        private = self.key.private_key
        if self.alg == "RS256" and isinstance(private, rsa.RSAPrivateKey):
            raw_sign = _rs256(private)
        elif self.alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey):
            raw_sign = _es256(private)
        else:
            raise ValueError(f"no private {self.alg} key to sign with")
        # Encoded exactly as joserfc encodes a protected header (ASCII JSON, no spaces).
        text = json.dumps(self.header, ensure_ascii=True, separators=(",", ":"))
        object.__setattr__(self, "_prefix", b64url(text.encode("ascii")) + b".")
        object.__setattr__(self, "_raw_sign", raw_sign)

    def sign(self, payload: str) -> str:
        """``payload`` is the claims' JSON text; returns header.payload.signature."""
        signing_input = self._prefix + b64url(payload.encode("utf-8"))
        return (signing_input + b"." + b64url(self._raw_sign(signing_input))).decode("ascii")


# A compact JWS of ours: three unpadded base64url segments (RFC 7515 §2, §7.1).
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def b64url_decode(segment: str) -> bytes:
    """Strict: the caller has checked the alphabet; a length of 1 mod 4 is no encoding."""
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def split_compact(token: str) -> tuple[str, str, str] | None:
    if len(token) > 16384 or _COMPACT.fullmatch(token) is None:
        return None
    header, payload, signature = token.split(".")
    return header, payload, signature


def _rs256_verify(key: rsa.RSAPublicKey) -> Callable[[bytes, bytes], None]:
    def verify(data: bytes, signature: bytes) -> None:
        key.verify(signature, data, _PKCS1, _SHA256)

    return verify


def _es256_verify(key: ec.EllipticCurvePublicKey) -> Callable[[bytes, bytes], None]:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a P-256 key")

    def verify(data: bytes, signature: bytes) -> None:
        if len(signature) != 2 * _P256_BYTES:
            raise InvalidSignature
        r, s = int.from_bytes(signature[:_P256_BYTES], "big"), int.from_bytes(signature[_P256_BYTES:], "big")
        key.verify(encode_dss_signature(r, s), data, _ECDSA)

    return verify


@dataclass(frozen=True)
class Verifier:
    """Verifies compact JWS signed with one published key (see the module's docstring)."""

    alg: str
    key: RSAKey | ECKey
    _raw_verify: Callable[[bytes, bytes], None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        public = self.key.public_key
        if self.alg == "RS256" and isinstance(public, rsa.RSAPublicKey):
            raw_verify = _rs256_verify(public)
        elif self.alg == "ES256" and isinstance(public, ec.EllipticCurvePublicKey):
            raw_verify = _es256_verify(public)
        else:
            raise ValueError(f"no public {self.alg} key to verify with")
        object.__setattr__(self, "_raw_verify", raw_verify)

    def claims(self, header: str, payload: str, signature: str) -> dict[str, Any]:
        """The payload's JSON object once the signature over ``header.payload`` holds; segments
        from ``split_compact``. Raises ValueError."""
        try:
            self._raw_verify(f"{header}.{payload}".encode("ascii"), b64url_decode(signature))
            claims = json.loads(b64url_decode(payload))
        except (InvalidSignature, UnicodeDecodeError, ValueError):  # binascii.Error is a ValueError
            raise ValueError("invalid token") from None
        if not isinstance(claims, dict):
            raise ValueError("invalid token")
        return claims
