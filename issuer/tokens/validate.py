"""Checking our own access tokens (introspection, userinfo, the admin API): a published,
unrevoked signing key (``typ: at+jwt``), then RFC 9068 §4's claim checks in one place
(``ClaimChecks``: ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``), then the ``jti`` against the
revocation list."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from issuer.cache.revocations import RevocationCache
from issuer.storage.base import RevocationStore
from keys.keyring import Keyring

log = logging.getLogger("issuer.tokens")

# For ``iat``/``nbf``: a token minted by an instance whose clock runs a little ahead. We are the
# only signer and our instances share a clock within NTP's error, so a few seconds is plenty;
# ISSUER_CLOCK_SKEW (a minute) is for other verifiers' caches, not for us.
LEEWAY = 5


class InvalidAccessToken(Exception):
    pass


def _numeric_date(value: object) -> bool:
    """A JSON number that is not NaN or infinite (an ``exp`` of NaN would never expire)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


_BLANK: tuple[object, ...] = (None, "", [], {})


class ClaimChecks:
    """RFC 7519 §4.1 and RFC 9068 §4 for our own tokens: ``iss`` is ours, ``sub`` and ``jti`` are
    non-empty strings, ``aud`` (when asked for) includes ``audience``; with ``timed``, ``exp`` has not
    passed (no leeway: it is ours to set, and a revoked ``jti`` is remembered only until then) and
    ``iat``/``nbf`` are not beyond ``now + LEEWAY``. Registered claims of the wrong type are refused.

    This decides what joserfc's ``JWTClaimsRegistry`` decides with the same options
    (tests/test_claim_checks.py compares both over random claim sets) at about a sixth of its cost:
    introspection runs it on every call."""

    def __init__(self, issuer: str, audience: str | None, *, timed: bool, now: Callable[[], int]) -> None:
        self._issuer, self._audience, self._timed, self._now = issuer, audience, timed, now
        essential = ["iss", "jti", "sub"] + (["exp", "iat"] if timed else [])
        self._essential = tuple(essential + (["aud"] if audience is not None else []))

    def validate(self, claims: dict[str, Any]) -> None:
        """Raises InvalidAccessToken naming what failed."""
        get = claims.get
        for name in self._essential:
            if get(name) is None:
                raise InvalidAccessToken("MissingClaimError")
        iss, sub, jti = claims["iss"], claims["sub"], claims["jti"]
        if not (isinstance(iss, str) and isinstance(sub, str) and isinstance(jti, str)):
            raise InvalidAccessToken("InvalidClaimError")
        if iss != self._issuer or sub == "" or jti == "":
            raise InvalidAccessToken("InvalidClaimError")
        if "aud" in claims:
            self._check_aud(claims["aud"])
        if self._timed:
            self._check_times(get("exp"), get("iat"), get("nbf"), "nbf" in claims)

    def _check_aud(self, aud: object) -> None:
        if not (isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))):
            raise InvalidAccessToken("InvalidClaimError")
        audience = self._audience
        if audience is None:
            return
        if aud in _BLANK:
            raise InvalidAccessToken("InvalidClaimError")
        if (audience not in aud) if isinstance(aud, list) else aud != audience:
            raise InvalidAccessToken("InvalidClaimError")

    def _check_times(self, exp: object, iat: object, nbf: object, has_nbf: bool) -> None:
        # exp and iat are essential here (present, not null); nbf is optional, and null when given is refused.
        if not _numeric_date(exp) or not _numeric_date(iat) or (has_nbf and not _numeric_date(nbf)):
            raise InvalidAccessToken("InvalidClaimError")
        now = self._now()
        if exp <= now:  # type: ignore[operator]
            raise InvalidAccessToken("ExpiredTokenError")
        if iat > now + LEEWAY or (has_nbf and nbf > now + LEEWAY):  # type: ignore[operator]
            raise InvalidAccessToken("InvalidClaimError")


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
        # The checks hold only their options (audience: None or the issuer), so each is built once.
        self._checks: dict[tuple[str | None, bool], ClaimChecks] = {}

    def _claim_checks(self, audience: str | None, *, timed: bool) -> ClaimChecks:
        checks = self._checks.get((audience, timed))
        if checks is None:
            now = lambda: int(self._clock())  # noqa: E731
            checks = self._checks[audience, timed] = ClaimChecks(self._issuer, audience, timed=timed, now=now)
        return checks

    def _verify(self, token: str, audience: str | None, *, timed: bool) -> dict[str, Any]:
        try:
            claims, _ = self._keyring.verify(token)
        except ValueError:
            raise InvalidAccessToken("signature") from None
        self._claim_checks(audience, timed=timed).validate(claims)
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
