"""Framework-free request handling shared by the integrations: read the bearer token (RFC 6750 §2.1),
verify it, check scopes and roles, and turn refusals into a status, headers and a body."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from issuer_verifier.errors import BearerError, InvalidRequest, IssuerUnavailable, MissingToken
from issuer_verifier.token import AccessToken
from issuer_verifier.verifier import Verifier

log = logging.getLogger("issuer_verifier")
UNAVAILABLE = "the token issuer cannot be reached; try again shortly"


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        raise MissingToken("no bearer token in the request")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken("the Authorization header is not a Bearer token")
    token = token.strip()
    if not token or " " in token:
        raise InvalidRequest("malformed Bearer authorization header", reason="malformed_header")
    return token


async def authorize(
    verifier: Verifier, authorization: str | None, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()
) -> AccessToken:
    """Verify the request's token and require ``scopes`` and ``roles``; logs every refusal."""
    try:
        token = await verifier.verify(bearer_token(authorization))
        token.require(scopes=scopes, roles=roles)
    except BearerError as exc:
        if not isinstance(exc, MissingToken):
            log.info("bearer token refused: %s (%s)", exc.description, exc.reason)
        raise
    except IssuerUnavailable as exc:
        log.warning("cannot verify bearer tokens: %s", exc)
        raise
    return token


def refusal(exc: BearerError | IssuerUnavailable, realm: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, JSON body) answering a refused request; the body is shaped like FastAPI's."""
    if isinstance(exc, IssuerUnavailable):
        return 503, {"Retry-After": "5", "Cache-Control": "no-store"}, {"detail": UNAVAILABLE}
    headers = {"WWW-Authenticate": exc.www_authenticate(realm), "Cache-Control": "no-store"}
    return exc.status_code, headers, {"detail": exc.description}
