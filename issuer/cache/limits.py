"""Fixed-window rate limits: ``hit`` returns None when allowed, else seconds until the window resets."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from issuer.cache.redisconn import Throttled, redis_errors

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_LOCAL_LIMIT = 100_000


def address_bucket(ip: str) -> str:
    """The unit a per-address limit counts: an IPv4 address, or an IPv6 /64 (one customer's
    network: anyone holding one can pick any of its 2**64 addresses)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> float | None: ...


class LocalRateLimiter:
    """For the single-process embedded mode."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, limit: int, window: int) -> float | None:
        now = self._clock()
        slot = math.floor(now / window)
        seen_slot, count = self._counts.get(key, (slot, 0))
        count = count + 1 if seen_slot == slot else 1
        if len(self._counts) >= _LOCAL_LIMIT:
            self._counts = {k: v for k, v in self._counts.items() if v[0] == slot}
        self._counts[key] = (slot, count)
        return None if count <= limit else (slot + 1) * window - now


# A limit of L per window is counted in Redis in batches of L // BATCH_DIVISOR hits (at least 1):
# limits under BATCH_DIVISOR (logins: 10 a minute) still take one round trip per hit.
BATCH_DIVISOR = 50


@dataclass
class _Window:
    slot: int
    known: int = 0  # the window's count in Redis as last read (every instance's flushed hits)
    pending: int = 0  # hits allowed here and not yet added to Redis


class RedisRateLimiter:
    """Shared by every instance; fails open (allows) while Redis is unreachable.

    A high limit is not worth a Redis round trip per hit (about 190 µs of CPU in redis-py, more
    than a third of an RS256 token): each instance counts hits locally and adds them to the
    window's shared counter in batches of ``limit // BATCH_DIVISOR``, deciding between batches from
    the last shared count plus its own pending hits. So an instance may admit up to one batch
    minus one (2% of the limit) beyond the limit per window, and at most that many hits per
    instance are left uncounted when a window ends. Limits below ``BATCH_DIVISOR`` are counted
    in Redis on every hit, exactly."""

    def __init__(self, redis: aioredis.Redis, prefix: str, clock: Callable[[], float]) -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"
        self._clock = clock
        self._warn = Throttled()
        self._windows: dict[tuple[str, int], _Window] = {}

    async def hit(self, key: str, limit: int, window: int) -> float | None:
        now = self._clock()
        slot = math.floor(now / window)
        retry_after = (slot + 1) * window - now
        batch = limit // BATCH_DIVISOR
        if batch <= 1:
            count = await self._add(key, window, slot, 1)
            return None if count is None or count <= limit else retry_after
        state = self._windows.get((key, window))
        if state is None or state.slot != slot:
            if len(self._windows) >= _LOCAL_LIMIT:
                self._windows = {k: v for k, v in self._windows.items() if v.slot == slot}
            state = self._windows[(key, window)] = _Window(slot)
        if state.known + state.pending >= limit:
            return retry_after
        state.pending += 1
        if state.pending < batch:
            return None
        flushed, state.pending = state.pending, 0
        count = await self._add(key, window, slot, flushed)
        if count is not None:
            state.known = max(state.known, count)
        return None if count is None or count <= limit else retry_after

    async def _add(self, key: str, window: int, slot: int, hits: int) -> int | None:
        """The window's shared count after adding `hits`; None while Redis is unreachable."""
        name = f"{self._prefix}{key}:{window}:{slot}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, hits)
                pipe.expire(name, window + 1)
                count, _ = await pipe.execute()
        except redis_errors() as exc:
            self._warn.warn("rate limit", exc)
            return None
        return int(count)
