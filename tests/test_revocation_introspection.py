"""RFC 7009 revocation and RFC 7662 introspection: what each kind of token does, what unknown
and foreign tokens do (nothing), client authentication, and durability across a restart."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import FakeClock, make_client, services_of
from tests.users_helpers import Client, client_auth, first_party, login, refresh


async def revoke(http: httpx.AsyncClient, client: Client, token: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token}
    if hint is not None:
        data["token_type_hint"] = hint
    return await http.post("/oauth2/revoke", **client_auth(client, data))


async def introspect(http: httpx.AsyncClient, client: Client, token: str, hint: str | None = None) -> dict[str, Any]:
    data = {"token": token}
    if hint is not None:
        data["token_type_hint"] = hint
    response = await http.post("/oauth2/introspect", **client_auth(client, data))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def assert_revoke_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""


def foreign_jwt(issuer: str) -> str:
    """A well-formed access token signed by a key that is not ours."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "someone",
        "exp": now + 600,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": "x",
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "not-our-key"})


# -- revocation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["newest", "consumed"])
async def test_revoking_a_refresh_token_revokes_its_whole_family(http: httpx.AsyncClient, which: str) -> None:
    client = await first_party(http)
    r0 = (await login(http, client))["refresh_token"]
    r1 = (await refresh(http, client, r0)).json()["refresh_token"]
    sibling = (await login(http, client))["refresh_token"]

    assert_revoke_ok(await revoke(http, client, r1 if which == "newest" else r0))

    for token in (r0, r1):
        response = await refresh(http, client, token)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
    assert (await introspect(http, client, r1))["active"] is False
    assert (await refresh(http, client, sibling)).status_code == 200


async def test_public_client_may_revoke_its_own_refresh_token(http: httpx.AsyncClient) -> None:
    client = await first_party(http, public=True)
    r0 = (await login(http, client))["refresh_token"]
    assert_revoke_ok(await revoke(http, client, r0))
    assert (await refresh(http, client, r0)).json()["error"] == "invalid_grant"


async def test_revoking_an_access_token_makes_it_inactive(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    tokens = await login(http, client)
    access = tokens["access_token"]
    assert (await introspect(http, client, access))["active"] is True

    assert_revoke_ok(await revoke(http, client, access))

    assert await introspect(http, client, access) == {"active": False}
    userinfo = await http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert userinfo.status_code == 401
    assert (await refresh(http, client, tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("refresh", "access_token"),
        ("access", "refresh_token"),
        ("refresh", "id_token"),
        ("access", "something-else"),
    ],
)
async def test_a_wrong_or_unknown_hint_still_revokes(http: httpx.AsyncClient, kind: str, hint: str) -> None:
    client = await first_party(http)
    tokens = await login(http, client)
    token = tokens["refresh_token"] if kind == "refresh" else tokens["access_token"]

    assert_revoke_ok(await revoke(http, client, token, hint))

    assert (await introspect(http, client, token))["active"] is False
    if kind == "refresh":
        assert (await refresh(http, client, token)).json()["error"] == "invalid_grant"


async def test_unknown_and_garbage_tokens_are_accepted_and_change_nothing(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    tokens = await login(http, client)
    garbage = ["nonsense", "a.b.c", "x" * 2000, foreign_jwt(services_of(http).settings.url), secrets.token_urlsafe(32)]

    for token in garbage:
        for hint in (None, "access_token", "refresh_token"):
            assert_revoke_ok(await revoke(http, client, token, hint))

    assert (await introspect(http, client, tokens["access_token"]))["active"] is True
    assert (await refresh(http, client, tokens["refresh_token"])).status_code == 200


async def test_another_clients_revocation_leaves_the_tokens_working(http: httpx.AsyncClient) -> None:
    owner = await first_party(http, "owner")
    stranger = await first_party(http, "stranger")
    tokens = await login(http, owner)

    for token in (tokens["refresh_token"], tokens["access_token"]):
        for hint in (None, "refresh_token", "access_token"):
            assert_revoke_ok(await revoke(http, stranger, token, hint))

    assert (await introspect(http, owner, tokens["access_token"]))["active"] is True
    assert (await introspect(http, owner, tokens["refresh_token"]))["active"] is True
    assert (await refresh(http, owner, tokens["refresh_token"])).status_code == 200


async def test_revocation_without_a_token_is_invalid_request(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    response = await http.post("/oauth2/revoke", **client_auth(client, {"token_type_hint": "access_token"}))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_revocation_requires_client_authentication(http: httpx.AsyncClient) -> None:
    client_id, _ = await first_party(http)
    tokens = await login(http, (client_id, _))

    anonymous = await http.post("/oauth2/revoke", data={"token": tokens["refresh_token"]})
    wrong_secret = await http.post(
        "/oauth2/revoke", data={"token": tokens["refresh_token"]}, auth=(client_id, "wrong-secret")
    )

    for response in (anonymous, wrong_secret):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
    assert (await refresh(http, (client_id, _), tokens["refresh_token"])).status_code == 200


async def test_revoked_access_token_stays_revoked_after_a_restart(start: Callable[..., Any]) -> None:
    async with start() as http:
        client = await first_party(http)
        tokens = await login(http, client)
        revoked, kept = tokens["access_token"], (await login(http, client))["access_token"]
        assert_revoke_ok(await revoke(http, client, revoked))
        assert_revoke_ok(await revoke(http, client, tokens["refresh_token"]))

    async with start() as http:
        assert await introspect(http, client, revoked) == {"active": False}
        assert (await introspect(http, client, kept))["active"] is True
        assert (await refresh(http, client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
        assert await services_of(http).store.is_revoked(jwt.decode(revoked, options={"verify_signature": False})["jti"])


# -- introspection --------------------------------------------------------------------------------


async def test_introspection_of_a_live_access_token_returns_its_claims(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    tokens = await login(http, client)
    user = await services_of(http).users.store.find_user("alice")
    resource_server = await make_client(http, name="api")

    body = await introspect(http, resource_server, tokens["access_token"])

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert body["sub"] == user.user_id
    assert body["client_id"] == client[0]
    assert body["scope"] == "read write"
    assert body["roles"] == ["user"]
    assert body["iss"] == services_of(http).settings.url
    for name in ("exp", "iat", "jti", "aud"):
        assert body[name] == claims[name]


async def test_introspection_of_a_client_credentials_token(http: httpx.AsyncClient) -> None:
    client = await make_client(http)
    token = (await http.post("/oauth2/token", **client_auth(client, {"grant_type": "client_credentials"}))).json()[
        "access_token"
    ]
    body = await introspect(http, client, token)
    assert body["active"] is True and body["sub"] == client[0] and "roles" not in body


async def test_expired_access_token_is_inactive(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await first_party(http)
    access = (await login(http, client))["access_token"]
    ttl = services_of(http).settings.access_token_ttl

    clock.advance(ttl - 1)
    assert (await introspect(http, client, access))["active"] is True
    clock.advance(1)
    assert await introspect(http, client, access) == {"active": False}


async def test_unknown_tokens_are_inactive(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    await login(http, client)
    for token in ("nonsense", "a.b.c", secrets.token_urlsafe(43), foreign_jwt(services_of(http).settings.url)):
        for hint in (None, "access_token", "refresh_token"):
            assert await introspect(http, client, token, hint) == {"active": False}


async def test_token_signed_by_a_revoked_key_is_inactive(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    access = (await login(http, client))["access_token"]
    kid = jwt.get_unverified_header(access)["kid"]
    services = services_of(http)

    await services.keys.revoke(kid)
    await services.keyring.refresh()

    assert await introspect(http, client, access) == {"active": False}
    jwks = (await http.get("/.well-known/jwks.json")).json()
    assert kid not in {k["kid"] for k in jwks["keys"]}
    fresh = (await login(http, client))["access_token"]
    assert jwt.get_unverified_header(fresh)["kid"] != kid
    assert (await introspect(http, client, fresh))["active"] is True


async def test_public_client_may_not_introspect(http: httpx.AsyncClient) -> None:
    client = await first_party(http, public=True)
    tokens = await login(http, client)
    response = await http.post("/oauth2/introspect", data={"token": tokens["access_token"], "client_id": client[0]})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "active" not in response.json()


async def test_introspection_requires_client_authentication(http: httpx.AsyncClient) -> None:
    client_id, secret = await first_party(http)
    tokens = await login(http, (client_id, secret))
    attempts: tuple[dict[str, Any], ...] = ({}, {"auth": (client_id, "wrong")})
    for kwargs in attempts:
        response = await http.post("/oauth2/introspect", data={"token": tokens["access_token"]}, **kwargs)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


async def test_introspection_without_a_token_is_invalid_request(http: httpx.AsyncClient) -> None:
    client = await first_party(http)
    response = await http.post("/oauth2/introspect", **client_auth(client, {"token_type_hint": "access_token"}))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_refresh_token_introspection_is_active_only_for_its_own_client(http: httpx.AsyncClient) -> None:
    owner = await first_party(http, "owner")
    stranger = await first_party(http, "stranger")
    r0 = (await login(http, owner))["refresh_token"]
    user = await services_of(http).users.store.find_user("alice")

    mine = await introspect(http, owner, r0, "refresh_token")
    assert mine["active"] is True
    assert mine["token_type"] == "refresh_token"
    assert mine["client_id"] == owner[0]
    assert mine["sub"] == user.user_id
    assert mine["scope"] == "read write"
    assert await introspect(http, owner, r0) == mine

    assert await introspect(http, stranger, r0) == {"active": False}
    assert await introspect(http, stranger, r0, "refresh_token") == {"active": False}

    r1 = (await refresh(http, owner, r0)).json()["refresh_token"]
    assert await introspect(http, owner, r0) == {"active": False}
    assert (await introspect(http, owner, r1))["active"] is True
