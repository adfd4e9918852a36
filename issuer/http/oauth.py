"""RFC 7009 revocation and RFC 7662 introspection endpoints (client-authenticated)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import InvalidClient
from issuer.http.apidoc import CLIENT_API, documented, no_content, oauth_error, ok
from issuer.http.clientauth import authenticate_client
from issuer.http.forms import read_form
from issuer.http.lean import LeanEndpoint
from issuer.http.protocol_schemas import Introspection, TokenHintRequest
from issuer.http.responses import no_store_json
from issuer.services import Services
from issuer.tokens.revoke import introspect_token, revoke_token


@documented(
    "Revoke a token (RFC 7009); a refresh token revokes its whole family",
    CLIENT_API,
    no_content("Revoked, or unknown / not this client's (no difference is revealed)", 200),
    body=TokenHintRequest,
    form=True,
)
async def revoke(request: Request) -> Response:
    services: Services = request.state.services
    params = await read_form(request, services.settings.max_body_bytes)
    client = await authenticate_client(request, params, services.clients, services.settings.url)
    await revoke_token(services.token_context, client, params.require("token"), params.get("token_type_hint"))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@documented(
    "Introspect a token (RFC 7662)",
    CLIENT_API,
    ok(Introspection, "Token state"),
    oauth_error(401, "invalid_client: unknown, disabled or public client, or wrong secret"),
    body=TokenHintRequest,
    form=True,
    description="Confidential clients only: client_secret_basic or client_secret_post. An access token is "
    "described only to a caller registered with an audience the token names, or with the scope "
    "issuer:introspect (RFC 7662 §4); otherwise, and for a token whose client or user was deleted or "
    'disabled, the answer is {"active": false}.',
)
async def introspect(request: Request) -> Response:
    return no_store_json(await introspection(request, request.state.services))


async def introspection(request: Request, services: Services) -> dict[str, Any]:
    params = await read_form(request, services.settings.max_body_bytes)
    client = await authenticate_client(request, params, services.clients, services.settings.url)
    if client.is_public:
        raise InvalidClient("introspection requires a confidential client")
    token, hint = params.require("token"), params.get("token_type_hint")
    return await introspect_token(services.token_context, client, token, hint)


# POST /oauth2/introspect straight from ASGI (issuer.http.lean), the same answers as ``introspect``.
LEAN = LeanEndpoint(introspect, introspection)
