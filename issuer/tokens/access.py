"""JWT access tokens per RFC 9068: ``typ: at+jwt``, signed by the keyring's active key."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keys.keyring import Keyring


class JtiSource:
    """Token ids: 128 random bits each, as ``secrets.token_urlsafe(16)`` gives, but read from the
    OS 256 at a time (one ``getrandom`` per 256 tokens instead of one per token; a system call
    costs a token a few µs on a VM). A jti identifies a token, it is no secret; a forked child
    starts afresh, so it never repeats its parent's ids."""

    _BYTES = 16

    def __init__(self, batch: int = 256) -> None:
        self._batch = batch
        self._lock = threading.Lock()
        self._pool = memoryview(b"")
        os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        self._lock = threading.Lock()  # a lock held at the fork stays held in the child
        self._pool = memoryview(b"")

    def __call__(self) -> str:
        with self._lock:
            if not self._pool:
                self._pool = memoryview(os.urandom(self._BYTES * self._batch))
            chunk, self._pool = self._pool[: self._BYTES], self._pool[self._BYTES :]
        return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode("ascii")


new_jti = JtiSource()


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
            "jti": new_jti(),
            "client_id": client_id,
            "scope": " ".join(scope),
        }
        if extra:
            claims.update(extra)
        return IssuedToken(await self._keyring.sign(claims), claims, self._ttl)
