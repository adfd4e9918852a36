"""Change notifications between instances: Redis pub/sub where configured.

Without Redis (or while it is down) every instance still converges by polling the database
every ``keyring_refresh_interval`` seconds, so a lost notification only delays a change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from issuer.cache.redisconn import Throttled, redis_errors

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("issuer.bus")

Handler = Callable[[str], Awaitable[None]]


class Bus:
    def __init__(self, redis: aioredis.Redis | None, prefix: str) -> None:
        self._redis = redis
        self._channel = prefix + "changes"
        self._warn = Throttled()

    async def publish(self, topic: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(self._channel, topic)
        except redis_errors() as exc:
            self._warn.warn("publish", exc)

    async def listen(self, handler: Handler) -> None:
        """Run until cancelled, reconnecting after Redis outages."""
        if self._redis is None:
            return
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    await handler("*")  # anything published while we were away
                    async for message in pubsub.listen():
                        data = message.get("data")
                        if isinstance(data, bytes):
                            await handler(data.decode(errors="replace"))
            except asyncio.CancelledError:
                raise
            except redis_errors() as exc:
                self._warn.warn("subscribe", exc)
            except Exception:  # noqa: BLE001 - a failing handler must not end the listener
                log.exception("change handler failed")
            await asyncio.sleep(1.0)
