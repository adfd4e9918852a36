"""Checking our own access tokens (introspection, userinfo, the admin API): a published,
unrevoked signing key (``typ: at+jwt``), then RFC 9068 §4's claim checks in one place
(joserfc's claims registry: ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``), then the ``jti``
against the revocation list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from joserfc.errors import ClaimError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from issuer.cache.revocations import RevocationCache
from issuer.storage.base import RevocationStore
from keys.keyring import Keyring

log = logging.getLogger("issuer.tokens")

# For ``iat``/``nbf``: a token minted by an instance whose clock runs a little ahead. We are the
# only signer and our instances share a clock within NTP's error, so a few seconds is plenty;
# ISSUER_CLOCK_SKEW (a minute) is for other verifiers' caches, not for us.
LEEWAY = 5


class _OwnClaims(JWTClaimsRegistry):
    """No leeway past ``exp``: it is ours to set, and a revoked ``jti`` is remembered only
    until then, so accepting a token after ``exp`` could revive a revoked one."""

    def validate_exp(self, value: object) -> None:
        leeway, self.leeway = self.leeway, 0
        try:
            super().validate_exp(value)
        finally:
            self.leeway = leeway


class InvalidAccessToken(Exception):
    pass


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def scopes(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope")
    return scope.split() if isinstance(scope, str) else []


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
        # The registries hold only their options (audience: None or the issuer), so each is built once.
        self._registries: dict[tuple[str | None, bool], _OwnClaims] = {}

    def _registry(self, audience: str | None, *, timed: bool) -> _OwnClaims:
        registry = self._registries.get((audience, timed))
        if registry is None:
            registry = self._registries[audience, timed] = self._new_registry(audience, timed=timed)
        return registry

    def _new_registry(self, audience: str | None, *, timed: bool) -> _OwnClaims:
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": self._issuer},
            "jti": {"essential": True},
            "sub": {"essential": True},
        }
        if timed:
            options["exp"] = {"essential": True}
            options["iat"] = {"essential": True}
        if audience is not None:
            options["aud"] = {"essential": True, "value": audience}
        return _OwnClaims(now=lambda: int(self._clock()), leeway=LEEWAY, **options)

    def _verify(self, token: str, audience: str | None, *, timed: bool) -> dict[str, Any]:
        try:
            claims, _ = self._keyring.verify(token)
        except ValueError:
            raise InvalidAccessToken("signature") from None
        checked = claims if timed else {k: v for k, v in claims.items() if k not in ("exp", "nbf", "iat")}
        try:
            self._registry(audience, timed=timed).validate(checked)
        except ClaimError as exc:
            raise InvalidAccessToken(type(exc).__name__) from None
        return claims

    def signed_claims(self, token: str) -> dict[str, Any]:
        """Signature and issuer only: revocation (RFC 7009) accepts an expired token."""
        return self._verify(token, None, timed=False)

    async def validate(self, token: str, audience: str | None = None) -> dict[str, Any]:
        """A live token; with ``audience``, one whose ``aud`` includes it (RFC 9068 §4)."""
        claims = self._verify(token, audience, timed=True)
        if await self._revocations.is_revoked(claims["jti"]):
            raise InvalidAccessToken("revoked")
        return claims
