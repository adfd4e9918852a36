"""RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6): exchange an authorization code for tokens.

The code is consumed first (compare-and-swap); a replay is ``invalid_grant`` and revokes what the
first exchange issued (issuer.authorize.codes). The user, her sign-in session and (for a client
that is not first-party) her consent must still stand: a withdrawal makes codes already issued
worthless. A refresh token comes only to a client with the
refresh_token grant, in a new family tied to the browser session; an ID token only for ``openid``."""

from __future__ import annotations

from typing import Any

from issuer.errors import InvalidGrant, InvalidTarget
from issuer.grants.base import GrantContext, GrantRequest, bearer_response, id_token_field, user_access_token
from issuer.oauth.scopes import settle_admin_scope


async def authorization_code(services: GrantContext, request: GrantRequest) -> dict[str, Any]:
    params, client = request.params, request.client
    code = params.require("code")
    redirect_uri = params.require("redirect_uri")
    verifier = params.require("code_verifier")
    resources = params.all("resource")
    stored = await services.codes.redeem(code, client.client_id, redirect_uri, verifier)
    user = await services.users.store.get_user(stored.user_id)
    if user is None or user.disabled:
        raise InvalidGrant("the user is not active")
    session = await services.sessions.get(stored.session_id)
    if session is None or session.ended_at is not None:
        raise InvalidGrant("the sign-in session has ended")
    if not client.first_party and not await services.consents.covers(
        user.user_id, client.client_id, tuple(stored.scope.split())
    ):
        raise InvalidGrant("the user has withdrawn consent for this client")
    granted = tuple(stored.audience.split())
    if not set(resources) <= set(granted):
        raise InvalidTarget("resource was not part of the authorization request")
    # issuer:admin follows the user's role now, as in the password grant; never an error here,
    # since the code is already spent: it is left out, and the response's scope says so.
    scope, audience = settle_admin_scope(
        tuple(stored.scope.split()),
        tuple(dict.fromkeys(resources)) or granted,
        issuer=services.issuer,
        explicit=False,
        audience_chosen=True,
        may_administer=services.users.roles.may_administer(user.roles),
    )
    issued = await user_access_token(services, user, client.client_id, scope, audience)
    extra: dict[str, Any] = {}
    family_id = None
    if "refresh_token" in client.grant_types:
        extra["refresh_token"], family = await services.refresh_tokens.start_family(
            client.client_id, user.user_id, scope, audience, stored.session_id, stored.auth_time
        )
        family_id = family.family_id
    extra |= await id_token_field(
        services, user, client.client_id, scope, issued, auth_time=stored.auth_time, sid=stored.session_id,
        nonce=stored.nonce,
    )
    await services.codes.issued(stored, family_id, issued.claims["jti"], issued.claims["exp"])
    return bearer_response(issued.token, issued.expires_in, scope, **extra)
