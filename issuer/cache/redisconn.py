from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

log = logging.getLogger("issuer.redis")

REDIS_ERRORS = (aioredis.RedisError, OSError, ConnectionError, TimeoutError)


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=10, retry_on_timeout=False
    )


class Throttled:
    """Log a Redis outage at most once per interval, never per request."""

    def __init__(self, interval: float = 30.0) -> None:
        self._interval = interval
        self._last = float("-inf")

    def warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            log.warning("redis unavailable (%s): %s; continuing without it", what, type(exc).__name__)
