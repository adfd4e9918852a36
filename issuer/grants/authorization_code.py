"""RFC 6749 §4.1.3 with PKCE (RFC 7636): exchange an authorization code for tokens."""

from __future__ import annotations

from typing import Any

from issuer.errors import InvalidGrant
from issuer.grants.base import GrantContext, GrantRequest


async def authorization_code(services: GrantContext, request: GrantRequest) -> dict[str, Any]:
    request.params.require("code")
    # Codes are issued by the authorization endpoint (issuer.authorize), not yet wired in.
    raise InvalidGrant("authorization code is invalid")
