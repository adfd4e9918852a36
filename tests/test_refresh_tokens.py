"""grant_type=refresh_token (RFC 6749 §6, RFC 9700 §4.14.2): rotation, scope narrowing, client
binding, the grace retry, reuse detection, expiry, and concurrent refreshes of one token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import OPERATOR, FakeClock, services_of
from tests.users_helpers import Client, first_party, login, refresh


async def refreshed(http: httpx.AsyncClient, client: Client, token: str, **extra: str) -> str:
    response = await refresh(http, client, token, **extra)
    assert response.status_code == 200, response.text
    successor: str = response.json()["refresh_token"]
    return successor


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


async def introspect(http: httpx.AsyncClient, client: Client, token: str) -> dict[str, Any]:
    client_id, secret = client
    assert secret is not None
    response = await http.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def reuse_count(http: httpx.AsyncClient) -> float:
    return services_of(http).metrics.registry.get_sample_value("issuer_refresh_reuse_detected_total") or 0.0


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_rotation_issues_a_new_refresh_token_and_consumes_the_old(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    tokens = await login(http, client)
    r0 = tokens["refresh_token"]
    assert (await introspect(http, client, r0))["active"] is True

    response = await refresh(http, client, r0)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    r1 = body["refresh_token"]
    assert r1 != r0
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    new_claims = claims(body["access_token"])
    assert new_claims["jti"] != claims(tokens["access_token"])["jti"]
    assert new_claims["sub"] == claims(tokens["access_token"])["sub"]
    assert new_claims["roles"] == ["user"]
    assert (await introspect(http, client, r0))["active"] is False
    assert (await introspect(http, client, r1))["active"] is True
    found = await services_of(http).refresh_tokens.lookup(r0)
    assert found is not None and found[0].consumed_at is not None


async def test_a_chain_of_rotations_keeps_working(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await first_party(http, public=True)
    token = (await login(http, client))["refresh_token"]
    seen = {token}
    for _ in range(5):
        clock.advance(30)
        token = await refreshed(http, client, token)
        seen.add(token)
    assert len(seen) == 6


async def test_scope_may_narrow_and_the_refresh_token_keeps_the_original_scope(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]

    narrowed = await refresh(http, client, r0, scope="read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "read"
    assert claims(narrowed.json()["access_token"])["scope"] == "read"
    r1 = narrowed.json()["refresh_token"]
    assert (await introspect(http, client, r1))["scope"] == "read write"

    full = await refresh(http, client, r1)
    assert full.status_code == 200, full.text
    assert full.json()["scope"] == "read write"


@pytest.mark.parametrize("wider", ["read write", "write", "read admin"])
async def test_widening_scope_is_invalid_scope_and_consumes_nothing(http: httpx.AsyncClient, wider: str) -> None:
    client = await first_party(http)
    r0 = (await login(http, client, scope="read"))["refresh_token"]

    response = await refresh(http, client, r0, scope=wider)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_scope"
    assert (await introspect(http, client, r0))["active"] is True
    again = await refresh(http, client, r0)
    assert again.status_code == 200, again.text
    assert again.json()["scope"] == "read"


async def test_resource_outside_the_grant_is_invalid_target_and_consumes_nothing(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]

    response = await refresh(http, client, r0, resource="https://other.example.com")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert (await refresh(http, client, r0)).status_code == 200


async def test_refresh_token_is_bound_to_its_client_and_a_stranger_does_not_revoke_it(http: httpx.AsyncClient) -> None:
    owner = await first_party(http, "owner")
    stranger = await first_party(http, "stranger")
    public_stranger = await first_party(http, "public-stranger", public=True)
    r0 = (await login(http, owner))["refresh_token"]
    reuse_before = reuse_count(http)

    assert_invalid_grant(await refresh(http, stranger, r0))
    assert_invalid_grant(await refresh(http, public_stranger, r0))

    assert reuse_count(http) == reuse_before
    assert (await introspect(http, owner, r0))["active"] is True
    r1 = await refreshed(http, owner, r0)
    assert (await introspect(http, owner, r1))["active"] is True


@pytest.mark.parametrize("delay", [0, 5, 10])
async def test_a_retry_within_the_grace_window_returns_the_same_successor(
    http: httpx.AsyncClient, clock: FakeClock, delay: float
) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]
    first = await refresh(http, client, r0)
    assert first.status_code == 200
    r1 = first.json()["refresh_token"]

    clock.advance(delay)
    retry = await refresh(http, client, r0)

    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == r1
    assert claims(retry.json()["access_token"])["jti"] != claims(first.json()["access_token"])["jti"]
    assert reuse_count(http) == 0
    r2 = await refreshed(http, client, r1)
    assert r2 not in (r0, r1)


async def test_reuse_after_the_grace_window_revokes_the_whole_family(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]
    r1 = await refreshed(http, client, r0)
    other_family = (await login(http, client))["refresh_token"]

    clock.advance(11)
    assert_invalid_grant(await refresh(http, client, r0))

    assert reuse_count(http) == 1
    assert_invalid_grant(await refresh(http, client, r1))
    assert (await introspect(http, client, r1))["active"] is False
    assert (await refresh(http, client, other_family)).status_code == 200


async def test_presenting_an_older_token_after_its_successor_was_used_is_reuse(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]
    r1 = await refreshed(http, client, r0)
    r2 = await refreshed(http, client, r1)

    assert_invalid_grant(await refresh(http, client, r0))

    assert reuse_count(http) == 1
    assert_invalid_grant(await refresh(http, client, r2))
    assert_invalid_grant(await refresh(http, client, r1))


async def test_grace_zero_makes_any_second_use_reuse(start: Callable[..., Any]) -> None:
    async with start(refresh_reuse_grace=0) as http:
        client = await first_party(http)
        r0 = (await login(http, client))["refresh_token"]
        r1 = await refreshed(http, client, r0)

        assert_invalid_grant(await refresh(http, client, r0))

        assert reuse_count(http) == 1
        assert_invalid_grant(await refresh(http, client, r1))


async def test_reuse_is_counted_once_per_detection(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await first_party(http)
    for _ in range(2):
        r0 = (await login(http, client))["refresh_token"]
        await refreshed(http, client, r0)
        clock.advance(11)
        assert_invalid_grant(await refresh(http, client, r0))
    assert reuse_count(http) == 2


async def test_unknown_or_garbage_refresh_token_is_invalid_grant(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    await login(http, client)
    for garbage in ("not-a-token", "x" * 600, "a.b.c"):
        assert_invalid_grant(await refresh(http, client, garbage))
    assert reuse_count(http) == 0


async def test_idle_refresh_token_expires(start: Callable[..., Any], clock: FakeClock) -> None:
    async with start(refresh_token_idle_ttl=120, refresh_token_absolute_ttl=3600) as http:
        client = await first_party(http)
        r0 = (await login(http, client))["refresh_token"]
        clock.advance(119)
        r1 = await refreshed(http, client, r0)
        clock.advance(119)
        r2 = await refreshed(http, client, r1)

        clock.advance(121)
        assert_invalid_grant(await refresh(http, client, r2))
        assert (await introspect(http, client, r2))["active"] is False


async def test_family_ends_at_its_absolute_lifetime_however_often_it_is_used(
    start: Callable[..., Any], clock: FakeClock
) -> None:
    async with start(refresh_token_idle_ttl=300, refresh_token_absolute_ttl=600) as http:
        client = await first_party(http)
        began = clock()
        r0 = (await login(http, client))["refresh_token"]
        clock.advance(250)
        r1 = await refreshed(http, client, r0)
        clock.advance(250)
        r2 = await refreshed(http, client, r1)
        details = await introspect(http, client, r2)
        assert details["active"] is True
        assert details["exp"] == int(began + 600)

        clock.advance(101)
        assert_invalid_grant(await refresh(http, client, r2))


async def test_refresh_reflects_the_users_current_roles(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]
    user = await services_of(http).users.store.find_user("alice")
    await services_of(http).ops.users.set_roles(OPERATOR, user.user_id, ["manager"])

    response = await refresh(http, client, r0)
    assert response.status_code == 200, response.text
    assert claims(response.json()["access_token"])["roles"] == ["manager", "user"]


@pytest.mark.parametrize("public", [False, True])
async def test_concurrent_refreshes_of_one_token_yield_exactly_one_successor(
    http: httpx.AsyncClient, public: bool
) -> None:
    client = await first_party(http, public=public)
    r0 = (await login(http, client))["refresh_token"]

    responses = await asyncio.gather(*(refresh(http, client, r0) for _ in range(20)))

    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    assert r0 not in successors
    assert reuse_count(http) == 0
    (r1,) = successors
    r2 = await refreshed(http, client, r1)
    assert r2 != r1
