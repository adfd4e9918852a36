"""Grant handlers by ``grant_type``; each takes the authenticated client and the parameters
and returns the RFC 6749 §5.1 response body."""

from __future__ import annotations

from issuer.grants.base import Grant, GrantRequest
from issuer.grants.client_credentials import client_credentials

GRANTS: dict[str, Grant] = {
    "client_credentials": client_credentials,
}

__all__ = ["GRANTS", "Grant", "GrantRequest"]
