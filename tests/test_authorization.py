"""Who may call our own protected endpoints (/admin, /account, /userinfo) and introspection, on
both backends: the token must be meant for us, and its client or user must still stand at
request time. See the README, "Who may call what"."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from tests.conftest import FAST, OPERATOR, FakeClock, assert_problem, make_client, running_app, services_of
from tests.users_helpers import PASSWORD, Client, client_auth

TOKEN = "/oauth2/token"
INTROSPECT = "/oauth2/introspect"
API = "https://api.example.com"
OTHER_API = "https://other.example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issuer_of(http: httpx.AsyncClient) -> str:
    url: str = services_of(http).settings.url
    return url


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


async def token_response(http: httpx.AsyncClient, client: Client, **form: str) -> httpx.Response:
    return await http.post(TOKEN, **client_auth(client, form))


async def client_token(http: httpx.AsyncClient, client: Client, **form: str) -> str:
    response = await token_response(http, client, grant_type="client_credentials", **form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def operator(http: httpx.AsyncClient, *extra_scopes: str) -> Client:
    return await make_client(http, name="operator", scopes=("issuer:admin", *extra_scopes))


async def introspect(http: httpx.AsyncClient, caller: Client, token: str) -> dict[str, Any]:
    response = await http.post(INTROSPECT, **client_auth(caller, {"token": token}))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def inspector(http: httpx.AsyncClient) -> Client:
    """A confidential client registered with issuer:introspect (and no audience of its own)."""
    return await make_client(http, name="inspector", scopes=("issuer:introspect",), audiences=())


async def user(http: httpx.AsyncClient, username: str, *roles: str) -> str:
    created = await services_of(http).ops.users.create(
        OPERATOR, NewUser(username, PASSWORD, f"{username}@example.com"), roles
    )
    return str(created.user_id)


async def app_client(http: httpx.AsyncClient, *, public: bool = False, scopes: tuple[str, ...] = ()) -> Client:
    """A first-party client allowed the password grant and issuer:admin (among others)."""
    return await make_client(
        http,
        name="console",
        grant_types=("password", "refresh_token"),
        scopes=scopes or ("read", "issuer:admin"),
        public=public,
    )


async def password_login(http: httpx.AsyncClient, client: Client, username: str, **form: str) -> httpx.Response:
    return await token_response(
        http, client, grant_type="password", username=username, password=PASSWORD, **form
    )


async def logged_in(http: httpx.AsyncClient, client: Client, username: str, **form: str) -> dict[str, Any]:
    response = await password_login(http, client, username, **form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- audience ----------------------------------------------------------------------------------


async def test_an_admin_token_is_minted_for_the_issuer_alone(http: httpx.AsyncClient) -> None:
    admin = await operator(http)
    token = await client_token(http, admin)
    assert claims_of(token)["aud"] == issuer_of(http)
    assert (await http.get("/admin/keys", headers=bearer(token))).status_code == 200


async def test_issuer_admin_with_another_resource_is_refused_at_the_token_endpoint(http: httpx.AsyncClient) -> None:
    admin = await operator(http, "read")
    refused = await token_response(
        http, admin, grant_type="client_credentials", scope="issuer:admin", resource=API
    )
    oauth_error(refused, 400, "invalid_target")
    both = await token_response(
        http, admin, grant_type="client_credentials", scope="issuer:admin read", resource=API
    )
    oauth_error(both, 400, "invalid_target")
    # both the issuer and an API as audiences: still a token a resource server could replay
    mixed = await http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "issuer:admin", "resource": [issuer_of(http), API]},
        auth=(admin[0], admin[1] or ""),
    )
    oauth_error(mixed, 400, "invalid_target")

    # with its default scope and an API resource, issuer:admin is simply left out (RFC 6749 §3.3)
    narrowed = await token_response(http, admin, grant_type="client_credentials", resource=API)
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "read"
    api_token = narrowed.json()["access_token"]
    assert claims_of(api_token)["aud"] == API and "issuer:admin" not in claims_of(api_token)["scope"]
    response = await http.get("/admin/keys", headers=bearer(api_token))
    assert response.status_code == 401, response.text


async def test_an_admin_scoped_token_for_another_audience_is_401_at_admin(http: httpx.AsyncClient) -> None:
    """Such a token cannot be minted any more, but one from before (or any future bug) must not work."""
    admin_id, _ = await operator(http)
    minted = await services_of(http).access_tokens.mint(
        subject=admin_id, client_id=admin_id, scope=("issuer:admin",), audience=(API,)
    )
    for method, path in (("GET", "/admin/keys"), ("GET", "/admin/clients"), ("POST", "/admin/clients")):
        response = await http.request(method, path, headers=bearer(minted.token), json={"name": "x"})
        assert response.status_code == 401, (path, response.text)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # and a token whose aud includes the issuer among others is accepted only when it names us
    both = await services_of(http).access_tokens.mint(
        subject=admin_id, client_id=admin_id, scope=("issuer:admin",), audience=(API, issuer_of(http))
    )
    assert (await http.get("/admin/keys", headers=bearer(both.token))).status_code == 200


async def test_any_client_may_name_the_issuer_as_resource(http: httpx.AsyncClient) -> None:
    service = await make_client(http, audiences=(API,))
    token = await client_token(http, service, resource=issuer_of(http))
    assert claims_of(token)["aud"] == issuer_of(http)
    # ...which grants nothing by itself: no issuer:admin, so 403 at /admin
    assert (await http.get("/admin/keys", headers=bearer(token))).status_code == 403


async def test_account_needs_a_token_meant_for_the_issuer(http: httpx.AsyncClient) -> None:
    await user(http, "alice")
    client = await app_client(http, scopes=("read", "openid"))
    for_api = (await logged_in(http, client, "alice", scope="read"))["access_token"]
    body = {"current_password": PASSWORD, "new_password": "another-password-1"}
    response = await http.post("/account/password", json=body, headers=bearer(for_api))
    oauth_error(response, 401, "invalid_token")
    response = await http.post("/account/deactivate", json={"password": PASSWORD}, headers=bearer(for_api))
    oauth_error(response, 401, "invalid_token")
    # an openid token for the API is good at /userinfo (OIDC Core §5.3), not at /account
    openid = (await logged_in(http, client, "alice", scope="openid read"))["access_token"]
    assert claims_of(openid)["aud"] == API
    oauth_error(await http.post("/account/password", json=body, headers=bearer(openid)), 401, "invalid_token")

    for_us = (await logged_in(http, client, "alice", resource=issuer_of(http)))["access_token"]
    assert (await http.post("/account/password", json=body, headers=bearer(for_us))).status_code == 204


async def test_userinfo_accepts_the_issuer_audience_or_the_openid_scope(http: httpx.AsyncClient) -> None:
    user_id = await user(http, "alice")
    client = await app_client(http, scopes=("read", "openid"))
    openid = (await logged_in(http, client, "alice", scope="openid read"))["access_token"]
    assert claims_of(openid)["aud"] == API
    response = await http.get("/userinfo", headers=bearer(openid))
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == user_id

    for_api = (await logged_in(http, client, "alice", scope="read"))["access_token"]
    oauth_error(await http.get("/userinfo", headers=bearer(for_api)), 401, "invalid_token")

    for_us = (await logged_in(http, client, "alice", scope="read", resource=issuer_of(http)))["access_token"]
    assert (await http.get("/userinfo", headers=bearer(for_us))).status_code == 200


# -- the principal at request time: clients -------------------------------------------------------


async def test_a_deleted_clients_admin_token_is_401_and_creates_nothing(http: httpx.AsyncClient) -> None:
    victim = await operator(http)
    token = await client_token(http, victim)
    other = await operator(http)
    other_token = await client_token(http, other)
    assert (await http.delete(f"/admin/clients/{victim[0]}", headers=bearer(other_token))).status_code == 204

    assert (await http.get("/admin/keys", headers=bearer(token))).status_code == 401
    created = await http.post("/admin/clients", json={"name": "backdoor", "grant_types": ["client_credentials"],
                                                      "scopes": ["issuer:admin"]}, headers=bearer(token))
    assert created.status_code == 401, created.text
    listed = (await http.get("/admin/clients", headers=bearer(other_token))).json()["items"]
    assert "backdoor" not in [c["name"] for c in listed]


async def test_a_client_that_lost_issuer_admin_loses_admin_at_once(http: httpx.AsyncClient) -> None:
    demoted = await operator(http, "read")
    token = await client_token(http, demoted)
    boss = await client_token(http, await operator(http))
    patched = await http.patch(f"/admin/clients/{demoted[0]}", json={"scopes": ["read"]}, headers=bearer(boss))
    assert patched.status_code == 200, patched.text
    response = await http.get("/admin/keys", headers=bearer(token))
    oauth_error(response, 403, "insufficient_scope")


async def test_a_disabled_client_is_refused_everywhere_at_once(http: httpx.AsyncClient) -> None:
    admin = await operator(http)
    boss = await client_token(http, admin)
    service = await make_client(http, name="service", audiences=(API,), scopes=("read", "issuer:admin"))
    service_admin_token = await client_token(http, service)
    service_api_token = await client_token(http, service, scope="read")
    app = await app_client(http)
    await user(http, "alice")
    alice_session = await logged_in(http, app, "alice", scope="read")
    watcher = await inspector(http)
    assert (await introspect(http, watcher, service_api_token))["active"] is True

    patched = await http.patch(f"/admin/clients/{service[0]}", json={"disabled": True}, headers=bearer(boss))
    assert patched.status_code == 200, patched.text
    assert patched.json()["disabled"] is True
    assert (await http.get(f"/admin/clients/{service[0]}", headers=bearer(boss))).json()["disabled"] is True
    assert_problem(
        await http.patch(f"/admin/clients/{service[0]}", json={"disabled": "yes"}, headers=bearer(boss)), 422
    )

    # authentication fails at the token, revocation and introspection endpoints
    oauth_error(await token_response(http, service, grant_type="client_credentials"), 401, "invalid_client")
    revoke = await http.post("/oauth2/revoke", **client_auth(service, {"token": service_api_token}))
    oauth_error(revoke, 401, "invalid_client")
    own = await http.post(INTROSPECT, **client_auth(service, {"token": service_api_token}))
    oauth_error(own, 401, "invalid_client")
    # its tokens are inactive and refused at /admin
    assert await introspect(http, watcher, service_api_token) == {"active": False}
    oauth_error(await http.get("/admin/keys", headers=bearer(service_admin_token)), 401, "invalid_token")

    # disabling the first-party app ends its users' tokens too, and their refresh
    assert (await http.patch(f"/admin/clients/{app[0]}", json={"disabled": True}, headers=bearer(boss))).is_success
    assert await introspect(http, watcher, alice_session["access_token"]) == {"active": False}
    refreshed = await token_response(
        http, app, grant_type="refresh_token", refresh_token=alice_session["refresh_token"]
    )
    oauth_error(refreshed, 401, "invalid_client")

    # enabled again: it authenticates and its unexpired tokens work again
    assert (await http.patch(f"/admin/clients/{service[0]}", json={"disabled": False}, headers=bearer(boss))).is_success
    assert (await introspect(http, watcher, service_api_token))["active"] is True
    assert (await token_response(http, service, grant_type="client_credentials")).status_code == 200
    audit = (await http.get("/admin/audit", headers=bearer(boss))).json()["items"]
    assert {"fields": ["disabled"], "disabled": True} in [e["detail"] for e in audit if e["target"] == service[0]]


# -- the principal at request time: users ----------------------------------------------------------


async def test_a_disabled_user_keeps_no_admin_or_account_access(http: httpx.AsyncClient) -> None:
    await user(http, "root", "admin")
    console = await app_client(http)
    root = await logged_in(http, console, "root", scope="issuer:admin")
    assert claims_of(root["access_token"])["aud"] == issuer_of(http)
    assert (await http.get("/admin/users", headers=bearer(root["access_token"]))).status_code == 200
    for_us = (await logged_in(http, console, "root", scope="read", resource=issuer_of(http)))["access_token"]
    for_api = (await logged_in(http, console, "root", scope="read"))["access_token"]
    watcher = await inspector(http)
    assert (await introspect(http, watcher, for_api))["active"] is True

    boss = await client_token(http, await operator(http))
    root_id = claims_of(for_api)["sub"]
    assert (await http.post(f"/admin/users/{root_id}/disable", headers=bearer(boss))).status_code == 200

    oauth_error(await http.get("/admin/users", headers=bearer(root["access_token"])), 401, "invalid_token")
    oauth_error(await http.get("/userinfo", headers=bearer(for_us)), 401, "invalid_token")
    body = {"current_password": PASSWORD, "new_password": "another-password-1"}
    oauth_error(await http.post("/account/password", json=body, headers=bearer(for_us)), 401, "invalid_token")
    assert await introspect(http, watcher, for_api) == {"active": False}
    assert await introspect(http, watcher, root["access_token"]) == {"active": False}

    assert (await http.post(f"/admin/users/{root_id}/enable", headers=bearer(boss))).status_code == 200
    assert (await introspect(http, watcher, for_api))["active"] is True


async def test_a_user_who_deactivates_herself_is_inactive_at_introspection(http: httpx.AsyncClient) -> None:
    await user(http, "alice")
    console = await app_client(http)
    for_us = (await logged_in(http, console, "alice", scope="read", resource=issuer_of(http)))["access_token"]
    for_api = (await logged_in(http, console, "alice", scope="read"))["access_token"]
    response = await http.post("/account/deactivate", json={"password": PASSWORD}, headers=bearer(for_us))
    assert response.status_code == 204, response.text
    assert await introspect(http, await inspector(http), for_api) == {"active": False}


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
async def test_a_plain_user_never_obtains_issuer_admin(http: httpx.AsyncClient, public: bool) -> None:
    mallory_id = await user(http, "mallory")  # role "user"
    console = await app_client(http, public=public)

    explicit = await password_login(http, console, "mallory", scope="issuer:admin read")
    oauth_error(explicit, 400, "invalid_scope")
    defaulted = await logged_in(http, console, "mallory")
    assert defaulted["scope"] == "read"
    assert "issuer:admin" not in claims_of(defaulted["access_token"])["scope"]

    refreshed = await token_response(
        http, console, grant_type="refresh_token", refresh_token=defaulted["refresh_token"], scope="issuer:admin"
    )
    oauth_error(refreshed, 400, "invalid_scope")
    renewed = await token_response(http, console, grant_type="refresh_token", refresh_token=defaulted["refresh_token"])
    assert renewed.status_code == 200, renewed.text  # the refused attempt consumed nothing
    assert "issuer:admin" not in claims_of(renewed.json()["access_token"])["scope"]

    # and with no issuer:admin in any token, she cannot promote herself
    for_us = (await logged_in(http, console, "mallory", resource=issuer_of(http)))["access_token"]
    promote = await http.put(f"/admin/users/{mallory_id}/roles", json={"roles": ["admin"]}, headers=bearer(for_us))
    oauth_error(promote, 403, "insufficient_scope")
    assert (await services_of(http).users.store.get_user(mallory_id)).roles == ("user",)


async def test_a_user_token_with_issuer_admin_but_no_admin_role_cannot_promote_herself(
    http: httpx.AsyncClient,
) -> None:
    """A token minted before the role rule (or by any future bug) is checked against the role now."""
    mallory_id = await user(http, "mallory")
    console = await app_client(http)
    minted = await services_of(http).access_tokens.mint(
        subject=mallory_id, client_id=console[0], scope=("issuer:admin",), audience=(issuer_of(http),),
        extra={"roles": ["user"]},
    )
    url = f"/admin/users/{mallory_id}/roles"
    promote = await http.put(url, json={"roles": ["admin"]}, headers=bearer(minted.token))
    oauth_error(promote, 403, "insufficient_scope")
    assert (await services_of(http).users.store.get_user(mallory_id)).roles == ("user",)


async def test_an_admin_user_gets_issuer_admin_even_through_a_public_client(http: httpx.AsyncClient) -> None:
    await user(http, "root", "admin")
    console = await app_client(http, public=True)
    session = await logged_in(http, console, "root")
    assert session["scope"] == "read issuer:admin"
    assert claims_of(session["access_token"])["aud"] == issuer_of(http)
    assert (await http.get("/admin/users", headers=bearer(session["access_token"]))).status_code == 200
    # explicitly with an API resource: refused, so no API ever holds this user's admin token
    oauth_error(await password_login(http, console, "root", scope="issuer:admin", resource=API), 400, "invalid_target")


async def test_a_user_who_loses_the_admin_role_loses_admin_at_once(http: httpx.AsyncClient) -> None:
    root_id = await user(http, "root", "admin")
    console = await app_client(http)
    session = await logged_in(http, console, "root")
    token = session["access_token"]
    assert (await http.get("/admin/keys", headers=bearer(token))).status_code == 200

    boss = await client_token(http, await operator(http))
    demoted = await http.put(f"/admin/users/{root_id}/roles", json={"roles": ["manager"]}, headers=bearer(boss))
    assert demoted.status_code == 200, demoted.text
    oauth_error(await http.get("/admin/keys", headers=bearer(token)), 403, "insufficient_scope")

    # the refresh that follows mints no issuer:admin, and the response says so
    renewed = await token_response(http, console, grant_type="refresh_token", refresh_token=session["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["scope"] == "read"
    assert "issuer:admin" not in claims_of(renewed.json()["access_token"])["scope"]


async def test_admin_role_follows_the_hierarchy_and_the_setting(start: Callable[..., Any]) -> None:
    async with start(roles=["user", "admin", "owner"], admin_role="admin") as http:
        await user(http, "olivia", "owner")  # above admin in the hierarchy
        session = await logged_in(http, await app_client(http), "olivia")
        assert (await http.get("/admin/keys", headers=bearer(session["access_token"]))).status_code == 200
    async with start(admin_role="superuser") as http:  # not a role at all: no user administers
        await user(http, "root", "admin")
        session = await logged_in(http, await app_client(http), "root")
        assert session["scope"] == "read"


# -- introspection is for resource servers -------------------------------------------------------


async def test_introspection_answers_only_callers_the_token_is_meant_for(http: httpx.AsyncClient) -> None:
    service = await make_client(http, name="service", audiences=(API,))
    token = await client_token(http, service)
    await user(http, "alice")
    alice_token = (await logged_in(http, await app_client(http), "alice", scope="read"))["access_token"]

    stranger = await make_client(http, name="stranger", audiences=(OTHER_API,))
    assert await introspect(http, stranger, token) == {"active": False}
    assert await introspect(http, stranger, alice_token) == {"active": False}
    no_audience = await make_client(http, name="bare", audiences=())
    assert await introspect(http, no_audience, alice_token) == {"active": False}

    api_server = await make_client(http, name="api", audiences=(OTHER_API, API))
    body = await introspect(http, api_server, alice_token)
    assert body["active"] is True and body["roles"] == ["user"]

    body = await introspect(http, await inspector(http), token)
    assert body["active"] is True and body["sub"] == service[0]

    # registering the issuer itself as an audience does not open the issuer's own tokens
    admin_token = await client_token(http, await operator(http))
    squatter = await make_client(http, name="squatter", audiences=(issuer_of(http),))
    assert await introspect(http, squatter, admin_token) == {"active": False}
    assert (await introspect(http, await inspector(http), admin_token))["active"] is True


async def active_at(http: httpx.AsyncClient, caller: Client, token: str) -> bool:
    return bool((await introspect(http, caller, token))["active"])


# -- other instances learn of changes ----------------------------------------------------------------


async def test_other_instances_drop_a_disabled_user_by_notification_or_by_expiry(
    database_url: str, make_settings: Callable[..., Any], clock: FakeClock, redis_url: str
) -> None:
    """Two instances on one database: with Redis, B hears ``user:<id>`` at once; without it,
    B's cached view of the user expires within seconds (the polling fallback)."""
    prefix = f"authz-{secrets.token_hex(4)}:"
    for shared in ({"redis_url": redis_url, "redis_prefix": prefix}, {}):
        settings = make_settings(database_url=database_url, **FAST, **shared)
        async with running_app(settings, clock) as a, running_app(settings, clock) as b:
            name = f"u{secrets.token_hex(3)}"
            user_id = await user(a, name)
            for_us = (await logged_in(a, await app_client(a), name, resource=settings.url))["access_token"]
            watcher = await inspector(a)

            assert await active_at(b, watcher, for_us)  # B now holds her state in its view
            boss = await client_token(a, await operator(a))
            assert (await a.post(f"/admin/users/{user_id}/disable", headers=bearer(boss))).status_code == 200
            assert await introspect(a, watcher, for_us) == {"active": False}
            if shared:
                for _ in range(250):
                    if not await active_at(b, watcher, for_us):
                        break
                    await asyncio.sleep(0.02)
            else:
                assert await active_at(b, watcher, for_us)  # not told: B's view is at most a few seconds old
                clock.advance(5)
            assert not await active_at(b, watcher, for_us)
            oauth_error(await b.get("/userinfo", headers=bearer(for_us)), 401, "invalid_token")


# -- the in-memory views stay bounded ---------------------------------------------------------------


async def test_made_up_client_ids_cannot_flush_the_client_cache(http: httpx.AsyncClient) -> None:
    """Anyone may send any client_id to the token endpoint; more made-up ids than the cache holds
    (10,000) must not evict the real clients (before: the whole cache was cleared)."""
    service = await make_client(http, name="service")
    await client_token(http, service)
    registry = services_of(http).clients
    assert service[0] in registry._cache
    for _ in range(100):  # through HTTP, as an attacker would ...
        response = await http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=(secrets.token_urlsafe(12), "guess")
        )
        assert response.status_code == 401
    for _ in range(10_001):  # ... and the same code path directly, for speed
        assert await registry.get(secrets.token_urlsafe(12)) is None
    assert service[0] in registry._cache
    assert len(registry._misses) <= 1000


async def test_warm_checks_read_no_database(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The standing of a token's client and user comes from the in-memory views once warm."""
    await user(http, "root", "admin")
    session = await logged_in(http, await app_client(http), "root")
    watcher = await inspector(http)
    assert (await introspect(http, watcher, session["access_token"]))["active"] is True
    store = services_of(http).store
    reads: list[str] = []
    for name in ("get_user", "get_client"):
        original = getattr(store, name)

        async def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            reads.append(_name)
            return await _original(*args)

        monkeypatch.setattr(store, name, counted)
    for _ in range(50):
        assert (await introspect(http, watcher, session["access_token"]))["active"] is True
        assert (await http.get("/admin/audit", headers=bearer(session["access_token"]))).status_code == 200
    assert reads == []
