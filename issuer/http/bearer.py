"""RFC 6750 bearer-token checks for our own protected endpoints (userinfo, account, admin)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from issuer.errors import InsufficientScope, InvalidRequest, InvalidToken
from issuer.services import Services
from issuer.tokens.validate import InvalidAccessToken


def _challenge(realm: str, error: str | None = None, scope: str | None = None) -> dict[str, str]:
    parts = [f'realm="{realm}"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


async def bearer_claims(request: Request, services: Services, scope: str | None = None) -> dict[str, Any]:
    realm = services.settings.url
    header = request.headers.get("authorization")
    if header is None:
        raise InvalidToken("a bearer token is required", headers=_challenge(realm))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidRequest("use the Bearer authorization scheme", headers=_challenge(realm, "invalid_request"))
    try:
        claims = await services.validator.validate(token.strip())
    except InvalidAccessToken:
        raise InvalidToken(
            "the access token is invalid or expired", headers=_challenge(realm, "invalid_token")
        ) from None
    if scope is not None and scope not in str(claims.get("scope", "")).split():
        raise InsufficientScope(
            f"the token lacks scope {scope}", headers=_challenge(realm, "insufficient_scope", scope)
        )
    return claims
