"""RFC 7009 token revocation and RFC 7662 introspection, by token kind.

A refresh token revokes its whole family; an access token's ``jti`` is revoked until its
``exp``. ``token_type_hint`` only decides which kind is tried first. Tokens that are unknown,
or belong to another client, change nothing and reveal nothing.

Introspection is for resource servers (RFC 7662 §4): a caller learns about an access token
only if the token's ``aud`` names one of the caller's registered audiences, or the caller is
registered with ``issuer:introspect``. A token whose client or user no longer stands (deleted,
disabled) is inactive from the moment of the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from issuer.accounts.users import UserStates
from issuer.models import Client
from issuer.oauth.clients import ClientRegistry
from issuer.oauth.scopes import INTROSPECT_SCOPE
from issuer.tokens.principal import Inactive, standing
from issuer.tokens.refresh import RefreshTokens
from issuer.tokens.validate import AccessTokenValidator, InvalidAccessToken, Revocations, audiences


@dataclass(frozen=True)
class TokenContext:
    """What revocation and introspection use (built once with Services)."""

    issuer: str
    validator: AccessTokenValidator
    revocations: Revocations
    refresh_tokens: RefreshTokens
    clients: ClientRegistry
    user_states: UserStates
    clock: Callable[[], float]

_KINDS = ("access_token", "refresh_token")


def _order(hint: str | None) -> tuple[str, ...]:
    return ("refresh_token", "access_token") if hint == "refresh_token" else _KINDS


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


async def revoke_token(services: TokenContext, client: Client, token: str, hint: str | None) -> None:
    for kind in _order(hint):
        if kind == "access_token" and _looks_like_jwt(token):
            try:
                claims = services.validator.signed_claims(token)
            except InvalidAccessToken:
                continue
            if claims.get("client_id") == client.client_id and claims.get("exp", 0) > services.clock():
                await services.revocations.revoke(claims["jti"], float(claims["exp"]))
            return
        if kind == "refresh_token" and not _looks_like_jwt(token):
            found = await services.refresh_tokens.lookup(token)
            if found is not None and found[1].client_id == client.client_id:
                await services.refresh_tokens.revoke_family(found[1].family_id, "revoked by client")
            return


_INACTIVE: dict[str, Any] = {"active": False}


def may_introspect(caller: Client, claims: dict[str, Any], issuer: str) -> bool:
    # The issuer is no client's audience: a client registered with it must not read our own
    # tokens (admin, account) through introspection; issuer:introspect is the explicit way.
    own = set(caller.audiences) - {issuer}
    return INTROSPECT_SCOPE in caller.scopes or not own.isdisjoint(audiences(claims))


async def introspect_token(services: TokenContext, client: Client, token: str, hint: str | None) -> dict[str, Any]:
    for kind in _order(hint):
        if kind == "access_token" and _looks_like_jwt(token):
            try:
                claims = await services.validator.validate(token)
                if not may_introspect(client, claims, services.issuer):
                    return _INACTIVE
                await standing(services.clients, services.user_states, claims)
            except (InvalidAccessToken, Inactive):
                return _INACTIVE
            return {"active": True, "token_type": "Bearer", **claims}
        if kind == "refresh_token" and not _looks_like_jwt(token):
            found = await services.refresh_tokens.lookup(token)
            if found is None:
                return _INACTIVE
            refresh, family = found
            # Only the client a refresh token was issued to may learn about it.
            if family.client_id != client.client_id or not services.refresh_tokens.is_live(refresh, family):
                return _INACTIVE
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": family.client_id,
                "sub": family.user_id,
                "scope": refresh.scope,
                "aud": refresh.audience.split(),
                "iss": services.issuer,
                "iat": int(refresh.issued_at),
                "exp": int(refresh.expires_at),
            }
    return _INACTIVE
