"""One pure-ASGI middleware for what every request needs: a body-size guard, security headers,
the latency histogram, and one JSON log line per request (no query strings, bodies or headers,
so no secret or token is ever logged)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from issuer.errors import BodyTooLarge
from issuer.http.responses import no_store_json, oauth_error, problem
from issuer.metrics import Metrics

log = logging.getLogger("issuer.access")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"cross-origin"),
]


def _refuse_nul(scope: Scope) -> Response | None:
    """A NUL is never part of a valid path id (and PostgreSQL text cannot hold one): decided here,
    once, for every route, as "nothing there" (404). Query parameters are refused where they are
    parsed (issuer.http.admin._page)."""
    if "\x00" not in scope["path"]:
        return None
    message = "the path contains a NUL character"
    if scope["path"].startswith("/oauth2/"):
        return no_store_json({"error": "invalid_request", "error_description": message}, 404)
    return problem(404, "Not Found", message)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None], max_body: int, https: bool) -> None:
        self.app = app
        self._metrics = metrics
        self._max_body = max_body
        self._headers = _SECURITY_HEADERS + (
            [(b"strict-transport-security", b"max-age=31536000; includeSubDomains")] if https else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + self._headers
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        try:
            if length is not None and (not length.isdigit() or int(length) > self._max_body):
                message = f"the body exceeds {self._max_body} bytes"
                # OAuth endpoints answer in RFC 6749 §5.2 form, everything else as problem details.
                response = (
                    oauth_error(BodyTooLarge(message))
                    if scope["path"].startswith("/oauth2/")
                    else problem(413, "Content Too Large", message)
                )
                await response(scope, receive, send_wrapper)
            elif (refusal := _refuse_nul(scope)) is not None:
                await refusal(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            endpoint = scope.get("endpoint")
            route = getattr(endpoint, "__name__", "unmatched")
            metrics = self._metrics()
            if metrics is not None:
                metrics.request_latency.labels(scope["method"], route, str(status)).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )
