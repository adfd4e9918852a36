"""RP-Initiated Logout 1.0 (the end_session_endpoint): who asks, and where the browser may go
afterwards. Nothing is redirected unless the URI is registered, exactly, for the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from issuer.authorize.request import ShowError, append_query
from issuer.models import Client
from issuer.oauth.clients import MAX_CLIENT_ID, ClientRegistry
from issuer.oauth.params import Params
from keys.keyring import ID_TOKEN_TYP, Keyring

_MAX_STATE = 2048


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    post_logout_redirect_uri: str | None
    state: str | None
    # From a verified id_token_hint: whom the client believes is signed in, and in which session.
    subject: str | None = None
    session_id: str | None = None


def verify_id_token_hint(token: str, keyring: Keyring, issuer: str) -> dict[str, Any]:
    """One of our ID tokens (signature with a published key, ``typ: JWT``, our ``iss``); it may
    have expired (OIDC RP-Initiated Logout §2). Raises ShowError."""
    try:
        claims, _ = keyring.verify(token, ID_TOKEN_TYP)
    except ValueError:
        raise ShowError("invalid_request", "id_token_hint is not an ID token from this issuer") from None
    if claims.get("iss") != issuer or not isinstance(claims.get("sub"), str):
        raise ShowError("invalid_request", "id_token_hint is not an ID token from this issuer")
    return claims


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


async def parse_end_session(params: Params, clients: ClientRegistry, keyring: Keyring, issuer: str) -> LogoutRequest:
    """Raises ShowError for anything wrong: a logout request is never redirected on error."""
    claims: dict[str, Any] = {}
    hint = params.get("id_token_hint")
    if hint is not None:
        claims = verify_id_token_hint(hint, keyring, issuer)
    client_id = params.get("client_id")
    audiences = _audiences(claims)
    if client_id is not None and claims and client_id not in audiences:
        raise ShowError("invalid_request", "client_id is not the audience of id_token_hint")
    if client_id is None and len(audiences) == 1:
        client_id = audiences[0]
    client = await clients.get(client_id) if client_id is not None and len(client_id) <= MAX_CLIENT_ID else None
    if client_id is not None and (client is None or client.disabled):
        raise ShowError("invalid_client", "unknown client")
    redirect = params.get("post_logout_redirect_uri")
    if redirect is not None:
        if client is None:
            raise ShowError("invalid_request", "post_logout_redirect_uri needs client_id or id_token_hint")
        if redirect not in client.post_logout_redirect_uris:
            raise ShowError("invalid_request", "post_logout_redirect_uri is not registered for this client")
    state = params.get("state")
    if state is not None and len(state) > _MAX_STATE:
        raise ShowError("invalid_request", f"state is longer than {_MAX_STATE} characters")
    sid = claims.get("sid")
    return LogoutRequest(
        client=client,
        post_logout_redirect_uri=redirect,
        state=state,
        subject=claims.get("sub"),
        session_id=sid if isinstance(sid, str) else None,
    )


def logout_redirect(request: LogoutRequest) -> str | None:
    """Where to send the browser once the session has ended (None: show our own page)."""
    if request.post_logout_redirect_uri is None:
        return None
    values = {"state": request.state} if request.state is not None else {}
    return append_query(request.post_logout_redirect_uri, values)
