"""Fixed-window rate limits: ``hit`` returns None when allowed, else seconds until the window resets."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from issuer.cache.redisconn import REDIS_ERRORS, Throttled

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


class RedisRateLimiter:
    """Shared by every instance; fails open (allows) while Redis is unreachable."""

    def __init__(self, redis: aioredis.Redis, prefix: str, clock: Callable[[], float]) -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"
        self._clock = clock
        self._warn = Throttled()

    async def hit(self, key: str, limit: int, window: int) -> float | None:
        now = self._clock()
        slot = math.floor(now / window)
        name = f"{self._prefix}{key}:{window}:{slot}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window + 1)
                count, _ = await pipe.execute()
        except REDIS_ERRORS as exc:
            self._warn.warn("rate limit", exc)
            return None
        return None if int(count) <= limit else (slot + 1) * window - now
