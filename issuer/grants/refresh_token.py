"""RFC 6749 §6: rotate the refresh token; scope may narrow, never widen (the new refresh token
keeps the original scope, as §6 requires); a disabled user's family is revoked."""

from __future__ import annotations

from typing import Any

from issuer.errors import InvalidGrant, InvalidScope, InvalidTarget
from issuer.grants.base import GrantRequest, bearer_response
from issuer.models import RefreshToken
from issuer.scopes import parse_scope
from issuer.services import Services


async def refresh_token(services: Services, request: GrantRequest) -> dict[str, Any]:
    params, client = request.params, request.client
    presented = params.require("refresh_token")
    requested = parse_scope(params.get("scope"))
    resources = params.all("resource")

    def check(token: RefreshToken) -> None:
        if requested is not None and not set(requested) <= set(token.scope.split()):
            raise InvalidScope("scope may not exceed the scope originally granted")
        if not set(resources) <= set(token.audience.split()):
            raise InvalidTarget("resource was not part of the original grant")

    rotation = await services.refresh_tokens.rotate(presented, client.client_id, check)
    granted = tuple(rotation.token.scope.split())
    audience = tuple(dict.fromkeys(resources)) or tuple(rotation.token.audience.split())
    user = rotation.user
    if user is None or user.disabled:
        await services.refresh_tokens.revoke_family(rotation.family.family_id, "user disabled")
        raise InvalidGrant("the user is not active")
    scope = requested if requested is not None else granted
    issued = await services.access_tokens.mint(
        subject=user.user_id,
        client_id=client.client_id,
        scope=scope,
        audience=audience,
        extra={"roles": services.users.roles.effective(user.roles)},
    )
    return bearer_response(issued.token, issued.expires_in, scope, refresh_token=rotation.refresh_token)
