"""The lean JWS signer of the token path: the protected header is encoded once per key, and the
signature comes straight from the loaded ``cryptography`` key object.

The output is the same compact JWS joserfc would produce (RFC 7515 §7.1): for RS256 byte for byte
(PKCS#1 v1.5 is deterministic), for ES256 the same header and payload segments and a raw R||S
signature (RFC 7518 §3.4) that joserfc verifies. joserfc still does all verification.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
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

    def sign(self, payload: bytes) -> str:
        """``payload`` is the claims' JSON (UTF-8); returns header.payload.signature."""
        signing_input = self._prefix + b64url(payload)
        return (signing_input + b"." + b64url(self._raw_sign(signing_input))).decode("ascii")
