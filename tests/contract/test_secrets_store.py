"""SecretStore contract: first writer wins, compare-and-swap replacement."""

from __future__ import annotations

import asyncio

from issuer.storage import SqlStorage


async def test_absent_secret_is_none(storage: SqlStorage) -> None:
    assert await storage.get_secret("pepper") is None
    assert await storage.list_secrets() == {}


async def test_first_writer_wins(storage: SqlStorage) -> None:
    assert await storage.put_secret_if_absent("pepper", b"first", 1.0) == b"first"
    assert await storage.put_secret_if_absent("pepper", b"second", 2.0) == b"first"
    assert await storage.get_secret("pepper") == b"first"


async def test_concurrent_writers_all_see_one_value(storage: SqlStorage) -> None:
    candidates = [f"candidate-{n}".encode() for n in range(8)]
    seen = await asyncio.gather(*(storage.put_secret_if_absent("pepper", c, 1.0) for c in candidates))
    assert len(set(seen)) == 1
    assert seen[0] in candidates
    assert await storage.get_secret("pepper") == seen[0]


async def test_list_secrets_returns_every_name(storage: SqlStorage) -> None:
    await storage.put_secret_if_absent("a", b"\x00\x01binary\xff", 1.0)
    await storage.put_secret_if_absent("b", b"other", 1.0)
    assert await storage.list_secrets() == {"a": b"\x00\x01binary\xff", "b": b"other"}


async def test_replace_secret_is_compare_and_swap(storage: SqlStorage) -> None:
    await storage.put_secret_if_absent("pepper", b"v1", 1.0)
    assert await storage.replace_secret("pepper", b"stale", b"v2") is False
    assert await storage.get_secret("pepper") == b"v1"
    assert await storage.replace_secret("pepper", b"v1", b"v2") is True
    assert await storage.get_secret("pepper") == b"v2"
    assert await storage.replace_secret("pepper", b"v1", b"v3") is False
    assert await storage.get_secret("pepper") == b"v2"
    assert await storage.replace_secret("missing", b"v1", b"v2") is False
    assert await storage.get_secret("missing") is None
