"""Lean endpoints: the hot POSTs (token, introspection) and GETs (JWKS, /healthz) served straight
from ASGI.

``LeanJSON`` is the app's outermost layer. It answers the requests it knows itself, outside
Starlette's layers (its error middleware, our middleware, the router, the exception middleware
and Response objects), and hands every other request to the routed app. What every request gets
around the app still applies, from the same place (``issuer.http.middleware.Front``): the size,
transfer-coding and NUL guards, the forwarded client address, the security headers, the latency
histogram and the access line. A request for a CORS path that carries an ``Origin`` (with CORS
configured) goes to the routed app, where BrowserCORS answers it; OPTIONS, HEAD and other methods
go there too (AllowedMethods). Skipping Starlette's layers saved an RS256 token about 12 µs of
its ~360 on this machine (bench client_credentials --pin --baseline-src: 348 against 360 µs).

Each endpoint is the route's own handler, split in two: ``route`` (what the router serves and
/openapi.json documents) and a function giving the same answer, so both paths run the same steps:
``body`` for a POST (its 200 JSON; errors are rendered by the app's own handlers), ``answer`` for a
GET (an ``Answer``, which the route turns into a Response). Their answers carry none of the
security headers themselves. Anything unexpected gets the app's 500 answer and goes on to the
server, as from Starlette's ServerErrorMiddleware."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from issuer.errors import OAuthError, ProblemError, ServiceUnavailable
from issuer.http.middleware import CLIENT_CLOSED_REQUEST, Front
from issuer.http.responses import handle_oauth_error, handle_problem, handle_unavailable, handle_unexpected
from issuer.services import Services

_HEADERS = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache"), (b"content-type", b"application/json")]


class Answer(NamedTuple):
    """A whole answer to a GET: status, headers (``content-length`` is added) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        if self.status == 304:  # no content, and no length of the representation it stands for
            return self.headers
        return [*self.headers, (b"content-length", str(len(self.body)).encode())]

    def response(self) -> Response:
        """The same answer as a Starlette Response: what the routed handler returns."""
        response = Response(self.body, self.status)
        response.raw_headers = self.raw_headers()
        return response


@dataclass(frozen=True)
class LeanGet:
    route: Callable[..., Any]
    """The route's handler (``answer(...).response()``): the access log's and histogram's route name."""
    answer: Callable[[Scope, Services], Answer]


@dataclass(frozen=True)
class LeanEndpoint:
    route: Callable[..., Any]
    """The route's handler: the access log's and the latency histogram's route name."""
    body: Callable[[Request, Services], Awaitable[dict[str, Any]]]
    """The 200 answer as a dict (sent no-store), or an exception the app's handlers render."""


class LeanJSON:
    """The outermost layer: POST of the paths in ``endpoints`` and GET of those in ``gets`` are
    answered here, everything else goes to ``app`` (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        front: Front,
        endpoints: Mapping[str, LeanEndpoint],
        gets: Mapping[str, LeanGet] | None = None,
        cors_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.front = front
        self.endpoints = dict(endpoints)
        self.gets = dict(gets or {})
        self.cors_paths = cors_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST":
                lean: LeanEndpoint | LeanGet | None = self.endpoints.get(scope["path"])
            else:
                lean = self.gets.get(scope["path"]) if method == "GET" else None
            if lean is not None and not (scope["path"] in self.cors_paths and _has_origin(scope)):
                await self._answer(lean, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, lean: LeanEndpoint | LeanGet, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        started = time.perf_counter()
        status, outcome = 500, ""
        try:
            refusal = front.admit(scope)
            if refusal is not None:
                status = refusal.status_code
                await refusal(scope, receive, front.secured(send))
                return
            scope["endpoint"] = lean.route
            request = Request(scope, receive)
            try:
                if isinstance(lean, LeanGet):
                    answer = lean.answer(scope, request.state.services)
                    status = answer.status
                    await send({"type": "http.response.start", "status": status,
                                "headers": [*answer.raw_headers(), *front.headers]})
                    await send({"type": "http.response.body", "body": answer.body})
                    return
                body = await lean.body(request, request.state.services)
            except OAuthError as exc:
                response = await handle_oauth_error(request, exc)
            except ServiceUnavailable as exc:
                response = await handle_unavailable(request, exc)
            except ProblemError as exc:
                response = await handle_problem(request, exc)
            except ClientDisconnect:
                raise
            except Exception as exc:
                # What Starlette's ServerErrorMiddleware does for a routed request: the app's 500
                # answer, then the exception goes on to the server (its log line, the connection closed).
                await (await handle_unexpected(request, exc))(scope, receive, front.secured(send))
                raise
            else:
                out = orjson.dumps(body)
                status = 200
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(out)).encode()), *front.headers]})
                await send({"type": "http.response.body", "body": out})
                return
            status = response.status_code
            await response(scope, receive, front.secured(send))
        except ClientDisconnect:
            # The client hung up before sending its whole request: nothing to answer, not our fault.
            status, outcome = CLIENT_CLOSED_REQUEST, "client disconnected"
        finally:
            front.finish(scope, status, started, outcome)


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
