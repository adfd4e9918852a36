"""RFC 7009 revocation and RFC 7662 introspection endpoints (client-authenticated)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import InvalidClient
from issuer.http.clientauth import authenticate_client
from issuer.http.forms import read_form
from issuer.http.responses import no_store_json
from issuer.services import Services
from issuer.tokens.revoke import introspect_token, revoke_token


async def revoke(request: Request) -> Response:
    services: Services = request.state.services
    params = await read_form(request, services.settings.max_body_bytes)
    client = await authenticate_client(request, params, services.clients, services.settings.url)
    await revoke_token(services.token_context, client, params.require("token"), params.get("token_type_hint"))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def introspect(request: Request) -> Response:
    services: Services = request.state.services
    params = await read_form(request, services.settings.max_body_bytes)
    client = await authenticate_client(request, params, services.clients, services.settings.url)
    if client.is_public:
        raise InvalidClient("introspection requires a confidential client")
    token, hint = params.require("token"), params.get("token_type_hint")
    return no_store_json(await introspect_token(services.token_context, client, token, hint))
