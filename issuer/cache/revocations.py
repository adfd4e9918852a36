"""Revoked access-token ids: the database is the source of truth, a cache answers fast.

``contains`` returns True/False when the cache knows, None when it does not (then the
database decides). The Redis cache is trusted only while its warm marker exists: after a
Redis restart or flush the marker is gone, so answers fall back to the database until the
cache has been rebuilt from it. A failed cache write makes this instance answer from the
database for a minute; the marker expires every minute, so the cache is rebuilt at least that
often. Until then another instance would miss a revocation whose cache write failed while
Redis stayed up for it: ``Revocations.poll`` (issuer.tokens.validate) closes that gap within
ISSUER_KEYRING_REFRESH_INTERVAL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from issuer.cache.redisconn import Throttled, redis_errors

if TYPE_CHECKING:
    import redis.asyncio as aioredis
from issuer.storage.base import RevocationStore

_MARKER_TTL = 60


class RevocationCache(Protocol):
    async def add(self, jti: str, expires_at: float) -> None: ...
    async def contains(self, jti: str) -> bool | None: ...
    async def warm(self) -> None: ...


class LocalRevocationCache:
    """For one process: filled from the database at start and on every refresh tick."""

    def __init__(self, store: RevocationStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._warm = False

    async def add(self, jti: str, expires_at: float) -> None:
        self._revoked[jti] = expires_at

    async def contains(self, jti: str) -> bool | None:
        if jti in self._revoked:
            return True
        return False if self._warm else None

    async def warm(self) -> None:
        # Merge, never replace: an older snapshot (a slower warm that started first, or one read
        # before an add() landed) must not forget an id another warm or add() put here. Expired
        # ids are dropped instead, which is what keeps the dict bounded.
        found = await self._store.revoked_since(self._clock())
        now = self._clock()
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
        self._revoked.update(found)
        self._warm = True


class RedisRevocationCache:
    def __init__(self, redis: aioredis.Redis, prefix: str, store: RevocationStore, clock: Callable[[], float]) -> None:
        self._redis = redis
        self._prefix = prefix + "revoked:"
        self._marker = prefix + "revoked-warm"
        self._store = store
        self._clock = clock
        self._warming: asyncio.Task[None] | None = None
        self._warn = Throttled()
        self._distrust_until = float("-inf")

    def _ttl_ms(self, expires_at: float) -> int:
        return max(1, math.ceil((expires_at - self._clock()) * 1000))

    async def add(self, jti: str, expires_at: float) -> None:
        try:
            await self._redis.set(self._prefix + jti, b"1", px=self._ttl_ms(expires_at))
        except redis_errors() as exc:
            self._warn.warn("revocation cache write", exc)
            # This instance answers from the database until the marker has surely expired.
            self._distrust_until = self._clock() + _MARKER_TTL
            try:
                await self._redis.delete(self._marker)  # distrust the cache until rebuilt
            except redis_errors():
                pass

    async def contains(self, jti: str) -> bool | None:
        try:
            marker, hit = await self._redis.mget(self._marker, self._prefix + jti)
        except redis_errors() as exc:
            self._warn.warn("revocation cache read", exc)
            return None
        if marker is None:
            if self._warming is None or self._warming.done():
                self._warming = asyncio.create_task(self.warm())
                # Nobody awaits this rebuild; a failure (database down) is retried on the next miss.
                self._warming.add_done_callback(lambda t: t.cancelled() or t.exception())
            return None
        if self._clock() < self._distrust_until:
            return None
        return hit is not None

    async def warm(self) -> None:
        revoked = await self._store.revoked_since(self._clock())
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for jti, expires_at in revoked:
                    pipe.set(self._prefix + jti, b"1", px=self._ttl_ms(expires_at))
                pipe.set(self._marker, b"1", ex=_MARKER_TTL)
                await pipe.execute()
        except redis_errors() as exc:
            self._warn.warn("revocation cache warm", exc)
