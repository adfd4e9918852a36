"""grant_type=authorization_code at the token endpoint, with codes minted through issuer.authorize
(what the pages do), ID tokens, their refresh, /userinfo by scope, and ending the session."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import jwt
import pytest

from issuer.operations import Actor
from tests.authorize_helpers import REDIRECT, authorize, exchange, pkce, user, web_client
from tests.conftest import FakeClock, services_of
from tests.users_helpers import refresh


async def id_claims(http: httpx.AsyncClient, token: str, client_id: str) -> dict[str, Any]:
    """The ID token verified as a relying party would: the JWKS, RS256/ES256, aud, iss."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT"
    keys = jwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())
    claims: dict[str, Any] = jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["RS256", "ES256"],
        audience=client_id,
        issuer=services_of(http).settings.url,
        leeway=600,  # the tests' clock runs ahead of the real one
    )
    return claims


def tokens(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_public_client_gets_access_refresh_and_id_tokens(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    flow = await authorize(http, client[0], nonce="n-0S6")
    body = tokens(await exchange(http, client, flow))
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile email read"
    assert body["refresh_token"] and body["access_token"]
    claims = await id_claims(http, body["id_token"], client[0])
    alice = await user(http)
    assert claims["sub"] == alice.user_id and claims["aud"] == client[0]
    assert claims["nonce"] == "n-0S6" and claims["sid"] == flow.session.session_id
    assert claims["auth_time"] == int(flow.session.auth_time)
    assert claims["preferred_username"] == "alice" and claims["email"] == "alice@example.com"
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert "roles" not in claims
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["sub"] == alice.user_id and access["client_id"] == client[0] and access["scope"] == body["scope"]


async def test_userinfo_answers_what_the_scopes_allow(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    for scope, expected in (
        ("openid", {"sub"}),
        ("openid profile", {"sub", "preferred_username"}),
        ("openid email", {"sub", "email", "email_verified"}),
    ):
        body = tokens(await exchange(http, client, await authorize(http, client[0], scope=scope)))
        info = await http.get("/userinfo", headers=bearer(body["access_token"]))
        assert info.status_code == 200, info.text
        assert set(info.json()) == expected, scope
        assert set(await id_claims(http, body["id_token"], client[0])) >= expected


async def test_roles_only_when_configured(start: Any) -> None:
    async with start(id_token_roles=True) as http:
        client = await web_client(http)
        body = tokens(await exchange(http, client, await authorize(http, client[0], scope="openid")))
        assert (await id_claims(http, body["id_token"], client[0]))["roles"] == ["user"]
        assert (await http.get("/userinfo", headers=bearer(body["access_token"]))).json()["roles"] == ["user"]
        assert "roles" in (await http.get("/.well-known/openid-configuration")).json()["claims_supported"]


async def test_without_openid_no_id_token_and_without_the_grant_no_refresh_token(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    body = tokens(await exchange(http, client, await authorize(http, client[0], scope="read")))
    assert "id_token" not in body and body["refresh_token"]
    once = await web_client(http, name="no refresh", grant_types=("authorization_code",))
    body = tokens(await exchange(http, once, await authorize(http, once[0])))
    assert "refresh_token" not in body and body["id_token"]


async def test_a_confidential_client_authenticates(http: httpx.AsyncClient) -> None:
    client = await web_client(http, public=False)
    assert client[1] is not None
    flow = await authorize(http, client[0])
    refused = await exchange(http, (client[0], None), flow)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    wrong = await exchange(http, (client[0], "wrong-secret"), flow)
    assert wrong.status_code == 401
    tokens(await exchange(http, client, flow))  # the failed attempts did not spend the code


@pytest.mark.parametrize(
    "change",
    [
        {"code_verifier": pkce()[0]},
        {"redirect_uri": "http://127.0.0.1/callback"},
        {"code": "made-up"},
        {"code_verifier": "too-short"},
        {"resource": "https://elsewhere.example.com"},
    ],
)
async def test_a_mismatched_exchange_is_refused(http: httpx.AsyncClient, change: dict[str, str]) -> None:
    client = await web_client(http)
    response = await exchange(http, client, await authorize(http, client[0]), **change)
    assert response.status_code == 400
    assert response.json()["error"] == ("invalid_target" if "resource" in change else "invalid_grant")


async def test_a_code_for_another_client_is_refused(http: httpx.AsyncClient) -> None:
    mine, theirs = await web_client(http), await web_client(http, name="theirs")
    response = await exchange(http, theirs, await authorize(http, mine[0]))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_missing_parameters_are_invalid_request(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    for missing in ("code", "redirect_uri", "code_verifier"):
        data = {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT, "code_verifier": "v" * 43}
        del data[missing]
        response = await http.post("/oauth2/token", data={**data, "client_id": client[0]})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", missing


async def test_a_replayed_code_revokes_what_it_issued(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    flow = await authorize(http, client[0])
    first = tokens(await exchange(http, client, flow))
    assert (await http.get("/userinfo", headers=bearer(first["access_token"]))).status_code == 200
    replay = await exchange(http, client, flow)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await http.get("/userinfo", headers=bearer(first["access_token"]))).status_code == 401
    again = await refresh(http, client, first["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_an_expired_code_or_ended_session_is_refused(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await web_client(http)
    late = await authorize(http, client[0])
    clock.advance(61)
    assert (await exchange(http, client, late)).json()["error"] == "invalid_grant"
    flow = await authorize(http, client[0])
    await services_of(http).ops.sessions.sign_out(Actor.user(flow.session.user_id), flow.session, "logout")
    assert (await exchange(http, client, flow)).json()["error"] == "invalid_grant"


async def test_refresh_keeps_sub_auth_time_and_sid(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client = await web_client(http)
    flow = await authorize(http, client[0], nonce="n-1")
    first = tokens(await exchange(http, client, flow))
    before = await id_claims(http, first["id_token"], client[0])
    clock.advance(120)
    renewed = tokens(await refresh(http, client, first["refresh_token"]))
    after = await id_claims(http, renewed["id_token"], client[0])
    assert {k: after[k] for k in ("sub", "auth_time", "sid")} == {k: before[k] for k in ("sub", "auth_time", "sid")}
    assert after["iat"] == before["iat"] + 120 and "nonce" not in after
    narrowed = tokens(await refresh(http, client, renewed["refresh_token"], scope="read"))
    assert "id_token" not in narrowed


async def test_password_grant_families_get_no_id_token(http: httpx.AsyncClient) -> None:
    from tests.users_helpers import login

    client = await web_client(http, grant_types=("password", "refresh_token"), scopes=("openid", "read"))
    body = await login(http, client, scope="openid read")
    assert "id_token" not in body
    assert "id_token" not in tokens(await refresh(http, client, body["refresh_token"]))


@pytest.mark.parametrize("revokes", [True, False])
async def test_ending_the_session_revokes_its_refresh_families_if_configured(start: Any, revokes: bool) -> None:
    async with start(session_logout_revokes_refresh=revokes) as http:
        client = await web_client(http)
        flow = await authorize(http, client[0])
        body = tokens(await exchange(http, client, flow))
        assert await services_of(http).ops.sessions.sign_out(Actor.user(flow.session.user_id), flow.session, "logout")
        after = await refresh(http, client, body["refresh_token"])
        assert (after.status_code == 400) is revokes, after.text
        entry = (await services_of(http).ops.audit.recent(limit=1))[0]
        assert entry.action == "sessions.sign_out" and entry.detail["families"] == (1 if revokes else 0)


async def test_an_id_token_is_never_an_access_token(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    body = tokens(await exchange(http, client, await authorize(http, client[0])))
    id_token = body["id_token"]
    for method, path in (("GET", "/userinfo"), ("POST", "/account/password"), ("GET", "/admin/clients")):
        response = await http.request(method, path, headers=bearer(id_token))
        assert response.status_code == 401, (path, response.text)
    introspected = await http.post("/oauth2/introspect", data={"token": id_token, "client_id": client[0]})
    assert introspected.json().get("active") is not True
