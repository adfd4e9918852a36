"""Driving the hosted pages without a browser (httpx over ASGI keeps the cookies): PKCE,
authorization URLs, hidden form fields, users and browser-flow clients."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from issuer.accounts.users import NewUser
from issuer.models import User
from issuer.services import Services
from tests.authorize_helpers import PASSWORD as PASSWORD
from tests.authorize_helpers import REDIRECT as REDIRECT
from tests.authorize_helpers import pkce as pkce
from tests.conftest import OPERATOR, make_client, services_of

LOGGED_OUT = "https://app.example.com/bye"


def authorize_query(client_id: str, challenge: str, redirect_uri: str = REDIRECT, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v})


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1).replace("&amp;", "&")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def add_user(services: Services, username: str, *, disabled: bool = False) -> User:
    user = await services.ops.users.create(OPERATOR, NewUser(username, PASSWORD, f"{username}@example.com"))
    if disabled:
        user = await services.ops.users.set_disabled(OPERATOR, user.user_id, True)
    return user


async def web_client(http: httpx.AsyncClient, *, first_party: bool = True, **kwargs: Any) -> str:
    """A public client of the code flow, redirecting to REDIRECT; returns its id."""
    values: dict[str, Any] = {
        "name": "Photo Gallery",
        "grant_types": ("authorization_code", "refresh_token"),
        "scopes": ("photos:read",),
        "audiences": ("https://api.example.com",),
        "public": True,
        "redirect_uris": (REDIRECT,),
        "post_logout_redirect_uris": (LOGGED_OUT,),
        "first_party": first_party,
    }
    values.update(kwargs)
    client_id, _ = await make_client(http, **values)
    return client_id


async def sign_in(
    http: httpx.AsyncClient, login_location: str, username: str, password: str = PASSWORD
) -> httpx.Response:
    """Follow a redirect to the sign-in page and submit it; returns the POST's response."""
    page = await http.get(login_location)
    assert page.status_code == 200, page.text
    form = {
        "csrf": hidden(page.text, "csrf"),
        "ticket": hidden(page.text, "ticket"),
        "username": username,
        "password": password,
    }
    return await http.post("/login", data=form)


async def code_flow(http: httpx.AsyncClient, client_id: str, username: str, **extra: str) -> tuple[str, str, str]:
    """Authorize → sign in → the code at the redirect URI; returns (code, verifier, state)."""
    verifier, challenge = pkce()
    query = authorize_query(client_id, challenge, **extra)
    start = await http.get("/oauth2/authorize?" + query)
    assert start.status_code == 303, start.text
    if start.headers["location"].startswith("/login"):
        start = await sign_in(http, start.headers["location"], username)
        assert start.status_code == 303, start.text
    back = query_of(start.headers["location"])
    assert start.headers["location"].startswith(REDIRECT), start.headers["location"]
    assert "code" in back, back
    return back["code"], verifier, back["state"]


def services(http: httpx.AsyncClient) -> Services:
    found: Services = services_of(http)
    return found


def assert_page_headers(response: httpx.Response) -> None:
    csp = response.headers.get_list("content-security-policy")
    assert len(csp) == 1, csp
    assert "frame-ancestors 'none'" in csp[0] and "script-src 'self'" in csp[0] and "unsafe-inline" not in csp[0]
    assert "base-uri 'none'" in csp[0] and "form-action 'self'" in csp[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("text/html")
