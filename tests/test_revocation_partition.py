"""A revocation acknowledged by one instance while Redis is cut off from that instance only.

Its cache write fails, so the shared Redis cache does not hold the revoked id, and the other
instance (whose Redis is fine, its cache marked warm) would answer "active" until the warm
marker expires (60 s). Every instance also polls the database for recent revocations at
ISSUER_KEYRING_REFRESH_INTERVAL, which bounds the window to that interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import jwt
import pytest

from issuer.settings import Settings
from tests.conftest import FAST, _truncate_postgres, make_client, running_app, services_of

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

API = "https://api.example.com"
INTERVAL = 1.0


class TcpProxy:
    """Forwards one local port to Redis until ``cut()``: then every connection is dropped and new
    ones are refused, as in a network partition between one instance and Redis."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db = parts.path
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._db}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


@contextlib.asynccontextmanager
async def proxy_to(redis_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(redis_url)
    try:
        yield proxy
    finally:
        if proxy._server is not None and proxy._server.is_serving():
            await proxy.cut()


async def test_other_instances_see_a_revocation_within_the_refresh_interval_when_redis_fails_for_the_revoker(
    pg_database: str, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    await _truncate_postgres(pg_database)
    prefix = f"issuer-partition-{secrets.token_hex(4)}:"
    common = {**FAST, "database_url": pg_database, "redis_prefix": prefix, "keyring_refresh_interval": INTERVAL}
    async with proxy_to(redis_url) as proxy:
        a_settings = make_settings(**common, redis_url=await proxy.start())
        b_settings = make_settings(**common, redis_url=redis_url)
        async with running_app(a_settings) as a, running_app(b_settings) as b:
            app_id, app_secret = await make_client(a, name="app", audiences=(API,))
            api_id, api_secret = await make_client(a, name="api", audiences=(API,))
            assert app_secret is not None and api_secret is not None  # confidential clients
            issuer_client, resource_server = (app_id, app_secret), (api_id, api_secret)
            token = (
                await b.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=issuer_client)
            ).json()["access_token"]

            async def active_at_b() -> bool:
                response = await b.post("/oauth2/introspect", data={"token": token}, auth=resource_server)
                assert response.status_code == 200, response.text
                return bool(response.json()["active"])

            assert await active_at_b()  # B's Redis cache is warm and trusted
            await proxy.cut()
            revoked = await a.post("/oauth2/revoke", data={"token": token}, auth=issuer_client)
            assert revoked.status_code == 200
            acknowledged = time.monotonic()
            # the revoking instance itself knows at once
            assert (await a.post("/oauth2/introspect", data={"token": token}, auth=resource_server)).json() == {
                "active": False
            }
            # the revocation is missing from the shared cache, which B still trusts
            jti = jwt.decode(token, options={"verify_signature": False})["jti"]
            assert await services_of(b).revocations.cache.contains(jti) is False
            while await active_at_b():
                assert time.monotonic() - acknowledged < INTERVAL + 1.5, "B still accepts the revoked token"
                await asyncio.sleep(0.05)
            took = time.monotonic() - acknowledged
            assert took <= INTERVAL + 1.5, took
