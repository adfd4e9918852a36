"""Rendering, in one place: RFC 6749 §5.2 errors, RFC 9457 problems, and no-store JSON."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import OAuthError, ProblemError, ServiceUnavailable

log = logging.getLogger("issuer.http")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# ASGI scope key of the extra fields of the request's access-log line (issuer.http.middleware).
LOG_FIELDS = "issuer.log"


def note(request: Request, **fields: str) -> None:
    """Add identifiers (never secrets or tokens) to this request's access-log line."""
    request.scope.setdefault(LOG_FIELDS, {}).update(fields)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, media: str = "application/json"
) -> Response:
    return Response(orjson.dumps(body), status, headers, media)


def no_store_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(body, status, {**NO_STORE, **(headers or {})})


def done() -> Response:
    """204 for a change that has nothing to return (an account or admin action)."""
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def oauth_error(exc: OAuthError) -> Response:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return no_store_json(body, exc.status_code, exc.headers)


def problem(status: int, title: str, detail: str = "", headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return json_response(body, status, {**NO_STORE, **(headers or {})}, "application/problem+json")


async def handle_oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    note(request, error=exc.error)
    return oauth_error(exc)


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    extra = {"errors": exc.errors} if exc.errors else {}
    return problem(exc.status, exc.title, exc.detail, exc.headers, **extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    from http import HTTPStatus

    return problem(exc.status_code, HTTPStatus(exc.status_code).phrase, headers=dict(exc.headers or {}))


async def handle_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceUnavailable)
    # The cause is for the operator (one line, no traceback: an outage is not a bug); never for the client.
    cause = type(exc.__cause__ or exc).__name__
    log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path, cause)
    headers = {"Retry-After": str(exc.retry_after)}
    if request.url.path.startswith("/oauth2/"):
        body = {"error": "temporarily_unavailable", "error_description": "the service is unavailable; retry later"}
        return no_store_json(body, 503, headers)
    return problem(503, "Service Unavailable", "a dependency is unavailable; retry later", headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal Server Error")
