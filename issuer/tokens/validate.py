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
    """Revoked access-token ids, durable in the database and cached (Redis or in-process).

    A revocation whose cache write failed (Redis partitioned from the revoking instance only)
    would be missed by the other instances until their Redis cache is rebuilt. So every
    instance also polls the database for ids revoked since its last poll (``poll``, run every
    ISSUER_KEYRING_REFRESH_INTERVAL) and answers from them first: that interval bounds the miss.
    """

    def __init__(
        self, store: RevocationStore, cache: RevocationCache, clock: Callable[[], float], overlap: float = 60.0
    ) -> None:
        self._store = store
        self.cache = cache
        self._clock = clock
        # Polls reach back this far before the previous one: instances' clocks differ, and a
        # revocation may commit a little after the time it records.
        self._overlap = overlap
        self._recent: dict[str, float] = {}
        self._polled_at: float | None = None

    async def revoke(self, jti: str, expires_at: float) -> None:
        await self._store.revoke_jti(jti, expires_at, self._clock())
        self._recent[jti] = expires_at
        await self.cache.add(jti, expires_at)

    async def is_revoked(self, jti: str) -> bool:
        if jti in self._recent:
            return True
        cached = await self.cache.contains(jti)
        return cached if cached is not None else await self._store.is_revoked(jti)

    async def poll(self) -> None:
        now = self._clock()
        since = (self._polled_at if self._polled_at is not None else now) - self._overlap
        found = await self._store.revoked_after(since, now)
        self._recent = {jti: exp for jti, exp in self._recent.items() if exp > now}
        self._recent.update(found)
        self._polled_at = now


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
