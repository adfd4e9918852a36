"""New signing keys: RSA-2048 for RS256, P-256 for ES256; ``kid`` is the RFC 7638 thumbprint."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, RSAKey

SUPPORTED_ALGS = ("RS256", "ES256")


def generate_key(alg: str) -> tuple[str, dict[str, str], bytes]:
    """Return (kid, public JWK, private key as PKCS#8 DER). A key whose kid would begin with ``-``
    (one in 64) is drawn again: operators type kids on command lines (``issuer keys revoke KID``),
    where such a kid reads as an option."""
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    while True:
        key = RSAKey.generate_key(2048, private=True) if alg == "RS256" else ECKey.generate_key("P-256", private=True)
        kid = key.thumbprint()
        if not kid.startswith("-"):
            break
    members = {name: value for name, value in key.as_dict(private=False).items() if isinstance(value, str)}
    public = {**members, "kid": kid, "use": "sig", "alg": alg}
    der = key.private_key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return kid, public, der


def load_private_key(alg: str, der: bytes) -> RSAKey | ECKey:
    key_cls = RSAKey if alg == "RS256" else ECKey
    return key_cls.import_key(der)


def public_jwk_json(public: dict[str, str]) -> str:
    return json.dumps(public, separators=(",", ":"), sort_keys=True)
