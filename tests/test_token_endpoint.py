"""POST /oauth2/token through HTTP, on both backends: RFC 6749 §3.2/§5, RFC 8707, RFC 9068."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from tests.conftest import OPERATOR, make_client, services_of

TOKEN = "/oauth2/token"
FORM = "application/x-www-form-urlencoded"
API = "https://api.example.com"
OTHER_API = "https://other.example.com"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2: a JSON object with ``error``, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def post_raw(
    http: httpx.AsyncClient, body: bytes | str, *, content_type: str | None = FORM, **headers: str
) -> httpx.Response:
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return await http.post(TOKEN, content=body if isinstance(body, bytes) else body.encode(), headers=all_headers)


@pytest.fixture
async def creds(client: httpx.AsyncClient) -> AsyncIterator[tuple[str, str]]:
    client_id, secret = await make_client(client)
    assert secret is not None
    yield client_id, secret


async def verify(
    http: httpx.AsyncClient, token: str, audience: str | list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify with PyJWT against the published JWKS; return (header, claims)."""
    jwks = (await http.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=services_of(http).settings.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    return header, claims


# -- request parsing ----------------------------------------------------------------------


async def test_missing_grant_type(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(TOKEN, data={"scope": "read"}, auth=creds)
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "grant_type" in body["error_description"]
    # an empty value counts as omitted (RFC 6749 §3.2)
    assert_oauth_error(await client.post(TOKEN, data={"grant_type": ""}, auth=creds), 400, "invalid_request")


async def test_unknown_grant_type(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for grant in ("authorization_code_x", "urn:ietf:params:oauth:grant-type:device_code", "implicit"):
        response = await client.post(TOKEN, data={"grant_type": grant}, auth=creds)
        assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_wrong_content_type(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for content_type in (
        None,
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        f"{FORM}; charset=iso-8859-1",
    ):
        response = await post_raw(client, "grant_type=client_credentials", content_type=content_type, **basic(*creds))
        assert_oauth_error(response, 400, "invalid_request")
    response = await client.post(TOKEN, json={"grant_type": "client_credentials"}, auth=creds)
    assert_oauth_error(response, 400, "invalid_request")


async def test_explicit_utf8_charset_is_accepted(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await post_raw(
        client, "grant_type=client_credentials", content_type=f"{FORM}; charset=UTF-8", **basic(*creds)
    )
    assert response.status_code == 200, response.text


async def test_non_utf8_or_invalid_form_body(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for body in (
        b"grant_type=client_credentials&scope=r\xe9ad",  # raw Latin-1 byte
        b"grant_type=client_credentials&scope=%FF%FE",  # percent-encoded, not UTF-8
        b"grant_type=client_credentials&scope=read%00",  # NUL
        b"grant_type=client_credentials&" + b"&".join(b"p%d=v" % n for n in range(100)),  # too many fields
    ):
        assert_oauth_error(await post_raw(client, body, **basic(*creds)), 400, "invalid_request")


async def test_repeated_parameter(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for body in (
        "grant_type=client_credentials&scope=read&scope=write",
        "grant_type=client_credentials&scope=read&scope=read",
        "grant_type=client_credentials&grant_type=client_credentials",
    ):
        response = await post_raw(client, body, **basic(*creds))
        assert "repeated" in assert_oauth_error(response, 400, "invalid_request")["error_description"]


async def test_resource_may_repeat(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, audiences=(API, OTHER_API))
    assert secret is not None
    body = f"grant_type=client_credentials&resource={API}&resource={OTHER_API}"
    response = await post_raw(client, body, **basic(client_id, secret))
    assert response.status_code == 200, response.text


async def test_oversized_body_with_content_length(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    limit = services_of(client).settings.max_body_bytes
    prefix = "grant_type=client_credentials&pad="
    at_limit = await post_raw(client, prefix + "x" * (limit - len(prefix)), **basic(*creds))
    assert at_limit.status_code == 200, at_limit.text
    response = await post_raw(client, prefix + "x" * (limit - len(prefix) + 1), **basic(*creds))
    assert_oauth_error(response, 413, "invalid_request")


async def test_oversized_streamed_body_without_content_length(
    client: httpx.AsyncClient, creds: tuple[str, str]
) -> None:
    limit = services_of(client).settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(limit // 1024 + 2):
            yield b"x" * 1024

    response = await client.post(TOKEN, content=chunks(), headers={"Content-Type": FORM, **basic(*creds)})
    assert "content-length" not in response.request.headers
    assert_oauth_error(response, 413, "invalid_request")


async def test_get_is_405_not_500(client: httpx.AsyncClient) -> None:
    response = await client.get(TOKEN)
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


async def test_token_answers_carry_the_headers_of_routed_answers(
    client: httpx.AsyncClient, creds: tuple[str, str]
) -> None:
    # POST /oauth2/token and /oauth2/introspect skip the router (issuer.http.lean.LeanJSON); their
    # errors are Response objects from the app's handlers, as every routed answer is.
    issued = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=creds)
    introspected = await client.post("/oauth2/introspect", data={"token": issued.json()["access_token"]}, auth=creds)
    refused = await client.post(TOKEN, data={"grant_type": "nope"}, auth=creds)
    assert issued.status_code == introspected.status_code == 200
    assert refused.status_code == 400
    assert introspected.json()["active"] is True
    for response in (issued, introspected, refused):
        assert int(response.headers["content-length"]) == len(response.content)
        del response.headers["content-length"]
    assert sorted(issued.headers.multi_items()) == sorted(introspected.headers.multi_items())
    assert sorted(issued.headers.multi_items()) == sorted(refused.headers.multi_items())
    assert issued.headers["content-type"] == "application/json"
    assert issued.headers["pragma"] == "no-cache"
    assert issued.headers["x-content-type-options"] == "nosniff"


async def test_a_lean_endpoints_unexpected_error_is_the_apps_500(
    client: httpx.AsyncClient, creds: tuple[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The token endpoint is answered outside Starlette's layers (issuer.http.lean), so it does what
    # Starlette's ServerErrorMiddleware does for routed requests: the app's 500 (problem details,
    # no trace), the error logged, the exception passed on to the server; counted and logged as 500.
    from issuer.grants import GRANTS
    from tests.test_safe_defaults import assert_security_headers

    async def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setitem(GRANTS, "client_credentials", broken)
    caplog.set_level(logging.INFO, logger="issuer.access")
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as raw:
        response = await raw.post(TOKEN, data={"grant_type": "client_credentials"}, auth=creds)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal Server Error" and "a bug" not in response.text
    assert_security_headers(response, hsts=False)
    assert any(r.getMessage() == "unhandled error on POST /oauth2/token" for r in caplog.records)
    lines = [r.__dict__ for r in caplog.records if r.name == "issuer.access" and r.getMessage() == "request"]
    assert [(line["route"], line["status"]) for line in lines] == [("token", 500)]
    metrics = (await client.get("/metrics")).text
    assert 'issuer_http_request_duration_seconds_count{method="POST",route="token",status="500"} 1.0' in metrics


async def test_lean_endpoints_refuse_as_every_route_does(client: httpx.AsyncClient) -> None:
    # The guards every request passes (issuer.http.middleware.Front) apply to the lean endpoints too.
    from tests.test_safe_defaults import assert_security_headers

    too_large = await client.post(TOKEN, content=b"x", headers={"Content-Type": FORM, "Content-Length": "999999999"})
    assert too_large.status_code == 413 and too_large.json()["error"] == "invalid_request"
    assert_security_headers(too_large, hsts=False)


# -- client authentication -------------------------------------------------------------------


async def test_client_secret_basic_succeeds(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=creds)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert "refresh_token" not in body


async def test_client_secret_post_succeeds(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    client_id, secret = creds
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


async def test_basic_credentials_are_form_urldecoded(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    # RFC 6749 §2.3.1: id and secret are form-encoded before base64; "-" may be sent as %2D
    client_id, secret = creds
    encoded = "".join(f"%{ord(c):02X}" for c in client_id)
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, headers=basic(encoded, secret))
    assert response.status_code == 200, response.text


async def test_both_methods_at_once(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    client_id, secret = creds
    response = await client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        auth=creds,
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_body_client_id_differing_from_basic(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": "someone-else"}, auth=creds
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_unknown_client_and_wrong_secret_are_indistinguishable(
    client: httpx.AsyncClient, creds: tuple[str, str]
) -> None:
    client_id, secret = creds
    data = {"grant_type": "client_credentials"}
    unknown = await client.post(TOKEN, data=data, auth=("no-such-client", secret))
    wrong = await client.post(TOKEN, data=data, auth=(client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")))
    for response in (unknown, wrong):
        assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic ")
    assert unknown.content == wrong.content
    assert unknown.headers["www-authenticate"] == wrong.headers["www-authenticate"]

    unknown_post = await client.post(TOKEN, data={**data, "client_id": "no-such-client", "client_secret": secret})
    wrong_post = await client.post(TOKEN, data={**data, "client_id": client_id, "client_secret": "wrong"})
    for response in (unknown_post, wrong_post):
        assert_oauth_error(response, 401, "invalid_client")
    assert unknown_post.content == wrong_post.content == unknown.content


async def test_no_client_authentication_at_all(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"})
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_malformed_authorization_header(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for authorization in (
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
        "Basic",
        "Bearer abc.def.ghi",
    ):
        response = await client.post(
            TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": authorization}
        )
        assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic "), authorization


async def test_public_client_cannot_use_client_credentials(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, public=True, grant_types=("password",))
    assert secret is None
    response = await client.post(TOKEN, data={"grant_type": "client_credentials", "client_id": client_id})
    assert_oauth_error(response, 400, "unauthorized_client")
    # and a public client that invents a secret is not authenticated at all
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "guess"}
    )
    assert_oauth_error(response, 401, "invalid_client")


async def test_public_client_in_basic_with_an_empty_password_is_none_authentication(
    client: httpx.AsyncClient,
) -> None:
    # Swagger UI (and other generic clients) send a public client as `Authorization: Basic id:`.
    client_id, _ = await make_client(client, public=True, grant_types=("password", "refresh_token"))
    await services_of(client).ops.users.create(OPERATOR, NewUser("alice", "password-123", "alice@example.com"))
    login = {"grant_type": "password", "username": "alice", "password": "password-123"}
    response = await client.post(TOKEN, data=login, headers=basic(client_id, ""))
    assert response.status_code == 200, response.text
    refreshed = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"], "client_id": client_id},
        headers=basic(client_id, ""),
    )
    assert refreshed.status_code == 200, refreshed.text
    revoked = await client.post(
        "/oauth2/revoke", data={"token": refreshed.json()["refresh_token"]}, headers=basic(client_id, "")
    )
    assert revoked.status_code == 200, revoked.text
    # an empty password plus a client_secret in the body is still two methods at once
    both = await client.post(TOKEN, data={**login, "client_secret": "x"}, headers=basic(client_id, ""))
    assert_oauth_error(both, 400, "invalid_request")


async def test_confidential_client_in_basic_with_an_empty_password_fails(
    client: httpx.AsyncClient, creds: tuple[str, str]
) -> None:
    client_id, _ = creds
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, headers=basic(client_id, ""))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    unknown = await client.post(TOKEN, data={"grant_type": "client_credentials"}, headers=basic("nobody", ""))
    assert unknown.content == response.content


async def test_client_lacking_the_grant_type(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, grant_types=("password",))
    assert secret is not None
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert_oauth_error(response, 400, "unauthorized_client")


# -- scope and resource ------------------------------------------------------------------------


async def test_scope_outside_the_clients_scopes(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for scope in ("admin", "read admin"):
        response = await client.post(TOKEN, data={"grant_type": "client_credentials", "scope": scope}, auth=creds)
        assert_oauth_error(response, 400, "invalid_scope")


async def test_bad_scope_syntax(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for scope in ("read  write", " read", "read ", 'read "write"', "read\\write", "réad", "read\twrite"):
        response = await client.post(TOKEN, data={"grant_type": "client_credentials", "scope": scope}, auth=creds)
        assert_oauth_error(response, 400, "invalid_scope")


async def test_requested_scope_is_granted_deduplicated(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "scope": "write read write"}, auth=creds
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "write read"
    _, claims = await verify(client, response.json()["access_token"], API)
    assert claims["scope"] == "write read"


async def test_no_scope_grants_every_client_scope(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=creds)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"
    _, claims = await verify(client, response.json()["access_token"], API)
    assert claims["scope"] == "read write"


async def test_resource_not_allowed(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "resource": "https://evil.example.com"}, auth=creds
    )
    assert_oauth_error(response, 400, "invalid_target")


async def test_resource_must_be_absolute_without_fragment(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    for resource in (f"{API}#fragment", f"{API}#", "api.example.com", "/relative/path"):
        response = await client.post(
            TOKEN, data={"grant_type": "client_credentials", "resource": resource}, auth=creds
        )
        assert_oauth_error(response, 400, "invalid_target")


async def test_two_resources_give_a_list_audience(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, audiences=(API, OTHER_API))
    assert secret is not None
    response = await client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "resource": [OTHER_API, API]},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    _, claims = await verify(client, response.json()["access_token"], API)
    assert claims["aud"] == [OTHER_API, API]


async def test_one_resource_gives_that_audience(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, audiences=(API, OTHER_API))
    assert secret is not None
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "resource": OTHER_API}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    _, claims = await verify(client, response.json()["access_token"], OTHER_API)
    assert claims["aud"] == OTHER_API


async def test_no_resource_gives_the_clients_first_audience(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client, audiences=(OTHER_API, API))
    assert secret is not None
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    _, claims = await verify(client, response.json()["access_token"], OTHER_API)
    assert claims["aud"] == OTHER_API


# -- the token itself ------------------------------------------------------------------------------


async def test_access_token_header_and_claims(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    client_id, _ = creds
    services = services_of(client)
    first = await client.post(TOKEN, data={"grant_type": "client_credentials", "scope": "read"}, auth=creds)
    second = await client.post(TOKEN, data={"grant_type": "client_credentials", "scope": "read"}, auth=creds)
    assert first.status_code == second.status_code == 200
    header, claims = await verify(client, first.json()["access_token"], API)
    _, claims2 = await verify(client, second.json()["access_token"], API)

    assert header["typ"] == "at+jwt"
    assert header["alg"] == services.settings.signing_alg == "RS256"
    assert header["kid"] == services.keyring.active_kid
    jwks_kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
    assert header["kid"] in jwks_kids

    assert claims["iss"] == services.settings.url
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["aud"] == API
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == int(services.clock())
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["jti"] != claims2["jti"]


async def test_token_signature_is_bound_to_the_payload(client: httpx.AsyncClient, creds: tuple[str, str]) -> None:
    token = (await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=creds)).json()["access_token"]
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "read write admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        await verify(client, f"{head}.{forged_payload}.{signature}", API)
