"""Refresh-token families (RFC 6749 §6, RFC 9700 §4.14.2).

A login starts a family. Each refresh consumes the presented token and issues its successor
(a compare-and-swap, so concurrent refreshes yield exactly one successor). The successor is
kept sealed beside the consumed token for ``grace`` seconds, so a retry of a lost response
gets the same successor back instead of a second branch. Any other use of a consumed token
is reuse: the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from issuer.errors import InvalidGrant
from issuer.ids import new_id
from issuer.models import RefreshFamily, RefreshToken, User
from issuer.storage.base import RefreshStore
from keys.envelope import Envelope, EnvelopeError

log = logging.getLogger("issuer.refresh")


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _aad(token_hash: bytes) -> bytes:
    return b"refresh-successor:" + token_hash


@dataclass(frozen=True)
class Rotation:
    refresh_token: str
    family: RefreshFamily
    token: RefreshToken
    user: User | None
    retried: bool = False


@dataclass(frozen=True)
class RefreshPolicy:
    idle_ttl: int
    absolute_ttl: int
    grace: int


class RefreshTokens:
    def __init__(
        self,
        store: RefreshStore,
        envelope: Envelope,
        policy: RefreshPolicy,
        clock: Callable[[], float],
        on_reuse: Callable[[RefreshFamily, int], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._envelope = envelope
        self._policy = policy
        self._clock = clock
        self._on_reuse = on_reuse

    def _new(
        self, family: RefreshFamily, generation: int, scope: str, audience: str, now: float
    ) -> tuple[str, RefreshToken]:
        plain = secrets.token_urlsafe(32)
        token = RefreshToken(
            token_hash=hash_refresh_token(plain),
            family_id=family.family_id,
            generation=generation,
            scope=scope,
            audience=audience,
            issued_at=now,
            expires_at=min(now + self._policy.idle_ttl, family.expires_at),
        )
        return plain, token

    async def start(self, client_id: str, user_id: str, scope: tuple[str, ...], audience: tuple[str, ...]) -> str:
        return (await self.start_family(client_id, user_id, scope, audience))[0]

    async def start_family(
        self,
        client_id: str,
        user_id: str,
        scope: tuple[str, ...],
        audience: tuple[str, ...],
        session_id: str | None = None,
        auth_time: float | None = None,
    ) -> tuple[str, RefreshFamily]:
        """A new family (tied to the browser session that signed in, if any) and its first token."""
        now = self._clock()
        family = RefreshFamily(
            family_id=new_id(),
            client_id=client_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + self._policy.absolute_ttl,
            session_id=session_id,
            auth_time=auth_time,
        )
        plain, first = self._new(family, 0, " ".join(scope), " ".join(audience), now)
        await self._store.start_family(family, first)
        return plain, family

    async def rotate(
        self, presented: str, client_id: str, check: Callable[[RefreshToken, User | None], object] | None = None
    ) -> Rotation:
        """``check`` may refuse the request (e.g. a widened scope, or a scope the user may no
        longer hold) before anything is consumed. Without one (nothing the request asks for can
        be refused), a live token is consumed in the same round trip that finds it."""
        if len(presented) > 512:
            raise InvalidGrant("refresh token is invalid")
        token_hash = hash_refresh_token(presented)
        now = self._clock()
        if check is None:
            plain = secrets.token_urlsafe(32)
            sealed = self._envelope.encrypt(plain.encode(), _aad(token_hash))
            rotated = await self._store.rotate(
                token_hash, client_id, now, hash_refresh_token(plain), sealed, self._policy.idle_ttl
            )
            if rotated is None:
                raise InvalidGrant("refresh token is invalid")
            token, family, user, successor = rotated
            if successor is not None:
                return Rotation(plain, family, successor, user)
            # Not consumed: the checks below say why (or it was consumed meanwhile: a lost race).
        else:
            found = await self._store.find_token_with_user(token_hash)
            if found is None:
                raise InvalidGrant("refresh token is invalid")
            token, family, user = found
        if family.client_id != client_id:
            # RFC 6749 §10.4: a token is bound to its client; another client presenting it is not reuse.
            raise InvalidGrant("refresh token is invalid")
        if family.revoked_at is not None:
            raise InvalidGrant("refresh token was revoked")
        if now >= family.expires_at or (token.consumed_at is None and now >= token.expires_at):
            raise InvalidGrant("refresh token expired")
        if check is not None:
            check(token, user)
        if token.consumed_at is None:
            if check is not None:
                plain, successor = self._new(family, token.generation + 1, token.scope, token.audience, now)
                sealed = self._envelope.encrypt(plain.encode(), _aad(token_hash))
                if await self._store.consume(token_hash, now, successor, sealed):
                    return Rotation(plain, family, successor, user)
            refreshed = await self._store.find_token(token_hash)  # lost the race: look again
            if refreshed is None:
                raise InvalidGrant("refresh token is invalid")
            token, family = refreshed
            if family.revoked_at is not None:
                raise InvalidGrant("refresh token was revoked")
        retry = await self._retry(token, family, user, now)
        if retry is not None:
            return retry
        if self._on_reuse is not None:
            await self._on_reuse(family, token.generation)  # revokes the family and audits it
        else:
            await self._store.revoke_family(family.family_id, now, "refresh token reuse")
        log.warning(
            "refresh token reuse: family revoked",
            extra={"family_id": family.family_id, "client_id": family.client_id, "generation": token.generation},
        )
        raise InvalidGrant("refresh token was already used")

    async def _retry(
        self, token: RefreshToken, family: RefreshFamily, user: User | None, now: float
    ) -> Rotation | None:
        """Within the grace window, and while the successor is unused, hand the same successor back."""
        grace = self._policy.grace
        if (
            not grace
            or token.consumed_at is None
            or now - token.consumed_at > grace
            or token.successor_ciphertext is None
        ):
            return None
        successor = await self._store.get_token(family.family_id, token.generation + 1)
        if successor is None or successor.consumed_at is not None:
            return None
        try:
            plain = self._envelope.decrypt(token.successor_ciphertext, _aad(token.token_hash)).decode()
        except EnvelopeError:
            return None
        if not secrets.compare_digest(hash_refresh_token(plain), successor.token_hash):
            return None
        return Rotation(plain, family, successor, user, retried=True)

    async def lookup(self, presented: str) -> tuple[RefreshToken, RefreshFamily] | None:
        return await self._store.find_token(hash_refresh_token(presented)) if len(presented) <= 512 else None

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        return await self._store.revoke_family(family_id, self._clock(), reason)

    def is_live(self, token: RefreshToken, family: RefreshFamily) -> bool:
        now = self._clock()
        return (
            family.revoked_at is None
            and token.consumed_at is None
            and now < token.expires_at
            and now < family.expires_at
        )
