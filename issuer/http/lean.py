"""Lean JSON endpoints: a few hot POST endpoints served straight from ASGI.

``LeanJSON`` sits inside RequestMiddleware, BrowserCORS and AllowedMethods (so size limits, CORS,
OPTIONS/405, the access log and metrics still apply) and answers the POSTs it knows itself,
skipping the router, the exception middleware and Response objects. Each endpoint is the route's
own handler, split in two: ``route`` (what the router serves and /openapi.json documents) and a
``body`` function giving the same 200 JSON answer, so both paths run the same steps. Errors are
rendered by the app's own handlers; anything unexpected propagates to its 500 handler as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from issuer.errors import OAuthError, ProblemError, ServiceUnavailable
from issuer.http.responses import handle_oauth_error, handle_problem, handle_unavailable
from issuer.services import Services

_HEADERS = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache"), (b"content-type", b"application/json")]


@dataclass(frozen=True)
class LeanEndpoint:
    route: Callable[..., Any]
    """The route's handler: the access log's and the latency histogram's route name."""
    body: Callable[[Request, Services], Awaitable[dict[str, Any]]]
    """The 200 answer as a dict (sent no-store), or an exception the app's handlers render."""


class LeanJSON:
    """POST of the paths in ``endpoints`` without the router (see the module's docstring)."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, LeanEndpoint]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
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
