"""The narrow storage interface the key lifecycle needs; issuer.storage implements it."""

from __future__ import annotations

from typing import Protocol

from keys.lifecycle import SigningKey, Transition


class KeyStore(Protocol):
    async def list_keys(self) -> list[SigningKey]: ...

    async def apply_transition(self, transition: Transition) -> bool:
        """Apply every change, insert and delete in one transaction. Each change is a
        compare-and-swap on the key's state; if any fails, nothing is applied and False is
        returned. At most one key is active and at most one pending, enforced by the store."""
        ...

    async def replace_ciphertext(self, kid: str, old: bytes, new: bytes) -> bool: ...
