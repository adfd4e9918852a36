"""RFC 6750 bearer-token checks for our own protected endpoints (userinfo, account, admin);
what each family requires is declared once in issuer.tokens.principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from issuer.errors import InsufficientScope, InvalidRequest, InvalidToken, ServiceUnavailable
from issuer.http.responses import note
from issuer.services import Services
from issuer.tokens.principal import Inactive, Insufficient, Principal, Rule, authorize


def _challenge(realm: str, error: str | None = None, scope: str | None = None) -> dict[str, str]:
    parts = [f'realm="{realm}"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


Refused = Callable[[dict[str, Any], str], Awaitable[None]]


async def bearer_principal(
    request: Request, services: Services, rule: Rule, on_refused: Refused | None = None
) -> Principal:
    """``on_refused(claims, reason)`` is told of tokens that verified but were refused here."""
    realm = services.settings.url
    header = request.headers.get("authorization")
    if header is None:
        raise InvalidToken("a bearer token is required", headers=_challenge(realm))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidRequest("use the Bearer authorization scheme", headers=_challenge(realm, "invalid_request"))
    try:
        principal = await authorize(services, token.strip(), rule)
    except (Inactive, Insufficient) as exc:
        _note_client(request, exc.claims)
        if on_refused is not None and exc.claims is not None:
            reason = f"lacks {exc.scope}" if isinstance(exc, Insufficient) else f"inactive {exc}"
            try:
                await on_refused(exc.claims, reason)
            except ServiceUnavailable:
                pass  # the refusal is answered either way; an outage must not turn it into a 503
        if isinstance(exc, Insufficient):
            raise InsufficientScope(
                f"the token lacks scope {exc.scope}, or its holder no longer holds that power",
                headers=_challenge(realm, "insufficient_scope", exc.scope),
            ) from None
        raise InvalidToken(
            "the access token is invalid, expired, not meant for this endpoint, or its holder is no longer active",
            headers=_challenge(realm, "invalid_token"),
        ) from None
    _note_client(request, principal.claims)
    return principal


def _note_client(request: Request, claims: dict[str, Any] | None) -> None:
    """The access log names the client of a token that verified (allowed or refused here)."""
    client_id = claims.get("client_id") if claims else None
    if isinstance(client_id, str):
        note(request, client_id=client_id[:64])
