"""Faults answer 503 (or 409), never 500 (issue 7 §3).

A PostgreSQL outage under a running app (its connections terminated, or its database dropped)
gives 503 + Retry-After in each endpoint's format and leaves no "exception was never retrieved"
behind; concurrent forced key rotations on two instances of one database give 200 or 409 and
leave exactly one active key. The shared PostgreSQL server itself is never stopped: each test
has a throwaway database of its own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from issuer.settings import Settings
from issuer.storage import open_database
from issuer.storage.migrate import migrate
from tests.conftest import (
    FAST,
    PG_ADMIN_URL,
    FakeClock,
    assert_problem,
    make_client,
    running_app,
    throwaway_pg_database,
)
from tests.test_admin_api import client_token

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_pg() -> Iterator[str]:
    with throwaway_pg_database("issuer_fault") as url:
        yield url


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


async def terminate_connections(url: str) -> None:
    await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{_name(url)}'")


def assert_unavailable(response: httpx.Response, oauth: bool = False) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    if oauth:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"] == "temporarily_unavailable"
    else:
        assert_problem(response, 503)
    assert "asyncpg" not in response.text and "Error" not in response.text


@pytest.fixture
def never_retrieved(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    caplog.set_level(logging.ERROR, logger="asyncio")

    def lines() -> list[str]:
        gc.collect()  # asyncio reports an unread exception when the future is collected
        return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]

    yield lines


async def test_a_dropped_database_answers_503_everywhere(
    own_pg: str, make_settings: Callable[..., Settings], clock: FakeClock, never_retrieved: Callable[[], list[str]]
) -> None:
    await _migrated(own_pg)
    settings = make_settings(database_url=own_pg, **FAST)
    async with running_app(settings, clock) as http:
        admin_id, admin_secret = await make_client(http, name="operator", scopes=("issuer:admin",))
        assert admin_secret is not None
        token = await client_token(http, admin_id, admin_secret)
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/admin/clients", headers=headers)).status_code == 200
        paths = (await http.get("/openapi.json")).json()["paths"]
        for path, method in [("/admin/clients", "get"), ("/register", "post"), ("/oauth2/token", "post")]:
            assert "Retry-After" in paths[path][method]["responses"]["503"]["headers"], (method, path)

        await _admin(f'DROP DATABASE "{_name(own_pg)}" WITH (FORCE)')
        assert_unavailable(await http.get("/admin/clients", headers=headers))
        assert_unavailable(await http.get("/admin/audit", headers=headers))
        assert_unavailable(await http.post("/register", json={"username": "newbie", "password": "password-123"}))
        # The client is cached for a few seconds: first its stale entry is served while a
        # background reload fails, then the reload is awaited and the token endpoint answers 503.
        clock.advance(7.5)  # ClientRegistry's cache_ttl is 5 s: past it, within twice it
        form = {"grant_type": "client_credentials"}
        first = await http.post("/oauth2/token", data=form, auth=(admin_id, admin_secret))
        assert first.status_code in (200, 503), first.text
        await asyncio.sleep(0.1)
        clock.advance(60)
        assert_unavailable(await http.post("/oauth2/token", data=form, auth=(admin_id, admin_secret)), oauth=True)
        assert_unavailable(
            await http.post("/oauth2/introspect", data={"token": token}, auth=(admin_id, admin_secret)), oauth=True
        )
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        # what needs no database keeps answering: discovery (with the last known scopes) and keys
        clock.advance(120)
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json", "/healthz"):
            assert (await http.get(path)).status_code == 200, path
    assert never_retrieved() == []


async def test_terminated_connections_answer_503_then_recover(
    own_pg: str, make_settings: Callable[..., Settings], clock: FakeClock, never_retrieved: Callable[[], list[str]]
) -> None:
    """The server cuts every connection and, for a while, accepts none (as during a failover);
    the app answers 503 meanwhile and recovers after."""
    await _migrated(own_pg)
    settings = make_settings(database_url=own_pg, **FAST)
    name = _name(own_pg)
    async with running_app(settings, clock) as http:
        admin_id, admin_secret = await make_client(http, name="operator", scopes=("issuer:admin",))
        assert admin_secret is not None
        headers = {"Authorization": f"Bearer {await client_token(http, admin_id, admin_secret)}"}
        assert (await http.get("/admin/clients", headers=headers)).status_code == 200
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await terminate_connections(own_pg)
            responses = await asyncio.gather(*(http.get("/admin/clients", headers=headers) for _ in range(8)))
            for response in responses:
                assert_unavailable(response)
        finally:
            await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # the pool reconnects: the next requests succeed again
        assert (await http.get("/admin/clients", headers=headers)).status_code == 200
    assert never_retrieved() == []


async def _migrated(url: str) -> None:
    db = await open_database(url)
    try:
        await migrate(db)
    finally:
        await db.close()


async def test_concurrent_forced_rotations_on_two_instances_answer_200_or_409(
    own_pg: str, make_settings: Callable[..., Settings]
) -> None:
    await _migrated(own_pg)
    settings = make_settings(database_url=own_pg, **FAST)
    async with running_app(settings) as a, running_app(settings) as b:
        admin_id, admin_secret = await make_client(a, name="operator", scopes=("issuer:admin",))
        assert admin_secret is not None
        headers = {"Authorization": f"Bearer {await client_token(a, admin_id, admin_secret)}"}

        async def rotate(http: httpx.AsyncClient) -> httpx.Response:
            return await http.post("/admin/keys/rotate?force=true", headers=headers)

        responses = await asyncio.gather(*(rotate(a if i % 2 else b) for i in range(20)))
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {200, 409}, [r.text for r in responses if r.status_code not in (200, 409)]
        assert statuses[200] >= 1
        for response in responses:
            if response.status_code == 409:
                assert_problem(response, 409)
                assert response.headers["retry-after"] == "1"
        keys: list[dict[str, Any]] = (await a.get("/admin/keys", headers=headers)).json()["items"]
        assert [k["state"] for k in keys].count("active") == 1
        assert [k["state"] for k in keys].count("pending") == 1
