"""Starlette integration: a decorator for one endpoint and a middleware for a whole app.

    @requires_token(verifier, roles=["manager"])
    async def report(request: Request) -> Response:
        token: AccessToken = request.state.token

Refusals are RFC 6750 answers (401/403 with ``WWW-Authenticate``, 400 for a malformed header,
503 when the issuer's keys cannot be had). Needs ``pip install 'issuer-verifier[starlette]'``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from issuer_verifier.bearer import authorize, refusal
from issuer_verifier.errors import BearerError, IssuerUnavailable
from issuer_verifier.token import AccessToken
from issuer_verifier.verifier import Verifier

Endpoint = Callable[[Request], Awaitable[Response]]


async def _check(
    verifier: Verifier, request: Request, scopes: Iterable[str], roles: Iterable[str], realm: str | None
) -> AccessToken | Response:
    try:
        return await authorize(verifier, request.headers.get("authorization"), scopes=scopes, roles=roles)
    except (BearerError, IssuerUnavailable) as exc:
        status, headers, body = refusal(exc, realm)
        return JSONResponse(body, status, headers)


def requires_token(
    verifier: Verifier, *, scopes: Iterable[str] = (), roles: Iterable[str] = (), realm: str | None = None
) -> Callable[[Endpoint], Endpoint]:
    """Protect one endpoint; the verified token is ``request.state.token``."""
    scopes, roles = tuple(scopes), tuple(roles)

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def protected(request: Request) -> Response:
            outcome = await _check(verifier, request, scopes, roles, realm)
            if isinstance(outcome, Response):
                return outcome
            request.state.token = outcome
            return await endpoint(request)

        return protected

    return decorate


class BearerTokenMiddleware:
    """Require a valid token (with ``scopes`` and ``roles``) on every HTTP request except the paths
    in ``exempt`` (exact matches); the token is ``request.state.token``."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        exempt: Collection[str] = (),
        realm: str | None = None,
    ) -> None:
        self.app, self.verifier, self.realm = app, verifier, realm
        self.scopes, self.roles, self.exempt = tuple(scopes), tuple(roles), frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        outcome = await _check(self.verifier, request, self.scopes, self.roles, self.realm)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        request.state.token = outcome
        await self.app(scope, receive, send)
