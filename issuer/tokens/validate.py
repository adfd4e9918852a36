"""Checking our own access tokens (introspection, userinfo, the admin API): a published,
unrevoked signing key, our issuer, not expired, and a ``jti`` that was not revoked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from issuer.cache.revocations import RevocationCache
from issuer.storage.base import RevocationStore
from keys.keyring import Keyring

log = logging.getLogger("issuer.tokens")


class InvalidAccessToken(Exception):
    pass


class Revocations:
    """Revoked access-token ids, durable in the database and cached (Redis or in-process)."""

    def __init__(self, store: RevocationStore, cache: RevocationCache, clock: Callable[[], float]) -> None:
        self._store = store
        self.cache = cache
        self._clock = clock

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._store.revoke_jti(jti, expires_at, self._clock())
        await self.cache.add(jti, expires_at)

    async def is_revoked(self, jti: str) -> bool:
        cached = await self.cache.contains(jti)
        return cached if cached is not None else await self._store.is_revoked(jti)


class AccessTokenValidator:
    def __init__(self, keyring: Keyring, issuer: str, revocations: Revocations, clock: Callable[[], float]) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._revocations = revocations
        self._clock = clock

    def signed_claims(self, token: str) -> dict[str, Any]:
        """Signature and issuer only (revocation accepts an expired token)."""
        try:
            claims, _ = self._keyring.verify(token)
        except ValueError:
            raise InvalidAccessToken("signature") from None
        if claims.get("iss") != self._issuer or not isinstance(claims.get("jti"), str):
            raise InvalidAccessToken("issuer")
        return claims

    async def validate(self, token: str) -> dict[str, Any]:
        claims = self.signed_claims(token)
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock():
            raise InvalidAccessToken("expired")
        if await self._revocations.is_revoked(claims["jti"]):
            raise InvalidAccessToken("revoked")
        return claims
