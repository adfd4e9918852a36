"""JWT access tokens per RFC 9068: ``typ: at+jwt``, signed by the keyring's active key."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keys.keyring import Keyring


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict[str, Any]
    expires_in: int


class AccessTokens:
    def __init__(self, keyring: Keyring, issuer: str, ttl: int, clock: Callable[[], float]) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._ttl = ttl
        self._clock = clock

    async def mint(
        self,
        *,
        subject: str,
        client_id: str,
        scope: tuple[str, ...],
        audience: tuple[str, ...],
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "exp": now + self._ttl,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": " ".join(scope),
        }
        if extra:
            claims.update(extra)
        return IssuedToken(await self._keyring.sign(claims), claims, self._ttl)
