"""The token endpoint (RFC 6749 §3.2) as a list of small steps:
parse the form, find the grant, authenticate the client, check it may use the grant, run it.

``LEAN`` serves POST /oauth2/token straight from ASGI (issuer.http.lean): the same steps and the
same answers as ``token``, which stays the route (and what /openapi.json documents)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import (
    InvalidRequest,
    OAuthError,
    RateLimited,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from issuer.grants import GRANTS, GrantRequest
from issuer.http.apidoc import CLIENT_API, RATE_LIMITED, documented, oauth_error, ok
from issuer.http.clientauth import authenticate_client
from issuer.http.forms import read_form
from issuer.http.lean import LeanEndpoint
from issuer.http.protocol_schemas import TokenRequest, TokenResponse
from issuer.http.responses import no_store_json
from issuer.http.scope import client_host
from issuer.services import Services


def client_ip(request: Request, services: Services) -> str:
    """The client's address; behind trusted proxies RequestMiddleware has already put the
    forwarded one in the scope (ISSUER_FORWARDED_ALLOW_IPS)."""
    return client_host(request.scope)


@documented(
    "Token endpoint (RFC 6749 §3.2)",
    CLIENT_API,
    ok(TokenResponse, "Tokens issued"),
    oauth_error(400, "unsupported_grant_type, unauthorized_client, invalid_grant, invalid_scope or invalid_target"),
    RATE_LIMITED,
    oauth_error(503, "temporarily_unavailable: the password-hash budget is spent", "Retry-After"),
    body=TokenRequest,
    form=True,
)
async def token(request: Request) -> Response:
    return no_store_json(await issue(request, request.state.services))


async def issue(request: Request, services: Services) -> dict[str, Any]:
    try:
        return await _issue(request, services)
    except OAuthError as exc:
        services.metrics.token_errors.labels(exc.error).inc()
        raise


async def _issue(request: Request, services: Services) -> dict[str, Any]:
    params = await read_form(request, services.settings.max_body_bytes)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("missing parameter: grant_type")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"grant_type {grant_type[:64]!r} is not supported")
    client = await authenticate_client(request, params, services.clients, services.settings.url)
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    rate = services.settings.rate_limit_token_per_client
    if rate:
        retry_after = await services.limiter.hit(f"token-client:{client.client_id}", rate, 1)
        if retry_after is not None:
            raise RateLimited(retry_after)
    body = await grant(services.grants, GrantRequest(client, params, client_ip(request, services)))
    services.metrics.token_issued(grant_type, client.client_id)
    return body


LEAN = LeanEndpoint(token, issue)
