"""RFC 6749 §4.4: a confidential client obtains a token for itself (``sub`` = its client_id)."""

from __future__ import annotations

from typing import Any

from issuer.errors import UnauthorizedClient
from issuer.grants.base import GrantRequest, bearer_response
from issuer.scopes import grant_audience, grant_scope, parse_scope
from issuer.services import Services


async def client_credentials(services: Services, request: GrantRequest) -> dict[str, Any]:
    client = request.client
    if client.is_public:
        raise UnauthorizedClient("client_credentials requires a confidential client")
    scope = grant_scope(parse_scope(request.params.get("scope")), client.scopes)
    audience = grant_audience(request.params.all("resource"), client.audiences, services.settings.url)
    issued = await services.access_tokens.mint(
        subject=client.client_id, client_id=client.client_id, scope=scope, audience=audience
    )
    return bearer_response(issued.token, issued.expires_in, scope)
