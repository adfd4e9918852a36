"""OpenID Connect ID tokens (OIDC Core §2, §3.1.3.6), signed by the same keyring as access
tokens but with ``typ: JWT``, which no endpoint of ours accepts as an access token."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from issuer.accounts.users import RoleHierarchy
from issuer.models import User
from keys.keyring import ID_TOKEN_TYP, Keyring

# The claims each scope releases (OIDC Core §5.4), in ID tokens and at /userinfo.
SCOPE_CLAIMS = {
    "profile": ("preferred_username",),
    "email": ("email", "email_verified"),
}


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: the left half of the SHA-256 of the token (RS256 and ES256 both hash with SHA-256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class UserClaims:
    """The standard claims of a user that a scope allows (``roles`` only if configured)."""

    def __init__(self, roles: RoleHierarchy, include_roles: bool) -> None:
        self._roles = roles
        self.include_roles = include_roles

    def supported(self) -> list[str]:
        names = ["sub", *(c for claims in SCOPE_CLAIMS.values() for c in claims)]
        return names + ["roles"] if self.include_roles else names

    def of(self, user: User, scope: tuple[str, ...] | list[str]) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": user.user_id}
        if "profile" in scope:
            claims["preferred_username"] = user.username
        if "email" in scope and user.email:
            # Addresses are not verified by this issuer (see the README's registration notes).
            claims["email"] = user.email
            claims["email_verified"] = False
        if self.include_roles and "openid" in scope:
            claims["roles"] = self._roles.effective(user.roles)
        return claims


class IdTokens:
    def __init__(
        self, keyring: Keyring, issuer: str, ttl: int, claims: UserClaims, clock: Callable[[], float]
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._ttl = ttl
        self.claims = claims
        self._clock = clock

    async def mint(
        self,
        *,
        user: User,
        client_id: str,
        scope: tuple[str, ...],
        auth_time: float | None,
        nonce: str | None = None,
        sid: str | None = None,
        access_token: str | None = None,
    ) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            **self.claims.of(user, scope),
            "iss": self._issuer,
            "aud": client_id,
            "exp": now + self._ttl,
            "iat": now,
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if nonce is not None:
            claims["nonce"] = nonce
        if sid is not None:
            claims["sid"] = sid
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token)
        return await self._keyring.sign(claims, ID_TOKEN_TYP)
