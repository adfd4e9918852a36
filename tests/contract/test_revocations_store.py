"""RevocationStore contract: revoked access-token ids until they expire."""

from __future__ import annotations

from issuer.storage import SqlStorage

NOW = 1_700_000_000.0


async def test_revoke_and_check(storage: SqlStorage) -> None:
    assert await storage.is_revoked("jti-1") is False
    await storage.revoke_jti("jti-1", NOW + 900, NOW)
    assert await storage.is_revoked("jti-1") is True
    assert await storage.is_revoked("jti-2") is False


async def test_revoking_twice_is_harmless_and_keeps_the_first_expiry(storage: SqlStorage) -> None:
    await storage.revoke_jti("jti-1", NOW + 900, NOW)
    await storage.revoke_jti("jti-1", NOW + 5000, NOW + 1)
    assert await storage.is_revoked("jti-1") is True
    assert await storage.revoked_since(NOW) == [("jti-1", NOW + 900)]


async def test_revoked_since_lists_only_unexpired(storage: SqlStorage) -> None:
    await storage.revoke_jti("old", NOW - 1, NOW - 900)
    await storage.revoke_jti("live-a", NOW + 100, NOW)
    await storage.revoke_jti("live-b", NOW + 200, NOW)
    assert sorted(await storage.revoked_since(NOW)) == [("live-a", NOW + 100), ("live-b", NOW + 200)]
    assert await storage.revoked_since(NOW + 150) == [("live-b", NOW + 200)]


async def test_revoked_after_lists_unexpired_ids_revoked_since_then(storage: SqlStorage) -> None:
    await storage.revoke_jti("expired", NOW - 1, NOW + 10)
    await storage.revoke_jti("earlier", NOW + 100, NOW - 60)
    await storage.revoke_jti("later", NOW + 200, NOW + 5)
    assert await storage.revoked_after(NOW, NOW) == [("later", NOW + 200)]
    assert sorted(await storage.revoked_after(NOW - 100, NOW)) == [("earlier", NOW + 100), ("later", NOW + 200)]
    assert await storage.revoked_after(NOW + 5, NOW) == []


async def test_purge_removes_only_expired(storage: SqlStorage) -> None:
    await storage.revoke_jti("old", NOW - 1, NOW - 900)
    await storage.revoke_jti("live", NOW + 100, NOW)
    assert await storage.purge_revoked(NOW) == 1
    assert await storage.is_revoked("old") is False
    assert await storage.is_revoked("live") is True
    assert await storage.purge_revoked(NOW) == 0
