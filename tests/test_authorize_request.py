"""The authorization request's two phases (issuer.authorize.request): errors before the client and
redirect URI are known good are shown, never redirected; after, they go back with state and iss."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from issuer.authorize import RedirectError, ShowError, code_redirect, error_redirect, read_params
from tests.authorize_helpers import REDIRECT, parse, pkce, web_client
from tests.conftest import OPERATOR, services_of


def good(client: str, **overrides: str) -> dict[str, str]:
    params = {
        "client_id": client,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile read",
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": pkce()[1],
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v != "-"}


async def test_a_good_request_is_parsed(http: httpx.AsyncClient) -> None:
    client_id, _ = await web_client(http, audiences=("https://api.example.com",))
    params = good(client_id, prompt="login consent", max_age="300", login_hint="alice")
    request = await parse(http, **params, resource="https://api.example.com")
    assert request.client.client_id == client_id and request.redirect_uri == REDIRECT
    assert request.scope == ("openid", "profile", "read") and request.is_openid
    assert (request.state, request.nonce, request.code_challenge) == ("s-1", "n-1", params["code_challenge"])
    assert request.prompt == frozenset({"login", "consent"}) and request.max_age == 300
    assert request.login_hint == "alice"
    assert request.resources == request.audience == ("https://api.example.com",)


async def test_loopback_redirect_uris_match_on_any_port(http: httpx.AsyncClient) -> None:
    client_id, _ = await web_client(http)
    request = await parse(http, **good(client_id, redirect_uri="http://127.0.0.1:53124/callback"))
    assert request.redirect_uri == "http://127.0.0.1:53124/callback"
    for uri in ("http://127.0.0.1:53124/other", "http://localhost:53124/callback", "https://127.0.0.1/callback"):
        with pytest.raises(ShowError):
            await parse(http, **good(client_id, redirect_uri=uri))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "-"}, "invalid_request"),
        ({"client_id": "no-such-client"}, "invalid_client"),
        ({"redirect_uri": "-"}, "invalid_request"),
        ({"redirect_uri": "https://evil.example.com/callback"}, "invalid_request"),
        ({"redirect_uri": REDIRECT + "/"}, "invalid_request"),
        ({"redirect_uri": REDIRECT + "?x=1"}, "invalid_request"),
        ({"redirect_uri": "HTTPS://app.example.com/callback"}, "invalid_request"),
    ],
)
async def test_phase_one_errors_are_shown_not_redirected(
    http: httpx.AsyncClient, overrides: dict[str, str], error: str
) -> None:
    client_id, _ = await web_client(http)
    with pytest.raises(ShowError) as raised:
        await parse(http, **good(client_id, **overrides))
    assert raised.value.error == error


async def test_a_disabled_client_is_shown_an_error(http: httpx.AsyncClient) -> None:
    client_id, _ = await web_client(http)
    await services_of(http).ops.clients.set_disabled(OPERATOR, client_id, True)
    with pytest.raises(ShowError):
        await parse(http, **good(client_id))


def test_a_repeated_parameter_is_shown_not_redirected() -> None:
    with pytest.raises(ShowError):
        read_params([("client_id", "a"), ("redirect_uri", REDIRECT), ("redirect_uri", "https://evil.example/")])


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "-"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"code_challenge": "-"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "-"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": 'openid "quoted"'}, "invalid_scope"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"resource": "https://elsewhere.example.com"}, "invalid_target"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "urn:x"}, "request_uri_not_supported"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"nonce": "n" * 513}, "invalid_request"),
    ],
)
async def test_later_errors_are_redirected_with_state(
    http: httpx.AsyncClient, overrides: dict[str, str], error: str
) -> None:
    client_id, _ = await web_client(http)
    with pytest.raises(RedirectError) as raised:
        await parse(http, **good(client_id, **overrides))
    assert raised.value.error == error
    assert raised.value.redirect_uri == REDIRECT and raised.value.state == "s-1"


async def test_a_client_without_the_grant_is_unauthorized(http: httpx.AsyncClient) -> None:
    client_id, _ = await web_client(http, grant_types=("password",))
    with pytest.raises(RedirectError) as raised:
        await parse(http, **good(client_id))
    assert raised.value.error == "unauthorized_client"


def _query(location: str) -> dict[str, Any]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_redirects_carry_iss_and_state_and_keep_the_registered_query(http: httpx.AsyncClient) -> None:
    issuer = services_of(http).settings.url
    location = error_redirect("https://app.example.com/cb?tenant=a", "access_denied", "no", "s&1", issuer)
    assert location.startswith("https://app.example.com/cb?")
    assert _query(location) == {
        "tenant": "a", "error": "access_denied", "error_description": "no", "state": "s&1", "iss": issuer
    }
    assert "state" not in _query(error_redirect(REDIRECT, "access_denied", "no", None, issuer))
    client_id, _ = await web_client(http)
    request = await parse(http, **good(client_id))
    assert _query(code_redirect(request, "the-code", issuer)) == {"code": "the-code", "state": "s-1", "iss": issuer}
    with pytest.raises(RedirectError) as raised:
        await parse(http, **good(client_id, response_type="token"))
    assert _query(raised.value.location(issuer))["error"] == "unsupported_response_type"
