"""The public JWKS document (RFC 7517 §5) and its cache validator."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from keys.lifecycle import KeyState, SigningKey

_PUBLIC_MEMBERS = frozenset({"kty", "kid", "use", "alg", "n", "e", "crv", "x", "y"})
_ORDER = {KeyState.ACTIVE: 0, KeyState.PENDING: 1, KeyState.RETIRED: 2}


@dataclass(frozen=True)
class JwksDocument:
    body: bytes
    etag: str
    kids: frozenset[str]


def build_jwks(keys: list[SigningKey]) -> JwksDocument:
    published = sorted((k for k in keys if k.published), key=lambda k: (_ORDER[k.state], -k.created_at))
    doc = {"keys": [{m: v for m, v in k.public_jwk.items() if m in _PUBLIC_MEMBERS} for k in published]}
    body = json.dumps(doc, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return JwksDocument(body=body, etag=etag, kids=frozenset(k.kid for k in published))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match == etag:  # what a cache sends back: no list to split
        return True
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates
