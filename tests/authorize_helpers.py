"""Browser sign-in below HTTP: a registered web client, a signed-in session and codes minted
through issuer.authorize, so the token endpoint can be tested without the pages."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from issuer.accounts.users import NewUser
from issuer.authorize import AuthorizationRequest, AuthorizeContext, BrowserSession, parse_authorization_request
from issuer.models import User
from issuer.oauth.params import Params
from issuer.operations import Actor
from tests.conftest import OPERATOR, make_client, services_of

REDIRECT = "https://app.example.com/callback"
PASSWORD = "password-123"


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def web_client(http: httpx.AsyncClient, *, public: bool = True, **kwargs: Any) -> tuple[str, str | None]:
    """A browser client (authorization_code + refresh_token) redirecting to REDIRECT."""
    defaults: dict[str, Any] = {
        "name": "web app",
        "grant_types": ("authorization_code", "refresh_token"),
        "scopes": ("read",),
        "redirect_uris": (REDIRECT, "http://127.0.0.1/callback"),
        "post_logout_redirect_uris": ("https://app.example.com/bye",),
        "public": public,
    }
    return await make_client(http, **{**defaults, **kwargs})


async def user(http: httpx.AsyncClient, username: str = "alice", roles: tuple[str, ...] = ()) -> User:
    services = services_of(http)
    found = await services.users.store.find_user(username)
    if found is not None:
        return found  # type: ignore[no-any-return]
    return await services.ops.users.create(  # type: ignore[no-any-return]
        OPERATOR, NewUser(username, PASSWORD, f"{username}@example.com"), roles
    )


def context(http: httpx.AsyncClient) -> AuthorizeContext:
    return services_of(http).authorize  # type: ignore[no-any-return]


async def parse(http: httpx.AsyncClient, **params: str) -> AuthorizationRequest:
    ctx = context(http)
    return await parse_authorization_request(Params(params.items()), ctx.clients, ctx.issuer)


@dataclass
class Flow:
    request: AuthorizationRequest
    session: BrowserSession
    cookie: str
    verifier: str
    code: str


async def authorize(
    http: httpx.AsyncClient, client_id: str, username: str = "alice", scope: str = "openid profile email read",
    **params: str,
) -> Flow:
    """What the pages do for a signed-in user who consents: a session and a code for ``client_id``."""
    verifier, challenge = pkce()
    request = await parse(
        http, client_id=client_id, redirect_uri=REDIRECT, response_type="code", scope=scope,
        code_challenge=challenge, code_challenge_method="S256", state="xyz", **params,
    )
    ctx = context(http)
    who = await user(http, username)
    session, cookie = await ctx.sessions.start(who.user_id, "127.0.0.1", "test")
    if not request.client.first_party:  # the consent page's Allow
        await services_of(http).ops.consents.grant(Actor.user(who.user_id), who.user_id, client_id, request.scope)
    code = await ctx.codes.issue(request, session)
    return Flow(request, session, cookie, verifier, code)


async def exchange(
    http: httpx.AsyncClient, client: tuple[str, str | None], flow: Flow, **extra: str
) -> httpx.Response:
    client_id, secret = client
    data = {
        "grant_type": "authorization_code", "code": flow.code, "redirect_uri": REDIRECT,
        "code_verifier": flow.verifier, **extra,
    }
    if secret is None:
        return await http.post("/oauth2/token", data={**data, "client_id": client_id})
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret))
