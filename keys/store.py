"""The narrow storage interfaces the key lifecycle and server secrets need; issuer.storage implements them."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, Self

from keys.lifecycle import SigningKey, Transition


class KeyStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Self]:
        """The same store bound to one transaction (a caller's record lands with a transition)."""
        ...

    async def list_keys(self) -> list[SigningKey]: ...

    async def apply_transition(self, transition: Transition) -> bool:
        """Apply every change, insert and delete in one transaction. Each change is a
        compare-and-swap on the key's state; if any fails, nothing is applied and False is
        returned. At most one key is active and at most one pending, enforced by the store."""
        ...

    async def replace_ciphertext(self, kid: str, old: bytes, new: bytes) -> bool: ...


class SecretStore(Protocol):
    async def get_secret(self, name: str) -> bytes | None: ...
    async def put_secret_if_absent(self, name: str, ciphertext: bytes, now: float) -> bytes:
        """Store unless present; return whichever ciphertext is stored (first writer wins)."""
        ...

    async def list_secrets(self) -> dict[str, bytes]: ...
    async def replace_secret(self, name: str, old: bytes, new: bytes) -> bool: ...
