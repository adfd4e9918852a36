"""Starlette integration: a decorator for one endpoint and a middleware for a whole app.

    @requires_token(verifier, roles=["manager"])
    async def report(request: Request) -> Response:
        token: AccessToken = request.state.token

Refusals are RFC 6750 answers (401/403 with ``WWW-Authenticate``, 400 for a malformed header,
503 when the issuer's keys cannot be had). The middleware guards WebSocket connections too: a refused
handshake is closed (1008, or 1013 when the issuer is unavailable) before it is accepted.
Needs ``pip install 'issuer-verifier[starlette]'``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from issuer_verifier.bearer import authorize, refusal
from issuer_verifier.errors import BearerError, IssuerUnavailable
from issuer_verifier.token import AccessToken
from issuer_verifier.verifier import Verifier

Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013  # RFC 6455 §7.4.1, IANA WebSocket close codes


async def _check(
    verifier: Verifier, connection: HTTPConnection, scopes: Iterable[str], roles: Iterable[str], realm: str | None
) -> AccessToken | Response | WebSocketClose:
    try:
        return await authorize(verifier, connection.headers.get("authorization"), scopes=scopes, roles=roles)
    except (BearerError, IssuerUnavailable) as exc:
        if connection.scope["type"] == "websocket":
            unavailable = isinstance(exc, IssuerUnavailable)
            return WebSocketClose(TRY_AGAIN_LATER if unavailable else POLICY_VIOLATION, "unauthorized")
        status, headers, body = refusal(exc, realm)
        return JSONResponse(body, status, headers)


def requires_token(
    verifier: Verifier, *, scopes: Iterable[str] = (), roles: Iterable[str] = (), realm: str | None = None
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Protect one HTTP endpoint (async, or sync: run in the thread pool as Starlette would);
    the verified token is ``request.state.token``."""
    scopes, roles = tuple(scopes), tuple(roles)

    def decorate(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def protected(request: Request) -> Response:
            outcome = await _check(verifier, request, scopes, roles, realm)
            if not isinstance(outcome, AccessToken):
                assert isinstance(outcome, Response)  # an HTTP request is refused with a response
                return outcome
            request.state.token = outcome
            if is_async:
                return await cast(Callable[[Request], Awaitable[Response]], endpoint)(request)
            return cast(Response, await run_in_threadpool(endpoint, request))

        return protected

    return decorate


class BearerTokenMiddleware:
    """Require a valid token (with ``scopes`` and ``roles``) on every HTTP request and WebSocket
    handshake except the paths in ``exempt`` (exact matches); the token is ``request.state.token``
    (``websocket.state.token``)."""

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
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        outcome = await _check(self.verifier, connection, self.scopes, self.roles, self.realm)
        if not isinstance(outcome, AccessToken):
            await outcome(scope, receive, send)
            return
        connection.state.token = outcome
        await self.app(scope, receive, send)
