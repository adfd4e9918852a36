"""FastAPI integration: a ``Security`` dependency that verifies the bearer token, requires scopes
(``Security(auth, scopes=[...])``) and roles (``Security(auth.require(roles=[...]))``), answers
401/403 with RFC 6750 ``WWW-Authenticate``, and declares an OAuth 2 authorization-code scheme
pointing at the issuer, so Swagger UI's Authorize button signs in there (with PKCE, see
``swagger_ui_init_oauth``). Needs ``pip install 'issuer-verifier[fastapi]'``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException
from fastapi.openapi.models import OAuthFlowAuthorizationCode, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from starlette.requests import Request

from issuer_verifier.bearer import authorize, refusal
from issuer_verifier.errors import BearerError, IssuerUnavailable
from issuer_verifier.token import AccessToken
from issuer_verifier.verifier import Verifier


class IssuerAuth(OAuth2):
    """``auth = IssuerAuth(issuer_url, audience=api_uri)``, then in a route
    ``token: AccessToken = Security(auth, scopes=["orders:read"])``. Other keyword arguments go
    to ``Verifier`` (or pass ``verifier=``). ``scopes`` describes the scopes for Swagger UI."""

    def __init__(
        self,
        issuer: str,
        audience: str | Iterable[str],
        *,
        scopes: Mapping[str, str] | None = None,
        verifier: Verifier | None = None,
        realm: str | None = None,
        scheme_name: str = "issuer",
        **verifier_options: Any,
    ) -> None:
        base = issuer.rstrip("/")
        flow = OAuthFlowAuthorizationCode(
            authorizationUrl=f"{base}/oauth2/authorize", tokenUrl=f"{base}/oauth2/token", scopes=dict(scopes or {})
        )
        super().__init__(
            flows=OAuthFlows(authorizationCode=flow),
            scheme_name=scheme_name,
            description=f"Access tokens from {issuer} (authorization code with PKCE)",
        )
        self.verifier = verifier or Verifier(issuer, audience, **verifier_options)
        self.realm = realm
        self.roles: tuple[str, ...] = ()
        self.scopes: tuple[str, ...] = ()

    def require(self, *, roles: Iterable[str] = (), scopes: Iterable[str] = ()) -> IssuerAuth:
        """The same scheme and key cache, also requiring ``roles`` (effective roles, so a role above
        in the issuer's hierarchy qualifies) and ``scopes``."""
        narrowed = copy.copy(self)
        narrowed.roles = self.roles + tuple(roles)
        narrowed.scopes = self.scopes + tuple(scopes)
        return narrowed

    def swagger_ui_init_oauth(self, client_id: str) -> dict[str, Any]:
        """Pass as ``FastAPI(swagger_ui_init_oauth=...)``: Swagger UI signs in as ``client_id`` (a
        public client whose redirect URI is ``<your API>/docs/oauth2-redirect``) with PKCE."""
        return {"clientId": client_id, "usePkceWithAuthorizationCodeGrant": True}

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> AccessToken:  # type: ignore[override]
        try:
            return await authorize(
                self.verifier,
                request.headers.get("authorization"),
                scopes=(*self.scopes, *security_scopes.scopes),
                roles=self.roles,
            )
        except (BearerError, IssuerUnavailable) as exc:
            status, headers, body = refusal(exc, self.realm)
            raise HTTPException(status, body["detail"], headers) from None
