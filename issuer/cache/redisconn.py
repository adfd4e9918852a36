from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("issuer.redis")


@functools.cache
def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is unreachable or refuses. A function, not a constant,
    so that redis-py (about 8 MB) is imported only by processes configured with ISSUER_REDIS_URL:
    ``except redis_errors():`` is evaluated only while an exception propagates, and only code
    holding a client (so redis is already imported) reaches it."""
    import redis.asyncio as aioredis

    return (aioredis.RedisError, OSError, ConnectionError, TimeoutError)


def connect(url: str) -> aioredis.Redis:
    import redis.asyncio as aioredis

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
