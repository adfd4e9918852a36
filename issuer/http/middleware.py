"""Pure-ASGI middleware. ``RequestMiddleware`` does what every request needs: a body-size and
transfer-coding guard, security headers, the client address behind trusted proxies, the latency
histogram, and one JSON log line per request (no query strings, bodies or headers, so no secret
or token is ever logged). ``BrowserCORS`` applies CORS to the endpoints meant for browsers only;
``AllowedMethods`` answers OPTIONS and 405 with every method the path has."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from issuer.errors import BodyTooLarge, OAuthError, UnsupportedTransferCoding
from issuer.http.forwarded import TrustedProxies
from issuer.http.responses import LOG_FIELDS, no_store_json, oauth_error, problem
from issuer.observability.logs import info_line
from issuer.observability.metrics import Metrics

log = logging.getLogger("issuer.access")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"cross-origin"),
]


# Status logged (never sent) when the client went away before its request was read.
CLIENT_CLOSED_REQUEST = 499


def _refusal(scope: Scope, exc: OAuthError, title: str) -> Response:
    scope.setdefault(LOG_FIELDS, {})["error"] = exc.error
    # OAuth endpoints answer in RFC 6749 §5.2 form, everything else as problem details.
    if scope["path"].startswith("/oauth2/"):
        return oauth_error(exc)
    return problem(exc.status_code, title, exc.description)


def _refuse_nul(scope: Scope) -> Response | None:
    """A NUL is never part of a valid path id (and PostgreSQL text cannot hold one): decided here,
    once, for every route, as "nothing there" (404). Query parameters are refused where they are
    parsed (issuer.http.admin._common._page)."""
    if "\x00" not in scope["path"]:
        return None
    message = "the path contains a NUL character"
    if scope["path"].startswith("/oauth2/"):
        return no_store_json({"error": "invalid_request", "error_description": message}, 404)
    return problem(404, "Not Found", message)


class Front:
    """What every request gets around the app, in one place: the transfer-coding, size and NUL
    guards, the client address behind trusted proxies, the security headers, the latency histogram
    and the access line. ``RequestMiddleware`` applies it to the routed app; ``issuer.http.lean``
    to the hot endpoints it answers itself."""

    def __init__(
        self,
        metrics: Callable[[], Metrics | None],
        max_body: int,
        https: bool,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_body = max_body
        self._proxies = proxies or TrustedProxies([])
        self.headers = _SECURITY_HEADERS + (
            [(b"strict-transport-security", b"max-age=31536000; includeSubDomains")] if https else []
        )
        self._names = frozenset(name for name, _ in self.headers)

    def admit(self, scope: Scope) -> Response | None:
        """Apply the forwarded client address; the refusal of a request the app must not see (a
        transfer coding other than chunked 501, a body declared too large 413, a NUL in the path
        404), or None."""
        self._proxies.apply(scope)
        length = coding = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                coding = value
        if coding is not None and coding.strip().lower() != b"chunked":
            refused = UnsupportedTransferCoding("only the chunked transfer coding is supported")
            return _refusal(scope, refused, "Not Implemented")
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            too_large = BodyTooLarge(f"the body exceeds {self._max_body} bytes")
            return _refusal(scope, too_large, "Content Too Large")
        return _refuse_nul(scope)

    def secure(self, sent: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """An answer's headers with the security headers added."""
        sent = list(sent)
        names = self._names
        if any(name.lower() in names for name, _ in sent):
            # A response that chose its own (the pages' CSP) keeps it: two policies would both apply.
            present = {name.lower() for name, _ in sent}
            return [*sent, *(h for h in self.headers if h[0] not in present)]
        return [*sent, *self.headers]

    def secured(self, send: Send) -> Send:
        """``send`` adding the security headers to the answer's start."""

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.secure(message.get("headers") or ())
            await send(message)

        return secured_send

    def finish(self, scope: Scope, status: int, started: float, outcome: str = "") -> None:
        """The request's latency in the histogram, and its access line."""
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("endpoint"), "__name__", "unmatched")
        metrics = self._metrics()
        if metrics is not None:
            metrics.observe_request(scope["method"], route, status, elapsed)
        if log.isEnabledFor(logging.INFO):
            _access_log(scope, route, status, elapsed, outcome)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, front: Front) -> None:
        self.app = app
        self.front = front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        front = self.front
        started = time.perf_counter()
        status = 500
        outcome = ""

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = front.secure(message.get("headers") or ())
            await send(message)

        try:
            refusal = front.admit(scope)
            await (refusal or self.app)(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client hung up before sending its whole request: nothing to answer, not our fault.
            status, outcome = CLIENT_CLOSED_REQUEST, "client disconnected"
        finally:
            front.finish(scope, status, started, outcome)


def _access_log(scope: Scope, route: str, status: int, elapsed: float, outcome: str) -> None:
    # The values only: the line is made at the end of the loop's turn (issuer.observability.logs).
    info_line(log, "request", _access_fields, scope["method"], scope["path"], route, status, elapsed,
              scope.get("client"), outcome, scope.get(LOG_FIELDS))


def _access_fields(
    method: str, path: str, route: str, status: int, elapsed: float, client: tuple[str, int] | None, outcome: str,
    noted: dict[str, str] | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": method,
        "path": path[:200],
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "client": (client or ("-",))[0],
    }
    if outcome:
        fields["outcome"] = outcome
    # The OAuth error code and the client id, noted by the error handler and the token
    # endpoint (issuer.http.responses.note): identifiers only, never a credential.
    if noted:
        fields.update(noted)
    return fields


class BrowserCORS:
    """CORS for ``origins`` on ``paths`` only: the admin and account APIs must never be readable
    from a web page, whatever origins are configured."""

    def __init__(self, app: ASGIApp, paths: frozenset[str], origins: list[str]) -> None:
        self.app = app
        self._paths = paths
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            # X-Requested-With: Swagger UI sends it on its token requests (RFC 6749 clients in the browser).
            allow_headers=["Authorization", "Content-Type", "X-Requested-With"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self._paths:
            await self._cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class AllowedMethods:
    """OPTIONS → 204 with ``Allow``; a method the path lacks → 405 with the full ``Allow``.

    Starlette answers 405 from the first route whose path matches, so a path served by several
    routes (GET, PATCH, DELETE) would list only one of them."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self._routes = routes
        # Paths without parameters (the token endpoint…) are looked up, not matched, per request.
        self._static = {
            route.path: self._scan({"type": "http", "path": route.path, "root_path": "", "method": "GET"})
            for route in routes
            if "{" not in route.path
        }

    def _allowed(self, scope: Scope) -> set[str]:
        known = self._static.get(scope["path"])
        return known if known is not None else self._scan(scope)

    def _scan(self, scope: Scope) -> set[str]:
        methods: set[str] = set()
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods.update(route.methods or ())
        return methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(scope)
        if not allowed or (scope["method"] in allowed and scope["method"] != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if scope["method"] == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": allow})
        else:
            response = problem(405, "Method Not Allowed", headers={"Allow": allow})
        await response(scope, receive, send)
