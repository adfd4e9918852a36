"""Grant handlers by ``grant_type``; each takes the authenticated client and the parameters
and returns the RFC 6749 §5.1 response body."""

from __future__ import annotations

from issuer.grants.authorization_code import authorization_code
from issuer.grants.base import Grant, GrantContext, GrantRequest
from issuer.grants.client_credentials import client_credentials
from issuer.grants.password import password
from issuer.grants.refresh_token import refresh_token

GRANTS: dict[str, Grant] = {
    "authorization_code": authorization_code,
    "client_credentials": client_credentials,
    "password": password,
    "refresh_token": refresh_token,
}

__all__ = ["GRANTS", "Grant", "GrantContext", "GrantRequest"]
