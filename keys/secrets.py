"""Server-side secrets (such as the client-secret pepper), generated on first start and kept
only encrypted under the key-encryption keys. The first instance to store one wins."""

from __future__ import annotations

import secrets

from keys.envelope import Envelope
from keys.store import SecretStore


def secret_aad(name: str) -> bytes:
    return b"server-secret:" + name.encode()


async def load_or_create(store: SecretStore, envelope: Envelope, name: str, now: float, size: int = 32) -> bytes:
    stored = await store.get_secret(name)
    if stored is None:
        stored = await store.put_secret_if_absent(
            name, envelope.encrypt(secrets.token_bytes(size), secret_aad(name)), now
        )
    return envelope.decrypt(stored, secret_aad(name))


async def rewrap_all(store: SecretStore, envelope: Envelope) -> int:
    changed = 0
    for name, blob in (await store.list_secrets()).items():
        if not envelope.is_current(blob):
            changed += await store.replace_secret(name, blob, envelope.rewrap(blob, secret_aad(name)))
    return changed
