"""Lean endpoints: the hot POSTs (token, introspection) and GETs (JWKS, /healthz) served straight
from ASGI.

``LeanJSON`` sits inside RequestMiddleware, BrowserCORS and AllowedMethods (so size limits, CORS,
OPTIONS/405, the access log and metrics still apply) and answers the requests it knows itself,
skipping the router, the exception middleware and Response objects. Each endpoint is the route's
own handler, split in two: ``route`` (what the router serves and /openapi.json documents) and a
function giving the same answer, so both paths run the same steps: ``body`` for a POST (its 200
JSON; errors are rendered by the app's own handlers), ``answer`` for a GET (an ``Answer``, which
the route turns into a Response). Anything unexpected propagates to the 500 handler as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from issuer.errors import OAuthError, ProblemError, ServiceUnavailable
from issuer.http.responses import handle_oauth_error, handle_problem, handle_unavailable
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
    """POST of the paths in ``endpoints`` and GET of those in ``gets`` without the router (see the
    module's docstring)."""

    def __init__(
        self, app: ASGIApp, endpoints: Mapping[str, LeanEndpoint], gets: Mapping[str, LeanGet] | None = None
    ) -> None:
        self.app = app
        self.endpoints = dict(endpoints)
        self.gets = dict(gets or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and (get := self.gets.get(scope["path"])) is not None:
            scope["endpoint"] = get.route
            answer = get.answer(scope, scope["state"]["services"])
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.raw_headers()})
            await send({"type": "http.response.body", "body": answer.body})
            return
        endpoint = self.endpoints.get(scope["path"])
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = endpoint.route
        request = Request(scope, receive)
        try:
            body = await endpoint.body(request, request.state.services)
        except OAuthError as exc:
            response = await handle_oauth_error(request, exc)
        except ServiceUnavailable as exc:
            response = await handle_unavailable(request, exc)
        except ProblemError as exc:
            response = await handle_problem(request, exc)
        else:
            out = orjson.dumps(body)
            start = {"type": "http.response.start", "status": 200,
                     "headers": [*_HEADERS, (b"content-length", str(len(out)).encode())]}
            await send(start)
            await send({"type": "http.response.body", "body": out})
            return
        await response(scope, receive, send)
