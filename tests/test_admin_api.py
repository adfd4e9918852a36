"""The management API under /admin, on both backends: authorisation, keys, clients, users, audit.

An administrator is an OAuth client of this issuer holding the ``issuer:admin`` scope; it
calls the API with an access token it got from the token endpoint (client_credentials).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import OPERATOR, FakeClock, assert_problem, make_client, services_of

TOKEN = "/oauth2/token"
# Audit actors of the scene a test starts from: the first start's keys, the fixtures' clients.
SETUP = {"scheduler", str(OPERATOR)}
JWKS = "/.well-known/jwks.json"
API = "https://api.example.com"
KEY_FIELDS = {"kid", "alg", "state", "created_at", "published_at", "activated_at", "retired_at", "next_transition"}
CLIENT_FIELDS = {"client_id", "name", "type", "grant_types", "scopes", "audiences", "created_at", "updated_at"}


@dataclass
class Admin:
    client_id: str
    secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def client_token(http: httpx.AsyncClient, client_id: str, secret: str, **form: str) -> str:
    response = await http.post(TOKEN, data={"grant_type": "client_credentials", **form}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Admin:
    # issuer:introspect: the operator may also introspect any token (RFC 7662 §4 otherwise limits it)
    client_id, secret = await make_client(client, name="operator", scopes=("issuer:admin", "issuer:introspect"))
    assert secret is not None
    return Admin(client_id, secret, await client_token(client, client_id, secret))


async def refresh_admin_token(http: httpx.AsyncClient, admin: Admin) -> None:
    admin.token = await client_token(http, admin.client_id, admin.secret)


def min_publish(http: httpx.AsyncClient) -> float:
    s = services_of(http).settings
    return float(s.jwks_max_age + s.clock_skew + s.keyring_refresh_interval)


async def list_keys(http: httpx.AsyncClient, admin: Admin) -> list[dict[str, Any]]:
    response = await http.get("/admin/keys", headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def by_state(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for item in items:
        result.setdefault(item["state"], []).append(item["kid"])
    return result


def ts(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


async def jwks_kids(http: httpx.AsyncClient) -> set[str]:
    response = await http.get(JWKS)
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


async def introspect(http: httpx.AsyncClient, admin: Admin, token: str) -> dict[str, Any]:
    response = await http.post("/oauth2/introspect", data={"token": token}, auth=(admin.client_id, admin.secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- authorisation ---------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys/rotate"),
    ("POST", "/admin/keys/some-kid/revoke"),
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients"),
    ("GET", "/admin/clients/some-client"),
    ("PATCH", "/admin/clients/some-client"),
    ("DELETE", "/admin/clients/some-client"),
    ("POST", "/admin/clients/some-client/secret"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users/some-user"),
    ("PUT", "/admin/users/some-user/roles"),
    ("POST", "/admin/users/some-user/disable"),
    ("POST", "/admin/users/some-user/enable"),
    ("POST", "/admin/users/some-user/sessions/revoke"),
    ("GET", "/admin/users/some-user/sessions"),
    ("DELETE", "/admin/users/some-user/sessions"),
    ("DELETE", "/admin/users/some-user/sessions/some-session"),
    ("GET", "/admin/audit"),
]


async def test_every_admin_route_requires_a_bearer_token(client: httpx.AsyncClient, admin: Admin) -> None:
    for method, path in ADMIN_ROUTES:
        response = await client.request(method, path, json={} if method in ("POST", "PATCH", "PUT") else None)
        assert response.status_code == 401, (method, path, response.text)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer "), challenge
        assert response.json()["error"] == "invalid_token"
    # nothing was changed or audited by the refused calls (unverified tokens are never audited)
    audit = await client.get("/admin/audit", headers=admin.headers)
    # only the setup: the first start's keys and the admin fixture's client
    assert [e["action"] for e in audit.json()["items"]] == ["clients.create", "keys.initial"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer a.b.c"],
)
async def test_bad_bearer_token_is_401(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/admin/keys", headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_forged_token_signed_by_another_key_is_401(client: httpx.AsyncClient, admin: Admin) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    claims = jwt.decode(admin.token, options={"verify_signature": False})
    header = jwt.get_unverified_header(admin.token)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"], "typ": "at+jwt"})
    response = await client.get("/admin/keys", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_expired_and_revoked_admin_tokens_are_401(
    client: httpx.AsyncClient, admin: Admin, clock: FakeClock
) -> None:
    assert (await client.get("/admin/keys", headers=admin.headers)).status_code == 200
    revoked = await client.post("/oauth2/revoke", data={"token": admin.token}, auth=(admin.client_id, admin.secret))
    assert revoked.status_code == 200
    response = await client.get("/admin/keys", headers=admin.headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

    await refresh_admin_token(client, admin)
    assert (await client.get("/admin/keys", headers=admin.headers)).status_code == 200
    clock.advance(services_of(client).settings.access_token_ttl + 1)
    response = await client.get("/admin/keys", headers=admin.headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_without_admin_scope_is_403_insufficient_scope(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, scopes=("read", "write", "issuer:admin"))
    assert secret is not None
    # the same client, but a token that was narrowed to scopes without issuer:admin (both tokens
    # are meant for the issuer: one meant for another audience is 401, see test_authorization)
    issuer = services_of(client).settings.url
    narrow = await client_token(client, client_id, secret, scope="read write", resource=issuer)
    other_id, other_secret = await make_client(client, scopes=("read",))
    assert other_secret is not None
    plain = await client_token(client, other_id, other_secret, resource=issuer)
    for token in (narrow, plain):
        for method, path in ADMIN_ROUTES:
            response = await client.request(
                method, path, headers={"Authorization": f"Bearer {token}"},
                json={} if method in ("POST", "PATCH", "PUT") else None,
            )
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"] == "insufficient_scope"
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ")
            assert 'error="insufficient_scope"' in challenge and 'scope="issuer:admin"' in challenge


async def test_admin_role_of_a_user_is_not_the_admin_scope(client: httpx.AsyncClient) -> None:
    """A user with role ``admin`` logging in gets no management rights: only the scope counts."""
    reg = await client.post("/register", json={"username": "root-user", "password": "correct horse battery"})
    assert reg.status_code == 201, reg.text
    await services_of(client).ops.users.set_roles(OPERATOR, reg.json()["user_id"], ["admin"])
    cid, csecret = await make_client(client, grant_types=("password",), scopes=("read",))
    assert csecret is not None
    login = await client.post(
        TOKEN,
        data={
            "grant_type": "password",
            "username": "root-user",
            "password": "correct horse battery",
            "resource": services_of(client).settings.url,
        },
        auth=(cid, csecret),
    )
    assert login.status_code == 200, login.text
    response = await client.get("/admin/users", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


# -- keys ------------------------------------------------------------------------------------


async def test_list_keys_describes_the_schedule(client: httpx.AsyncClient, admin: Admin, clock: FakeClock) -> None:
    response = await client.get("/admin/keys", headers=admin.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    items = response.json()["items"]
    assert len(items) == 2
    for item in items:
        assert KEY_FIELDS <= set(item), item
        assert item["alg"] == services_of(client).settings.signing_alg
        assert ts(item["created_at"]) == pytest.approx(clock.now, abs=1)
        assert item["published_at"] == item["created_at"]
        assert item["retired_at"] is None
    states = by_state(items)
    assert set(states) == {"active", "pending"}
    assert len(states["active"]) == len(states["pending"]) == 1
    active = next(i for i in items if i["state"] == "active")
    pending = next(i for i in items if i["state"] == "pending")
    assert ts(active["activated_at"]) == pytest.approx(clock.now, abs=1)
    assert pending["activated_at"] is None
    # no automatic rotation configured: the active key retires only on request
    assert active["next_transition"] == {"to": "retired", "at": None}
    # …and the pending key becomes active at that manual rotation, allowed from earliest_activation on
    assert pending["next_transition"] == {"to": "active", "at": None}
    assert ts(pending["earliest_activation"]) == pytest.approx(clock.now + min_publish(client), abs=1)
    # the listing agrees with what is published and what signs
    assert await jwks_kids(client) == {active["kid"], pending["kid"]}
    assert jwt.get_unverified_header(admin.token)["kid"] == active["kid"]


async def test_rotate_waits_until_the_pending_key_is_in_every_cache(
    client: httpx.AsyncClient, admin: Admin, clock: FakeClock
) -> None:
    before = by_state(await list_keys(client, admin))
    old_active, old_pending = before["active"][0], before["pending"][0]
    pending_created = clock.now

    early = await client.post("/admin/keys/rotate", headers=admin.headers)
    body = assert_problem(early, 409)
    retry_after = early.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    safe_at = pending_created + min_publish(client)
    assert body["errors"]["safe_at"] == int(safe_at)
    # retrying after Retry-After is late enough, and Retry-After is not needlessly long
    assert clock.now + int(retry_after) >= safe_at
    assert int(retry_after) <= min_publish(client) + 1
    assert by_state(await list_keys(client, admin)) == before

    # one second short of max_age + skew + refresh interval: still refused
    clock.advance(min_publish(client) - 1)
    almost = await client.post("/admin/keys/rotate", headers=admin.headers)
    assert_problem(almost, 409)
    retry_after = almost.headers["retry-after"]
    assert 1 <= int(retry_after) <= 2

    clock.advance(int(retry_after))
    done = await client.post("/admin/keys/rotate", headers=admin.headers)
    assert done.status_code == 200, done.text
    after = by_state(done.json()["items"])
    assert after["active"] == [old_pending]
    assert after["retired"] == [old_active]
    assert len(after["pending"]) == 1 and after["pending"][0] not in (old_active, old_pending)
    retired = next(i for i in done.json()["items"] if i["state"] == "retired")
    assert ts(retired["retired_at"]) == pytest.approx(clock.now, abs=1)
    assert retired["next_transition"]["to"] == "removed"
    settings = services_of(client).settings
    assert ts(retired["next_transition"]["at"]) == pytest.approx(
        clock.now + settings.access_token_ttl + settings.clock_skew, abs=1
    )

    # the new active key signs; the retired one stays published for the tokens it signed
    token = await client_token(client, admin.client_id, admin.secret)
    assert jwt.get_unverified_header(token)["kid"] == old_pending
    assert await jwks_kids(client) == {old_active, old_pending, after["pending"][0]}
    assert (await introspect(client, admin, admin.token))["active"] is True

    # the freshly published pending key is not yet safe either
    again = await client.post("/admin/keys/rotate", headers=admin.headers)
    assert_problem(again, 409)


async def test_forced_rotation_happens_at_once(client: httpx.AsyncClient, admin: Admin) -> None:
    before = by_state(await list_keys(client, admin))
    response = await client.post("/admin/keys/rotate", params={"force": "true"}, headers=admin.headers)
    assert response.status_code == 200, response.text
    after = by_state(response.json()["items"])
    assert after["active"] == before["pending"]
    assert after["retired"] == before["active"]
    assert len(after["pending"]) == 1
    token = await client_token(client, admin.client_id, admin.secret)
    assert jwt.get_unverified_header(token)["kid"] == before["pending"][0]

    bad = await client.post("/admin/keys/rotate", params={"force": "yes"}, headers=admin.headers)
    assert_problem(bad, 400)


async def test_revoke_key_unpublishes_it_and_a_new_key_signs_at_once(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    keys = by_state(await list_keys(client, admin))
    compromised, pending = keys["active"][0], keys["pending"][0]
    svc_id, svc_secret = await make_client(client, name="svc")
    assert svc_secret is not None
    victim = await client_token(client, svc_id, svc_secret)
    assert jwt.get_unverified_header(victim)["kid"] == compromised
    assert (await introspect(client, admin, victim))["active"] is True

    response = await client.post(f"/admin/keys/{compromised}/revoke", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert by_state(response.json()["items"])["revoked"] == [compromised]
    assert compromised not in await jwks_kids(client)

    # everything it signed is dead, including the admin's own token
    assert (await introspect(client, admin, victim))["active"] is False
    assert (await client.get("/admin/keys", headers=admin.headers)).status_code == 401

    fresh = await client_token(client, svc_id, svc_secret)
    fresh_kid = jwt.get_unverified_header(fresh)["kid"]
    assert fresh_kid != compromised
    assert fresh_kid == pending  # the pending key was already published, so it signs now
    assert (await introspect(client, admin, fresh))["active"] is True
    await refresh_admin_token(client, admin)
    items = await list_keys(client, admin)
    revoked = next(i for i in items if i["kid"] == compromised)
    assert revoked["state"] == "revoked"
    assert revoked["published_at"] is None
    assert revoked["revoked_at"] is not None
    states = by_state(items)
    assert states["active"] == [pending]
    assert len(states["pending"]) == 1 and states["pending"][0] not in (compromised, pending)
    assert await jwks_kids(client) == {pending, states["pending"][0]}

    # unknown or already revoked kids are 404
    for kid in ("no-such-kid", compromised):
        assert_problem(await client.post(f"/admin/keys/{kid}/revoke", headers=admin.headers), 404)


async def test_revoking_the_key_that_signed_the_callers_token(client: httpx.AsyncClient, admin: Admin) -> None:
    """The usual emergency: the active key leaked, and the operator's fresh token was signed by it.
    The revocation must be answered as done (200 and the new schedule), not 401: a 401 tells the
    operator the call failed although the key was revoked and the action audited."""
    compromised = jwt.get_unverified_header(admin.token)["kid"]
    response = await client.post(f"/admin/keys/{compromised}/revoke", headers=admin.headers)
    # the action itself took effect and was audited either way
    assert compromised not in await jwks_kids(client)
    states = {k.kid: k.state.value for k in await services_of(client).store.list_keys()}
    assert states[compromised] == "revoked"
    audit = await services_of(client).store.list_audit(limit=10)
    assert [(e.action, e.target) for e in audit if e.actor not in SETUP] == [("keys.revoke", compromised)]
    assert response.status_code == 200, response.text
    listed = by_state(response.json()["items"])
    assert listed["revoked"] == [compromised]
    assert len(listed["active"]) == len(listed["pending"]) == 1


async def test_revoke_pending_key_replaces_it(client: httpx.AsyncClient, admin: Admin) -> None:
    keys = by_state(await list_keys(client, admin))
    response = await client.post(f"/admin/keys/{keys['pending'][0]}/revoke", headers=admin.headers)
    assert response.status_code == 200, response.text
    after = by_state(response.json()["items"])
    assert after["active"] == keys["active"]
    assert len(after["pending"]) == 1 and after["pending"] != keys["pending"]
    assert after["revoked"] == keys["pending"]
    assert keys["pending"][0] not in await jwks_kids(client)


# -- clients ---------------------------------------------------------------------------------


async def create_client(http: httpx.AsyncClient, admin: Admin, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {
        "name": "billing-service",
        "grant_types": ["client_credentials"],
        "scopes": ["read", "write"],
        "audiences": [API],
    }
    payload.update(body)
    return await http.post("/admin/clients", json=payload, headers=admin.headers)


async def test_create_client_shows_the_secret_once_and_it_works(client: httpx.AsyncClient, admin: Admin) -> None:
    response = await create_client(client, admin)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert CLIENT_FIELDS <= set(created)
    assert created["type"] == "confidential"
    assert created["grant_types"] == ["client_credentials"]
    assert created["scopes"] == ["read", "write"]
    assert created["audiences"] == [API]
    secret = created["client_secret"]
    assert isinstance(secret, str) and len(secret) >= 32

    token = await client_token(client, created["client_id"], secret, scope="read")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["client_id"] == created["client_id"] and claims["aud"] == API

    shown = await client.get(f"/admin/clients/{created['client_id']}", headers=admin.headers)
    assert shown.status_code == 200
    assert "client_secret" not in shown.json() and secret not in shown.text
    listing = await client.get("/admin/clients", headers=admin.headers)
    assert secret not in listing.text and "secret" not in {k for c in listing.json()["items"] for k in c}

    public = await create_client(client, admin, name="spa", public=True, grant_types=["password", "refresh_token"])
    assert public.status_code == 201, public.text
    assert public.json()["type"] == "public"
    assert "client_secret" not in public.json()


async def test_create_and_patch_a_browser_client(client: httpx.AsyncClient, admin: Admin) -> None:
    response = await create_client(
        client,
        admin,
        name="web app",
        public=True,
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["https://app.example.com/cb", "http://127.0.0.1/cb"],
        post_logout_redirect_uris=["https://app.example.com/"],
        first_party=True,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["redirect_uris"] == ["https://app.example.com/cb", "http://127.0.0.1/cb"]
    assert created["post_logout_redirect_uris"] == ["https://app.example.com/"]
    assert created["first_party"] is True and created["type"] == "public"
    url = f"/admin/clients/{created['client_id']}"
    patched = await client.patch(url, json={"first_party": False, "redirect_uris": []}, headers=admin.headers)
    assert_problem(patched, 422)  # authorization_code needs a redirect URI
    patched = await client.patch(
        url, json={"first_party": False, "redirect_uris": ["https://app.example.com/cb2"]}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    shown = (await client.get(url, headers=admin.headers)).json()
    assert shown["first_party"] is False and shown["redirect_uris"] == ["https://app.example.com/cb2"]


async def test_list_clients_paginates(client: httpx.AsyncClient, admin: Admin) -> None:
    created = set()
    for n in range(5):
        response = await create_client(client, admin, name=f"svc-{n}")
        assert response.status_code == 201
        created.add(response.json()["client_id"])
    everyone = created | {admin.client_id}

    seen: list[str] = []
    after: str | None = ""
    pages = 0
    while after is not None and pages < 10:
        params = {"limit": "2"} | ({"after": after} if after else {})
        page = await client.get("/admin/clients", params=params, headers=admin.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen.extend(c["client_id"] for c in body["items"])
        after = body["next"]
        pages += 1
    assert pages == 4  # 6 clients in pages of 2, plus the empty page that ends it
    assert len(seen) == len(set(seen)) == len(everyone)
    assert set(seen) == everyone
    assert seen == sorted(seen)

    whole = await client.get("/admin/clients", params={"limit": "500"}, headers=admin.headers)
    assert [c["client_id"] for c in whole.json()["items"]] == seen
    assert whole.json()["next"] is None
    for bad in ("0", "501", "-1", "ten"):
        assert_problem(await client.get("/admin/clients", params={"limit": bad}, headers=admin.headers), 400)


async def test_get_and_patch_client(client: httpx.AsyncClient, admin: Admin, clock: FakeClock) -> None:
    created = (await create_client(client, admin, scopes=["read"])).json()
    cid, secret = created["client_id"], created["client_secret"]
    assert_problem(await client.get("/admin/clients/no-such-client", headers=admin.headers), 404)

    # a cached client is not served stale after an update on this instance
    assert (
        await client.post(TOKEN, data={"grant_type": "client_credentials", "scope": "write"}, auth=(cid, secret))
    ).status_code == 400
    clock.advance(10)
    response = await client.patch(
        f"/admin/clients/{cid}", json={"name": "renamed", "scopes": ["read", "write", "read"]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "renamed"
    assert updated["scopes"] == ["read", "write"]
    assert updated["updated_at"] == int(clock.now) and updated["created_at"] == created["created_at"]
    shown = (await client.get(f"/admin/clients/{cid}", headers=admin.headers)).json()
    assert shown == updated
    await client_token(client, cid, secret, scope="write")

    body: dict[str, Any]
    for body in (
        {"grant_types": ["implicit"]},
        {"grant_types": "client_credentials"},
        {"grant_types": []},
        {"scopes": [1, 2]},
        {"scopes": ["bad\"scope"]},
        {"audiences": ["not a uri"]},
        {"name": 42},
        {"name": ""},
        {"client_secret": "chosen-by-me"},
        {"client_id": "other"},
    ):
        bad = await client.patch(f"/admin/clients/{cid}", json=body, headers=admin.headers)
        assert_problem(bad, 422)
    assert (await client.get(f"/admin/clients/{cid}", headers=admin.headers)).json() == updated
    assert_problem(await client.patch("/admin/clients/no-such-client", json={"name": "x"}, headers=admin.headers), 404)


async def test_rotate_client_secret(client: httpx.AsyncClient, admin: Admin) -> None:
    created = (await create_client(client, admin)).json()
    cid, old = created["client_id"], created["client_secret"]
    await client_token(client, cid, old)  # now cached by this instance

    response = await client.post(f"/admin/clients/{cid}/secret", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new = response.json()["client_secret"]
    assert new != old

    refused = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, old))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    await client_token(client, cid, new)

    public = (await create_client(client, admin, name="spa", public=True, grant_types=["password"])).json()
    assert_problem(await client.post(f"/admin/clients/{public['client_id']}/secret", headers=admin.headers), 422)
    assert_problem(await client.post("/admin/clients/no-such-client/secret", headers=admin.headers), 404)


async def test_delete_client(client: httpx.AsyncClient, admin: Admin) -> None:
    created = (await create_client(client, admin)).json()
    cid, secret = created["client_id"], created["client_secret"]
    await client_token(client, cid, secret)

    response = await client.delete(f"/admin/clients/{cid}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/admin/clients/{cid}", headers=admin.headers), 404)
    refused = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert_problem(await client.delete(f"/admin/clients/{cid}", headers=admin.headers), 404)
    listed = (await client.get("/admin/clients", headers=admin.headers)).json()["items"]
    assert cid not in {c["client_id"] for c in listed}


@pytest.mark.parametrize(
    "body",
    [
        {"grant_types": ["authorization_code"]},
        {"grant_types": ["client_credentials", "implicit"]},
        {"grant_types": []},
        {"grant_types": "client_credentials"},
        {"grant_types": [True]},
        {"scopes": "read write"},
        {"scopes": [None]},
        {"audiences": ["relative/path"]},
        {"audiences": {"a": 1}},
        {"name": 7},
        {"name": None},
        {"name": "x" * 201},
        {"public": "yes"},
        {"public": True, "grant_types": ["client_credentials"]},
        {"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example.com/cb#frag"]},
        {"grant_types": ["authorization_code"], "redirect_uris": ["https://*.example.com/cb"]},
        {"grant_types": ["authorization_code"], "redirect_uris": ["http://app.example.com/cb"]},
        {"grant_types": ["authorization_code"], "redirect_uris": ["/cb"]},
        {"post_logout_redirect_uris": ["https://app.example.com/*"]},
        {"first_party": "yes"},
    ],
)
async def test_create_client_validation_is_422(client: httpx.AsyncClient, admin: Admin, body: dict[str, Any]) -> None:
    response = await create_client(client, admin, **body)
    assert_problem(response, 422)
    listed = (await client.get("/admin/clients", headers=admin.headers)).json()["items"]
    assert [c["client_id"] for c in listed] == [admin.client_id]


async def test_admin_bodies_must_be_json_objects(client: httpx.AsyncClient, admin: Admin) -> None:
    headers = admin.headers
    form = await client.post("/admin/clients", data={"name": "x", "grant_types": "client_credentials"}, headers=headers)
    assert_problem(form, 415)
    none = await client.post("/admin/clients", content=b'{"name":"x"}', headers=headers)
    assert_problem(none, 415)
    text = await client.post(
        "/admin/clients", content=b'{"name":"x"}', headers={**headers, "Content-Type": "text/plain"}
    )
    assert_problem(text, 415)
    broken = await client.post(
        "/admin/clients", content=b'{"name": "x",', headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(broken, 400)
    array = await client.post("/admin/clients", json=["name", "x"], headers=headers)
    assert_problem(array, 400)
    created = (await create_client(client, admin)).json()
    patch = await client.patch(f"/admin/clients/{created['client_id']}", data={"name": "y"}, headers=headers)
    assert_problem(patch, 415)


# -- users -----------------------------------------------------------------------------------


PASSWORD = "correct horse battery staple"


async def register(http: httpx.AsyncClient, username: str, email: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    if email:
        body["email"] = email
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


@pytest.fixture
async def app_client(client: httpx.AsyncClient) -> tuple[str, str]:
    """A first-party client that may log users in."""
    cid, secret = await make_client(client, name="app", grant_types=("password", "refresh_token"), scopes=("read",))
    assert secret is not None
    return cid, secret


async def login(http: httpx.AsyncClient, app: tuple[str, str], username: str) -> httpx.Response:
    return await http.post(
        TOKEN, data={"grant_type": "password", "username": username, "password": PASSWORD}, auth=app
    )


async def refresh(http: httpx.AsyncClient, app: tuple[str, str], token: str) -> httpx.Response:
    return await http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token}, auth=app)


async def test_list_and_get_users(client: httpx.AsyncClient, admin: Admin) -> None:
    names = ["carol", "Alice", "bob", "dave", "erin"]
    users = {n: await register(client, n, f"{n.lower()}@example.com") for n in names}

    seen: list[str] = []
    after: str | None = ""
    pages = 0
    while after is not None and pages < 10:
        params = {"limit": "2"} | ({"after": after} if after else {})
        page = await client.get("/admin/users", params=params, headers=admin.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        for item in body["items"]:
            assert "password_hash" not in item and "password" not in item
            assert PASSWORD not in page.text
        seen.extend(u["username"] for u in body["items"])
        after = body["next"]
        pages += 1
    assert seen == ["Alice", "bob", "carol", "dave", "erin"]  # case-insensitive order, no repeats

    alice = users["Alice"]
    shown = await client.get(f"/admin/users/{alice['user_id']}", headers=admin.headers)
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    view = shown.json()
    assert view["user_id"] == alice["user_id"]
    assert view["username"] == "Alice" and view["email"] == "alice@example.com"
    assert view["roles"] == ["user"] and view["disabled"] is False
    assert_problem(await client.get("/admin/users/no-such-user", headers=admin.headers), 404)
    assert_problem(await client.get("/admin/users", params={"limit": "0"}, headers=admin.headers), 400)


async def test_set_user_roles(client: httpx.AsyncClient, admin: Admin, app_client: tuple[str, str]) -> None:
    user = await register(client, "mallory")
    url = f"/admin/users/{user['user_id']}/roles"
    response = await client.put(url, json={"roles": ["manager"]}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["manager"]
    assert response.json()["effective_roles"] == ["manager", "user"]
    token = (await login(client, app_client, "mallory")).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["manager", "user"]

    body: dict[str, Any]
    for body in ({"roles": ["superuser"]}, {"roles": ["manager", "root"]}, {"roles": []}, {"roles": "admin"}, {}):
        bad = await client.put(url, json=body, headers=admin.headers)
        problem = assert_problem(bad, 422)
        if body.get("roles") and isinstance(body["roles"], list):
            assert "roles" in problem["errors"]
    assert (await client.get(f"/admin/users/{user['user_id']}", headers=admin.headers)).json()["roles"] == ["manager"]
    assert_problem(
        await client.put("/admin/users/no-such-user/roles", json={"roles": ["user"]}, headers=admin.headers), 404
    )
    assert_problem(await client.put(url, data={"roles": "user"}, headers=admin.headers), 415)


async def test_disable_and_enable_user(client: httpx.AsyncClient, admin: Admin, app_client: tuple[str, str]) -> None:
    user = await register(client, "trudy")
    first = await login(client, app_client, "trudy")
    assert first.status_code == 200, first.text
    refresh_token = first.json()["refresh_token"]
    access_token = first.json()["access_token"]

    disabled = await client.post(f"/admin/users/{user['user_id']}/disable", headers=admin.headers)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True

    refused = await login(client, app_client, "trudy")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    dead = await refresh(client, app_client, refresh_token)
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    userinfo = await client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert userinfo.status_code == 401

    enabled = await client.post(f"/admin/users/{user['user_id']}/enable", headers=admin.headers)
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    again = await login(client, app_client, "trudy")
    assert again.status_code == 200, again.text
    # the sessions revoked while disabled stay revoked
    assert (await refresh(client, app_client, refresh_token)).status_code == 400
    assert (await refresh(client, app_client, again.json()["refresh_token"])).status_code == 200
    for action in ("disable", "enable"):
        assert_problem(await client.post(f"/admin/users/no-such-user/{action}", headers=admin.headers), 404)


async def test_revoke_user_sessions(client: httpx.AsyncClient, admin: Admin, app_client: tuple[str, str]) -> None:
    user = await register(client, "victor")
    other = await register(client, "wendy")
    sessions = [(await login(client, app_client, "victor")).json()["refresh_token"] for _ in range(2)]
    bystander = (await login(client, app_client, "wendy")).json()["refresh_token"]

    response = await client.post(f"/admin/users/{user['user_id']}/sessions/revoke", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked_families": 2}
    for token in sessions:
        dead = await refresh(client, app_client, token)
        assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    assert (await refresh(client, app_client, bystander)).status_code == 200
    # the account itself still works
    assert (await login(client, app_client, "victor")).status_code == 200
    assert other["user_id"] != user["user_id"]
    assert_problem(await client.post("/admin/users/no-such-user/sessions/revoke", headers=admin.headers), 404)


# -- audit -----------------------------------------------------------------------------------


async def test_every_admin_action_is_audited_newest_first(
    client: httpx.AsyncClient, admin: Admin, app_client: tuple[str, str], clock: FakeClock
) -> None:
    h = admin.headers
    expected: list[tuple[str, str]] = []

    created = (await create_client(client, admin)).json()
    expected.append(("clients.create", created["client_id"]))
    clock.advance(1)
    assert (
        await client.patch(f"/admin/clients/{created['client_id']}", json={"name": "n2"}, headers=h)
    ).status_code == 200
    expected.append(("clients.update", created["client_id"]))
    assert (await client.post(f"/admin/clients/{created['client_id']}/secret", headers=h)).status_code == 200
    expected.append(("clients.rotate_secret", created["client_id"]))
    assert (await client.delete(f"/admin/clients/{created['client_id']}", headers=h)).status_code == 204
    expected.append(("clients.delete", created["client_id"]))

    user = await register(client, "audited-user")
    uid = user["user_id"]
    expected.append(("users.register", uid))
    assert (await client.put(f"/admin/users/{uid}/roles", json={"roles": ["admin"]}, headers=h)).status_code == 200
    expected.append(("users.set_roles", uid))
    assert (await client.post(f"/admin/users/{uid}/disable", headers=h)).status_code == 200
    expected.append(("users.disable", uid))
    assert (await client.post(f"/admin/users/{uid}/enable", headers=h)).status_code == 200
    expected.append(("users.enable", uid))
    assert (await client.post(f"/admin/users/{uid}/sessions/revoke", headers=h)).status_code == 200
    expected.append(("users.revoke_sessions", uid))

    keys = by_state(await list_keys(client, admin))
    clock.advance(1)
    rotated = await client.post("/admin/keys/rotate", params={"force": "true"}, headers=h)
    assert rotated.status_code == 200
    expected.append(("keys.rotate", keys["pending"][0]))
    retired = keys["active"][0]
    await refresh_admin_token(client, admin)  # signed by the new active key, not the one revoked next
    h = admin.headers
    assert (await client.post(f"/admin/keys/{retired}/revoke", headers=h)).status_code == 200
    expected.append(("keys.revoke", retired))

    # reads and refused requests leave no entry
    await client.get("/admin/clients", headers=h)
    await client.get(f"/admin/users/{uid}", headers=h)
    await client.post("/admin/keys/rotate", headers=h)  # 409: not yet safe
    await client.post("/admin/keys/no-such-kid/revoke", headers=h)  # 404

    response = await client.get("/admin/audit", headers=h)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    every = response.json()["items"]
    items = [e for e in every if e["actor"] not in SETUP]
    assert [(e["action"], e["target"]) for e in items] == list(reversed(expected))
    assert response.json()["next"] is None
    for entry in items:
        actor = f"user:{uid}" if entry["action"] == "users.register" else f"client:{admin.client_id}"
        assert entry["actor"] == actor
        assert entry["remote_addr"] == "127.0.0.1"
        assert isinstance(entry["id"], int) and isinstance(entry["at"], int)
    ids = [e["id"] for e in every]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    ats = [e["at"] for e in every]
    assert ats == sorted(ats, reverse=True)
    assert ats[0] == int(clock.now) and ats[-1] == int(clock.now) - 2
    by_action = {e["action"]: e for e in items}
    assert by_action["users.set_roles"]["detail"] == {"roles": ["admin"]}
    assert by_action["keys.rotate"]["detail"] == {"force": True}
    assert by_action["clients.update"]["detail"] == {"fields": ["name"]}
    # nothing secret is recorded
    assert PASSWORD not in response.text and admin.secret not in response.text

    # pagination walks back with ``before``
    walked: list[int] = []
    before: int | None = 0
    pages = 0
    while before is not None and pages < 10:
        params = {"limit": "3"} | ({"before": str(before)} if before else {})
        page = (await client.get("/admin/audit", params=params, headers=h)).json()
        assert len(page["items"]) <= 3
        if before:
            assert all(e["id"] < before for e in page["items"])
        walked.extend(e["id"] for e in page["items"])
        before = page["next"]
        pages += 1
    assert walked == ids
    assert_problem(await client.get("/admin/audit", params={"before": "x"}, headers=h), 400)


async def test_audit_records_the_acting_admin(client: httpx.AsyncClient, admin: Admin) -> None:
    second_id, second_secret = await make_client(client, name="second-operator", scopes=("issuer:admin",))
    assert second_secret is not None
    second = Admin(second_id, second_secret, await client_token(client, second_id, second_secret))
    first_created = (await create_client(client, admin, name=f"by-first-{secrets.token_hex(2)}")).json()
    second_created = (await create_client(client, second, name="by-second")).json()
    items = (await client.get("/admin/audit", headers=second.headers)).json()["items"]
    assert [(e["actor"], e["target"]) for e in items if e["actor"] not in SETUP] == [
        (f"client:{second.client_id}", second_created["client_id"]),
        (f"client:{admin.client_id}", first_created["client_id"]),
    ]
