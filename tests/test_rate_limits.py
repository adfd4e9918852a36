"""Rate limits (login per username and per IP, token endpoint per client) with Redis and with
the in-process limiter, and what happens when Redis goes away and comes back empty."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import redis
import redis.asyncio as aioredis

from issuer.accounts.users import NewUser
from issuer.cache.limits import BATCH_DIVISOR, RedisRateLimiter
from issuer.settings import Settings
from tests.conftest import FAST, OPERATOR, FakeClock, make_client, running_app, services_of, unavailable
from tests.servers import RedisServer
from tests.users_helpers import PASSWORD, Client, first_party


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the in-process limiter, or for the shared one in Redis."""
    if request.param == "memory":
        return {"redis_url": ""}
    return {"redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def start(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock, limiter: dict[str, Any]
) -> Callable[..., Any]:
    def start(**overrides: Any) -> Any:
        settings = make_settings(database_url=database_url, **{**FAST, **limiter, **overrides})
        return running_app(settings, clock)

    return start


async def setup_login(http: httpx.AsyncClient, *usernames: str) -> Client:
    for username in usernames or ("alice",):
        await services_of(http).ops.users.create(OPERATOR, NewUser(username, PASSWORD))
    return await first_party(http)


async def login(
    http: httpx.AsyncClient, client: Client, username: str = "alice", password: str = PASSWORD, ip: str | None = None
) -> httpx.Response:
    client_id, secret = client
    headers = {"X-Forwarded-For": ip} if ip else {}
    data = {"grant_type": "password", "username": username, "password": password}
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""), headers=headers)


async def client_credentials(http: httpx.AsyncClient, client: Client) -> httpx.Response:
    client_id, secret = client
    return await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret or ""))


def assert_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in response.json()
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window


async def test_login_attempts_are_limited_per_username(start: Callable[..., Any], clock: FakeClock) -> None:
    async with start(rate_limit_login_per_user=3, rate_limit_login_per_ip=0) as http:
        client = await setup_login(http, "alice", "bob")
        for _ in range(3):
            assert (await login(http, client, password="wrong-password")).json()["error"] == "invalid_grant"

        assert_limited(await login(http, client), 60)
        assert_limited(await login(http, client, username="ALICE"), 60)
        assert (await login(http, client, username="bob")).status_code == 200

        clock.advance(60)
        assert (await login(http, client)).status_code == 200


async def test_login_attempts_are_limited_per_client_ip(start: Callable[..., Any], clock: FakeClock) -> None:
    async with start(rate_limit_login_per_user=0, rate_limit_login_per_ip=3, forwarded_allow_ips=["127.0.0.1"]) as http:
        client = await setup_login(http, "alice", "bob", "carol", "dave")
        for name in ("alice", "bob", "carol"):
            assert (await login(http, client, username=name, ip="203.0.113.7")).status_code == 200

        assert_limited(await login(http, client, username="dave", ip="203.0.113.7"), 60)
        assert (await login(http, client, username="dave", ip="203.0.113.8")).status_code == 200

        clock.advance(60)
        assert (await login(http, client, username="dave", ip="203.0.113.7")).status_code == 200


async def test_ipv6_addresses_in_one_64_share_the_ip_limits(start: Callable[..., Any]) -> None:
    # Whoever holds a /64 can use any of its 2**64 addresses: it is one client for the limits.
    settings = {"rate_limit_login_per_user": 0, "rate_limit_login_per_ip": 2, "rate_limit_register_per_ip": 2}
    async with start(forwarded_allow_ips=["127.0.0.1"], **settings) as http:
        client = await setup_login(http)
        for ip in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
            assert (await login(http, client, ip=ip)).status_code == 200
        assert_limited(await login(http, client, ip="2001:db8:1:2:abcd::1"), 60)
        assert (await login(http, client, ip="2001:db8:1:3::1")).status_code == 200  # the next /64

        async def register(name: str, ip: str) -> httpx.Response:
            body = {"username": name, "password": "a-fine-password-9"}
            response: httpx.Response = await http.post("/register", json=body, headers={"X-Forwarded-For": ip})
            return response

        assert (await register("v6-one", "2001:db8:9:9::1")).status_code == 201
        assert (await register("v6-two", "2001:db8:9:9::2")).status_code == 201
        assert (await register("v6-three", "2001:db8:9:9::3")).status_code == 429
        assert (await register("v6-four", "2001:db8:9:a::3")).status_code == 201


def test_address_buckets() -> None:
    from issuer.cache.limits import address_bucket

    assert address_bucket("203.0.113.7") == "203.0.113.7"
    assert address_bucket("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_bucket("2001:db8::1") == address_bucket("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_bucket("unknown") == "unknown"


async def test_an_untrusted_forwarded_for_header_does_not_escape_the_ip_limit(start: Callable[..., Any]) -> None:
    async with start(rate_limit_login_per_user=0, rate_limit_login_per_ip=2) as http:
        client = await setup_login(http)
        for ip in ("198.51.100.1", "198.51.100.2"):
            assert (await login(http, client, ip=ip)).status_code == 200
        assert_limited(await login(http, client, ip="198.51.100.3"), 60)


async def test_token_requests_are_limited_per_client(start: Callable[..., Any], clock: FakeClock) -> None:
    async with start(rate_limit_token_per_client=2) as http:
        busy = await make_client(http, name="busy")
        quiet = await make_client(http, name="quiet")
        for _ in range(2):
            assert (await client_credentials(http, busy)).status_code == 200

        assert_limited(await client_credentials(http, busy), 1)
        assert (await client_credentials(http, quiet)).status_code == 200

        clock.advance(1)
        assert (await client_credentials(http, busy)).status_code == 200


async def test_password_confirmation_on_account_actions_is_limited(start: Callable[..., Any]) -> None:
    async with start(rate_limit_login_per_user=3, rate_limit_login_per_ip=0) as http:
        client = await setup_login(http)
        issuer = services_of(http).settings.url
        access = (await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD, "resource": issuer},
            auth=(client[0], client[1] or ""),
        )).json()["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        body = {"current_password": "guess-number-n", "new_password": "brand-new-password"}
        for _ in range(2):
            assert (await http.post("/account/password", json=body, headers=headers)).status_code == 422

        response = await http.post("/account/password", json=body, headers=headers)
        assert_limited(response, 60)
        deactivate = await http.post("/account/deactivate", json={"password": PASSWORD}, headers=headers)
        assert_limited(deactivate, 60)
        assert (await services_of(http).users.store.find_user("alice")).disabled is False


@pytest.mark.parametrize("limiter", ["redis"], indirect=True)
async def test_redis_limits_are_shared_by_instances(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock, limiter: dict[str, Any]
) -> None:
    settings = make_settings(database_url=database_url, rate_limit_login_per_user=3, **FAST, **limiter)
    async with running_app(settings, clock) as first:
        client = await setup_login(first)
        async with running_app(settings, clock) as second:
            assert (await login(first, client)).status_code == 200
            assert (await login(second, client)).status_code == 200
            assert (await login(first, client)).status_code == 200
            assert_limited(await login(second, client), 60)
            assert_limited(await login(first, client), 60)


# -- Redis outage -------------------------------------------------------------------------------------


def jti(token: str) -> str:
    value: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return value


@pytest.mark.redis
async def test_issuance_and_revocation_survive_a_redis_outage_and_an_empty_restart(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer().start()
    try:
        settings = make_settings(
            database_url=database_url,
            redis_url=server.url,
            rate_limit_login_per_user=2,
            rate_limit_login_per_ip=0,
            rate_limit_token_per_client=5,
            **FAST,
        )
        prefix = settings.redis_prefix
        async with running_app(settings, clock) as http:
            m2m = await make_client(http, name="m2m")
            app = await setup_login(http)

            async def introspect(token: str) -> bool:
                client_id, secret = m2m
                response = await http.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret or ""))
                assert response.status_code == 200, response.text
                active: bool = response.json()["active"]
                return active

            async def revoke(token: str) -> None:
                client_id, secret = m2m
                response = await http.post("/oauth2/revoke", data={"token": token}, auth=(client_id, secret or ""))
                assert response.status_code == 200, response.text

            # Redis up: ready, limits enforced, revocation cached.
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
            for _ in range(2):
                assert (await login(http, app)).status_code == 200
            assert_limited(await login(http, app), 60)
            revoked_while_up = (await client_credentials(http, m2m)).json()["access_token"]
            kept = (await client_credentials(http, m2m)).json()["access_token"]
            await revoke(revoked_while_up)
            assert await introspect(revoked_while_up) is False

            # Redis down: issuance goes on (limits fail open), readiness stays 200 and reports
            # the degradation, revocation holds.
            server.kill()
            began = time.monotonic()
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "redis": "degraded"}
            for _ in range(8):
                response = await client_credentials(http, m2m)
                assert response.status_code == 200, response.text
            for _ in range(3):
                response = await login(http, app)
                assert response.status_code == 200, response.text
            revoked_while_down = (await client_credentials(http, m2m)).json()["access_token"]
            await revoke(revoked_while_down)
            assert await introspect(revoked_while_down) is False
            assert await introspect(revoked_while_up) is False
            assert await introspect(kept) is True
            assert time.monotonic() - began < 15, "requests during the outage should not wait on Redis"

            # Redis back, empty: answers come from the database, and the cache is rebuilt from it.
            server.start()
            assert await introspect(revoked_while_down) is False
            assert await introspect(revoked_while_up) is False
            assert await introspect(kept) is True

            inspector = redis.Redis.from_url(server.url)
            try:
                deadline = time.monotonic() + 10
                while not inspector.exists(prefix + "revoked-warm") and time.monotonic() < deadline:
                    await introspect(kept)
                    await asyncio.sleep(0.05)
                assert inspector.exists(prefix + "revoked-warm"), "the revocation cache was not re-warmed"
                assert inspector.exists(prefix + "revoked:" + jti(revoked_while_up))
                assert inspector.exists(prefix + "revoked:" + jti(revoked_while_down))
                assert not inspector.exists(prefix + "revoked:" + jti(kept))
            finally:
                inspector.close()
            assert await introspect(revoked_while_down) is False
            assert await introspect(revoked_while_up) is False
            assert await introspect(kept) is True

            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            clock.advance(60)
            for _ in range(2):
                assert (await login(http, app)).status_code == 200
            assert_limited(await login(http, app), 60)
            for _ in range(5):
                assert (await client_credentials(http, m2m)).status_code == 200
            assert_limited(await client_credentials(http, m2m), 1)
    finally:
        server.kill()


@pytest.mark.parametrize("limiter", ["redis"], indirect=True)
async def test_a_revocation_on_one_instance_is_seen_at_once_by_another_through_redis(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock, limiter: dict[str, Any]
) -> None:
    settings = make_settings(database_url=database_url, **FAST, **limiter)
    async with running_app(settings, clock) as first:
        client_id, secret = await make_client(first)
        auth = (client_id, secret or "")
        async with running_app(settings, clock) as second:
            token = (await client_credentials(first, (client_id, secret))).json()["access_token"]
            assert (await second.post("/oauth2/introspect", data={"token": token}, auth=auth)).json()["active"] is True

            assert (await first.post("/oauth2/revoke", data={"token": token}, auth=auth)).status_code == 200

            assert (await second.post("/oauth2/introspect", data={"token": token}, auth=auth)).json() == {
                "active": False
            }


async def _shared_limiters(redis_url: str, clock: FakeClock, n: int) -> tuple[aioredis.Redis, list[RedisRateLimiter]]:
    conn = aioredis.Redis.from_url(redis_url)
    prefix = f"issuer-test-{time.monotonic_ns()}:"
    return conn, [RedisRateLimiter(conn, prefix, clock) for _ in range(n)]


async def test_redis_limits_under_the_batch_divisor_are_exact_across_instances(redis_url: str) -> None:
    """Login-sized limits take a Redis round trip per hit: two instances admit exactly the limit."""
    clock = FakeClock(start=1_000_000.0)
    conn, (a, b) = await _shared_limiters(redis_url, clock, 2)
    try:
        allowed = [await lim.hit("login-user:alice", 10, 60) is None for _ in range(8) for lim in (a, b)]
        assert allowed.count(True) == 10
        clock.advance(60)
        assert await a.hit("login-user:alice", 10, 60) is None  # a new window
    finally:
        await conn.aclose()


async def test_high_redis_limits_are_counted_in_batches_within_the_documented_slack(redis_url: str) -> None:
    """limit 1,000: batches of 20 (BATCH_DIVISOR 50), so two instances admit at most 1,000 + 2 x 19
    per window, and Redis sees one round trip per batch instead of one per hit."""
    limit, instances = 1000, 2
    batch = limit // BATCH_DIVISOR
    clock = FakeClock(start=2_000_000.0)
    conn, limiters = await _shared_limiters(redis_url, clock, instances)
    try:
        calls = 0
        original = limiters[0]._add

        async def counted(key: str, window: int, slot: int, hits: int) -> int | None:
            nonlocal calls
            calls += 1
            return await original(key, window, slot, hits)

        limiters[0]._add = counted  # type: ignore[method-assign]
        results = [await lim.hit("token-client:c1", limit, 1) for _ in range(700) for lim in limiters]
        allowed = sum(r is None for r in results)
        assert limit <= allowed <= limit + instances * (batch - 1)
        assert all(0 < r <= 1 for r in results if r is not None)
        assert calls <= 700 // batch + 1  # one round trip per batch, and none once over the limit
        keys = [k async for k in conn.scan_iter(match=f"{limiters[0]._prefix}token-client:c1:*")]
        assert len(keys) == 1
        # Each instance flushes at most one hit it then refuses (the one that filled its last batch).
        shared = await conn.get(keys[0])
        assert shared is not None
        assert limit - instances * batch <= int(shared) <= allowed + instances
        clock.advance(1)
        assert await limiters[0].hit("token-client:c1", limit, 1) is None  # the next window starts afresh
    finally:
        await conn.aclose()
