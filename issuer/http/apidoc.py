"""What each handler declares for the OpenAPI document, next to its code: ``@documented(summary,
family, *responses, body=Model)``. A family (admin, account, client-authenticated OAuth, public)
brings its tag, its security and the errors its guard answers; the responses add what the
handler itself answers. issuer.http.openapi turns the declarations and the route table into
the document, and refuses a route whose handler declared nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from issuer.http.protocol_schemas import OAuthErrorBody
from issuer.http.schemas import Problem
from issuer.oauth.scopes import ADMIN_SCOPE

Schema = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]
H = TypeVar("H", bound=Handler)

JSON = "application/json"
PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    """One documented response: ``schema`` is a pydantic model, any type pydantic describes,
    or a JSON Schema dict; None for no body."""

    description: str
    schema: Any = None
    media: str = JSON
    headers: tuple[str, ...] = ()


Replies = dict[int, tuple[Reply, ...]]


def merge(*groups: Replies) -> Replies:
    merged: dict[int, tuple[Reply, ...]] = {}
    for group in groups:
        for status, replies in group.items():
            merged[status] = merged.get(status, ()) + replies
    return dict(sorted(merged.items()))


def ok(schema: Any, description: str = "OK", status: int = 200) -> Replies:
    return {status: (Reply(description, schema, headers=("Cache-Control",)),)}


def no_content(description: str, status: int = 204) -> Replies:
    return {status: (Reply(description, headers=("Cache-Control",)),)}


def problem(status: int, description: str, *headers: str) -> Replies:
    return {status: (Reply(description, Problem, PROBLEM, headers),)}


def oauth_error(status: int, description: str, *headers: str) -> Replies:
    return {status: (Reply(description, OAuthErrorBody, JSON, headers),)}


TOO_LARGE = "Body larger than the configured limit"
UNAVAILABLE_TEXT = "The database is unavailable for now; retry after Retry-After seconds"
# The request middleware refuses an oversized Content-Length on every route, before routing.
BODY_GUARD = problem(413, TOO_LARGE)
# Every operation that reads the database answers 503 while it is down (issuer.errors.ServiceUnavailable).
UNAVAILABLE = problem(503, UNAVAILABLE_TEXT, "Retry-After")
JSON_BODY = merge(
    problem(400, "The body is not a JSON object, or is nested more than 32 levels deep"),
    problem(415, "The body is not application/json"),
)
RATE_LIMITED = oauth_error(429, "temporarily_unavailable: too many attempts", "Retry-After")
HASH_BUDGET_SPENT = problem(503, "The password-hash budget is spent; retry later", "Retry-After")


def invalid(description: str) -> Replies:
    return problem(422, description + " (errors names each field; body: unknown fields)")


def not_found(what: str) -> Replies:
    return problem(404, f"No such {what}")


def bad_query(description: str) -> Replies:
    return problem(400, description)


def _bearer_errors(scope: str | None = None) -> Replies:
    errors = merge(
        oauth_error(400, "invalid_request: Authorization does not use the Bearer scheme", "WWW-Authenticate"),
        oauth_error(
            401,
            "invalid_token: missing, invalid, expired or revoked access token, one not meant for this issuer, "
            "or one whose client or user was deleted or disabled",
            "WWW-Authenticate",
        ),
    )
    if scope:
        errors = merge(
            errors,
            oauth_error(
                403,
                f"insufficient_scope: the token lacks {scope}, or its client or user no longer holds that power",
                "WWW-Authenticate",
            ),
        )
    return errors


@dataclass(frozen=True)
class Family:
    tag: str
    replies: Replies = field(default_factory=dict)
    security: list[dict[str, list[str]]] | None = None


PUBLIC_API = Family("discovery")
OPERATIONS_API = Family("operations")
# {}: client_secret_post, or a public client's client_id in the body
CLIENT_API = Family(
    "oauth",
    merge(
        oauth_error(400, "invalid_request: not a UTF-8 form, or a parameter missing or repeated"),
        oauth_error(401, "invalid_client: client authentication failed", "WWW-Authenticate"),
        oauth_error(413, TOO_LARGE),
        oauth_error(503, f"temporarily_unavailable: {UNAVAILABLE_TEXT}", "Retry-After"),
    ),
    [{"clientBasic": []}, {}],
)
ACCOUNT_API = Family(
    "account",
    merge(
        _bearer_errors(),
        oauth_error(401, "invalid_token: the token does not belong to an active user", "WWW-Authenticate"),
    ),
    # "oauth2": the same bearer token, obtained by Swagger UI's Authorize (issuer.http.openapi)
    [{"bearer": []}, {"oauth2": []}],
)
REGISTRATION_API = Family("account")
ADMIN_API = Family(
    "admin", merge(_bearer_errors(ADMIN_SCOPE), UNAVAILABLE), [{"bearer": [ADMIN_SCOPE]}, {"oauth2": [ADMIN_SCOPE]}]
)

TAGS = {
    "discovery": "Metadata and public keys",
    "oauth": "Client-authenticated OAuth 2.0 endpoints",
    "account": "End users: registration, userinfo and their own account",
    "admin": f"Management API; bearer token with scope {ADMIN_SCOPE}",
    "operations": "Health, readiness, metrics and this document",
}


@dataclass(frozen=True)
class Operation:
    summary: str
    family: Family
    replies: Replies
    body: Any = None
    body_media: str = JSON
    query: tuple[str, ...] = ()
    description: str | None = None


DECLARED: dict[Handler, Operation] = {}


def documented(
    summary: str,
    family: Family,
    *replies: Replies,
    body: Any = None,
    form: bool = False,
    query: tuple[str, ...] = (),
    description: str | None = None,
) -> Callable[[H], H]:
    """Declare a handler's operation; ``query`` names entries of QUERY_PARAMETERS."""

    def declare(handler: H) -> H:
        DECLARED[handler] = Operation(
            summary, family, merge(*replies), body, FORM if form else JSON, query, description
        )
        return handler

    return declare


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": where, "required": False, "schema": schema, "description": description}


QUERY_PARAMETERS: dict[str, Schema] = {
    "limit": _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "Page size"),
    "after": _param("after", "query", {"type": "string", "maxLength": 256}, "Cursor: `next` of the previous page"),
    "before": _param(
        "before",
        "query",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        "Entries older than this id; 0 = newest",
    ),
    "force": _param(
        "force", "query", {"type": "boolean", "default": False}, "Activate the pending key even if not yet safe"
    ),
    "If-None-Match": _param("If-None-Match", "header", {"type": "string"}, "ETag of a cached JWKS"),
}

HEADERS: dict[str, Schema] = {
    "WWW-Authenticate": {
        "description": "RFC 6750 §3 Bearer challenge, or a Basic challenge for client authentication",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}},
    "ETag": {"description": "Validator of the JWKS document", "schema": {"type": "string"}},
    "Cache-Control": {
        "description": "Caching policy (no-store on token and account responses)",
        "schema": {"type": "string"},
    },
}
