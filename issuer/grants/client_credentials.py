"""RFC 6749 §4.4: a confidential client obtains a token for itself (``sub`` = its client_id)."""

from __future__ import annotations

from typing import Any

from issuer.errors import UnauthorizedClient
from issuer.grants.base import GrantContext, GrantRequest, bearer_response
from issuer.oauth.scopes import grant_audience, grant_scope, parse_scope, settle_admin_scope


async def client_credentials(services: GrantContext, request: GrantRequest) -> dict[str, Any]:
    client = request.client
    if client.is_public:
        raise UnauthorizedClient("client_credentials requires a confidential client")
    requested = parse_scope(request.params.get("scope"))
    resources = request.params.all("resource")
    scope = grant_scope(requested, client.scopes)
    audience = grant_audience(resources, client.audiences, services.issuer)
    # The client's registration is its authority: grant_scope already held it to its scopes.
    scope, audience = settle_admin_scope(
        scope,
        audience,
        issuer=services.issuer,
        explicit=requested is not None,
        audience_chosen=bool(resources),
        may_administer=True,
    )
    issued = await services.access_tokens.mint(
        subject=client.client_id, client_id=client.client_id, scope=scope, audience=audience
    )
    return bearer_response(issued.token, issued.expires_in, scope)
