"""Discovery metadata (RFC 8414 / OIDC Discovery), the JWKS with its caching, and health probes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from issuer.settings import Settings
from tests.conftest import OPERATOR, FakeClock, make_client, running_app, services_of

METADATA_URLS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
PUBLIC_RSA_MEMBERS = {"kty", "kid", "use", "alg", "n", "e"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def jwks(http: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, Any]]:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response, response.json()


def kids(document: dict[str, Any]) -> list[str]:
    return [k["kid"] for k in document["keys"]]


def states(http: httpx.AsyncClient) -> dict[str, str]:
    return {k.kid: k.state.value for k in services_of(http).keyring.keys}


async def issue(http: httpx.AsyncClient, creds: tuple[str, str | None]) -> str:
    client_id, secret = creds
    assert secret is not None
    response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def verify_with(document: dict[str, Any], token: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(document)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False})
    return claims


# -- metadata --------------------------------------------------------------------------------


async def test_both_metadata_documents_are_the_same_and_accurate(client: httpx.AsyncClient) -> None:
    creds = await make_client(client, scopes=("read", "write"))
    await make_client(client, scopes=("admin",), grant_types=("password",), public=True)
    settings = services_of(client).settings
    oauth, oidc = [await client.get(url) for url in METADATA_URLS]
    assert oauth.status_code == oidc.status_code == 200
    assert oauth.json() == oidc.json()
    assert oauth.headers["content-type"].startswith("application/json")
    meta = oauth.json()

    assert meta["issuer"] == settings.url
    assert meta["token_endpoint"] == f"{settings.url}/oauth2/token"
    assert meta["jwks_uri"] == f"{settings.url}/.well-known/jwks.json"
    assert meta["scopes_supported"] == ["openid", "profile", "email", "admin", "read", "write"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["authorization_endpoint"] == f"{settings.url}/oauth2/authorize"
    assert meta["end_session_endpoint"] == f"{settings.url}/oauth2/logout"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == [settings.signing_alg]
    assert {"sub", "auth_time", "nonce", "sid", "preferred_username", "email"} <= set(meta["claims_supported"])
    assert "roles" not in meta["claims_supported"]  # only with ISSUER_ID_TOKEN_ROLES
    assert {"client_secret_basic", "client_secret_post"} <= set(meta["token_endpoint_auth_methods_supported"])

    # the advertised token endpoint issues tokens that the advertised JWKS verifies
    client_id, secret = creds
    assert secret is not None
    token_response = await client.post(
        meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token_response.status_code == 200, token_response.text
    keys = await client.get(meta["jwks_uri"])
    assert keys.status_code == 200
    claims = verify_with(keys.json(), token_response.json()["access_token"])
    assert claims["iss"] == meta["issuer"]
    docs = await client.get(meta["service_documentation"])
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # OIDC Discovery §3: an omitted request_uri_parameter_supported means true; we support neither.
    assert meta["request_parameter_supported"] is False and meta["request_uri_parameter_supported"] is False


async def test_grant_types_supported_is_what_the_token_endpoint_accepts(client: httpx.AsyncClient) -> None:
    meta = (await client.get(METADATA_URLS[0])).json()
    advertised = meta["grant_types_supported"]
    assert "client_credentials" in advertised
    client_id, secret = await make_client(client, grant_types=("client_credentials",))
    assert secret is not None
    for grant in advertised:
        response = await client.post("/oauth2/token", data={"grant_type": grant}, auth=(client_id, secret))
        # an advertised grant is never "unsupported", whatever else the request lacks
        assert response.json().get("error") != "unsupported_grant_type", (grant, response.text)
    candidates = [
        "authorization_code",
        "password",
        "refresh_token",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    for grant in (g for g in candidates if g not in advertised):
        response = await client.post("/oauth2/token", data={"grant_type": grant}, auth=(client_id, secret))
        assert response.status_code == 400, (grant, response.text)
        assert response.json()["error"] == "unsupported_grant_type", (grant, response.text)


OIDC = ["openid", "profile", "email"]  # always supported, listed first


async def test_scopes_supported_is_refreshed_within_a_minute(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_client(client, scopes=("read",))
    assert (await client.get(METADATA_URLS[0])).json()["scopes_supported"] == [*OIDC, "read"]
    await make_client(client, scopes=("billing",))
    clock.advance(61)
    assert (await client.get(METADATA_URLS[0])).json()["scopes_supported"] == [*OIDC, "billing", "read"]


async def test_scopes_supported_leaves_out_the_issuers_own_and_disabled_clients_scopes(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Advertised: what an enabled client may ask for. Not issuer:admin or issuer:introspect (the
    issuer's own powers), nor a scope only a disabled (retired, throwaway) client was given."""
    await make_client(client, name="operator", scopes=("issuer:admin", "issuer:introspect", "openid"))
    await make_client(client, scopes=("read",))
    throwaway, _ = await make_client(client, scopes=("smoke-test", "read"))
    clients = services_of(client).ops.clients
    await clients.set_disabled(OPERATOR, throwaway, True)
    clock.advance(61)
    assert (await client.get(METADATA_URLS[0])).json()["scopes_supported"] == [*OIDC, "read"]
    await clients.set_disabled(OPERATOR, throwaway, False)
    clock.advance(61)
    assert (await client.get(METADATA_URLS[1])).json()["scopes_supported"] == [*OIDC, "read", "smoke-test"]


async def test_metadata_is_cacheable(client: httpx.AsyncClient) -> None:
    for url in METADATA_URLS:
        response = await client.get(url)
        assert re.fullmatch(r"public, max-age=\d+", response.headers["cache-control"])


# -- JWKS -----------------------------------------------------------------------------------


async def test_jwks_publishes_active_and_pending_public_keys_only(client: httpx.AsyncClient) -> None:
    response, document = await jwks(client)
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert set(document) == {"keys"}
    assert sorted(states(client).values()) == ["active", "pending"]
    assert set(kids(document)) == set(states(client))
    assert kids(document)[0] == services_of(client).keyring.active_kid
    for key in document["keys"]:
        assert set(key) == PUBLIC_RSA_MEMBERS
        assert not set(key) & PRIVATE_MEMBERS
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["alg"] == "RS256"
        assert isinstance(key["kid"], str) and key["kid"]
    assert len(set(kids(document))) == 2


async def test_jwks_cache_headers(client: httpx.AsyncClient) -> None:
    response, _ = await jwks(client)
    cache_control = [part.strip() for part in response.headers["cache-control"].split(",")]
    assert "public" in cache_control
    assert f"max-age={services_of(client).settings.jwks_max_age}" in cache_control
    assert "no-store" not in cache_control
    assert re.fullmatch(r'"[0-9a-f]+"', response.headers["etag"])


async def test_jwks_max_age_is_capped_by_the_next_scheduled_rotation(
    sqlite_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(database_url=sqlite_url, key_rotation_interval=3600, jwks_max_age=300)
    async with running_app(settings, clock) as http:
        assert "max-age=300," in (await http.get("/.well-known/jwks.json")).headers["cache-control"]
        clock.advance(3600 - 120)
        assert "max-age=120," in (await http.get("/.well-known/jwks.json")).headers["cache-control"]


async def test_jwks_conditional_get(client: httpx.AsyncClient) -> None:
    response, _ = await jwks(client)
    etag = response.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = await client.get("/.well-known/jwks.json", headers={"If-None-Match": if_none_match})
        assert not_modified.status_code == 304, if_none_match
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        assert "max-age" in not_modified.headers["cache-control"]
    changed = await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"not-the-etag"'})
    assert changed.status_code == 200 and changed.json()["keys"]


async def test_forced_rotation_keeps_the_retired_key_published(client: httpx.AsyncClient) -> None:
    services = services_of(client)
    creds = await make_client(client)
    before_response, before = await jwks(client)
    old_active = services.keyring.active_kid
    old_pending = next(kid for kid, state in states(client).items() if state == "pending")
    old_token = await issue(client, creds)

    await services.keys.rotate(force=True)
    await services.keyring.refresh()

    after_response, after = await jwks(client)
    assert after_response.headers["etag"] != before_response.headers["etag"]
    stale = await client.get("/.well-known/jwks.json", headers={"If-None-Match": before_response.headers["etag"]})
    assert stale.status_code == 200
    now = states(client)
    assert now[old_active] == "retired"
    assert now[old_pending] == "active"
    [new_pending] = [kid for kid, state in now.items() if state == "pending"]
    assert set(kids(after)) == {old_active, old_pending, new_pending}
    assert set(kids(before)) < set(kids(after))
    # tokens signed before the rotation still verify; new ones are signed by the promoted key
    assert verify_with(after, old_token)["jti"]
    new_token = await issue(client, creds)
    assert jwt.get_unverified_header(new_token)["kid"] == old_pending
    assert verify_with(after, new_token)["jti"]


async def test_revoked_keys_disappear_from_the_jwks(client: httpx.AsyncClient) -> None:
    services = services_of(client)
    creds = await make_client(client)
    await services.keys.rotate(force=True)
    await services.keyring.refresh()
    retired = next(kid for kid, state in states(client).items() if state == "retired")
    active = services.keyring.active_kid
    pending = next(kid for kid, state in states(client).items() if state == "pending")
    token_by_active = await issue(client, creds)

    await services.keys.revoke(retired)
    await services.keyring.refresh()
    _, document = await jwks(client)
    assert retired not in kids(document)
    assert set(kids(document)) == {active, pending}

    before_etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    await services.keys.revoke(active)
    await services.keyring.refresh()
    response, document = await jwks(client)
    assert response.headers["etag"] != before_etag
    assert active not in kids(document)
    assert services.keyring.active_kid == pending
    assert len(kids(document)) == 2
    with pytest.raises(KeyError):
        verify_with(document, token_by_active)
    assert jwt.get_unverified_header(await issue(client, creds))["kid"] == pending


# -- health ---------------------------------------------------------------------------------


async def test_health_probes(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert ready.headers["cache-control"] == "no-store"


# -- lean GETs ---------------------------------------------------------------------------------


async def _routed(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[int, list[Any], bytes]:
    """What the route's own handler answers (the path LeanJSON skips), as raw ASGI messages."""
    from starlette.requests import Request

    from issuer.http.discovery import LEAN_GETS

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "GET", "path": path, "headers": raw, "query_string": b"",
             "state": {"services": services_of(http)}}
    response = await LEAN_GETS[path].route(Request(scope))
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    await response(scope, receive, send)
    return sent[0]["status"], sorted(sent[0]["headers"]), sent[1]["body"]


@pytest.mark.parametrize("path", ["/healthz", "/.well-known/jwks.json", "/.well-known/jwks.json 304"])
async def test_lean_gets_answer_exactly_as_their_routes(client: httpx.AsyncClient, path: str) -> None:
    # GET /healthz and the JWKS skip the router (issuer.http.lean.LeanJSON): same status, headers
    # and body as the route handler, and the middleware's headers and access log still apply.
    path, _, conditional = path.partition(" ")
    headers = {}
    if conditional:
        headers["If-None-Match"] = (await client.get(path)).headers["etag"]
    served = await client.get(path, headers=headers)
    status, routed_headers, body = await _routed(client, path, headers)
    assert served.status_code == status == (304 if conditional else 200)
    assert served.content == body
    middleware = {b"x-content-type-options", b"x-frame-options", b"referrer-policy", b"content-security-policy",
                  b"cross-origin-resource-policy"}
    lean_headers = sorted((k, v) for k, v in served.headers.raw if k.lower() not in middleware)
    assert lean_headers == routed_headers
    assert served.headers["x-content-type-options"] == "nosniff"
    if not conditional:
        assert int(served.headers["content-length"]) == len(served.content)
    else:
        assert "content-length" not in served.headers and "content-type" not in served.headers
    head = await client.head(path, headers=headers)  # HEAD is routed (Starlette adds it to GET routes)
    assert head.status_code == served.status_code and head.headers["etag" if "jwks" in path else "cache-control"]
