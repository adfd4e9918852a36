"""RFC 6749 §6: rotate the refresh token; scope may narrow, never widen (the new refresh token
keeps the original scope, as §6 requires); a disabled user's family is revoked; ``issuer:admin``
is left out of the new access token once the user no longer holds the administrator role. A family
started by a browser sign-in with ``openid`` gets a new ID token each time."""

from __future__ import annotations

from typing import Any

from issuer.errors import InvalidGrant, InvalidScope, InvalidTarget
from issuer.grants.base import GrantContext, GrantRequest, bearer_response, id_token_field, user_access_token
from issuer.models import RefreshToken, User
from issuer.oauth.scopes import parse_scope, settle_admin_scope


async def refresh_token(services: GrantContext, request: GrantRequest) -> dict[str, Any]:
    params, client = request.params, request.client
    presented = params.require("refresh_token")
    requested = parse_scope(params.get("scope"))
    resources = params.all("resource")

    def settle(token: RefreshToken, user: User | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if requested is not None and not set(requested) <= set(token.scope.split()):
            raise InvalidScope("scope may not exceed the scope originally granted")
        if not set(resources) <= set(token.audience.split()):
            raise InvalidTarget("resource was not part of the original grant")
        scope = requested if requested is not None else tuple(token.scope.split())
        audience = tuple(dict.fromkeys(resources)) or tuple(token.audience.split())
        return settle_admin_scope(
            scope,
            audience,
            issuer=services.issuer,
            explicit=requested is not None,
            audience_chosen=True,
            may_administer=user is not None and services.users.roles.may_administer(user.roles),
        )

    # Only an explicit scope or resource can be refused, and then before the token is consumed
    # (a refusal costs the client nothing); without either, nothing can be refused, and the token
    # is found and consumed in one round trip. The successor keeps the token's scope and audience.
    asked = requested is not None or bool(resources)
    rotation = await services.refresh_tokens.rotate(presented, client.client_id, settle if asked else None)
    user = rotation.user
    if user is None or user.disabled:
        await services.refresh_tokens.revoke_family(rotation.family.family_id, "user disabled")
        raise InvalidGrant("the user is not active")
    scope, audience = settle(rotation.token, user)
    issued = await user_access_token(services, user, client.client_id, scope, audience)
    extra: dict[str, Any] = {"refresh_token": rotation.refresh_token}
    family = rotation.family
    if family.auth_time is not None:
        # A browser sign-in's family (OIDC Core §12.2): the same sub, auth_time and sid; no nonce.
        extra |= await id_token_field(
            services, user, client.client_id, scope, issued, auth_time=family.auth_time, sid=family.session_id
        )
    return bearer_response(issued.token, issued.expires_in, scope, **extra)
